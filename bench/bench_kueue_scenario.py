"""Cadre on Kueue's own scheduler benchmark scenario (issue #15, S1; S2 with a larger config).

    .venv/bin/python bench/bench_kueue_scenario.py [--config quick|baseline|FILE] [--out DIR]

Reads the same generator config as Kueue's harness (bench/kueue_harness.py: cohorts of
ClusterQueues, each with sets of workloads created one every creationIntervalMs, with a
class, a runtime, a priority and a request) and plays it against Cadre, doing what Kueue's
runner does for minimalkueue:

- etcd and kube-apiserver only (the project's binaries, all on 127.0.0.1), the CRDs, and
  `cadre run` under its ServiceAccount (manifests/rbac.yaml), as in production;
- a ClusterQueue becomes a ResourceBudget covering one namespace, in its cohort, with
  nominalQuota GPUs of one flavour `rf` and borrowingLimit GPUs of borrowing. The flavour's
  nodes (Node objects, no kubelet) hold exactly the sum of the quotas, and the operator
  counts capacity sums only (admission.nodePlacement false), since Kueue's scenario has no
  nodes. waitForPodsReady is off: no pod ever runs;
- a workload becomes a single-worker TrainingJob asking for `request` GPUs at the
  priority class of its name (small 50, medium 100, large 200 in the baseline), created by
  one sequential loop per (queue, workload set): wait the interval, create, as Kueue's
  generator does;
- a finisher plays the workload: once the TrainingJob's Job runs (Cadre creates it at
  admission, running; the work may start), it marks the Job Complete `runtimeMs` later,
  through the Job's status, as the Job controller would; a Job stopped (preempted:
  deleted) before that is not finished. No
  kube-controller-manager, no scheduler, no pods: both sides do admission only;
- a recorder watches TrainingJobs and Jobs. Time to admission is from the TrainingJob's
  first watch event to its Job running (the moment the work may start; Kueue's
  runner measures from the Workload's first event to its admission), with the status's
  Admitted also recorded;
- the operator is kept as its Deployment would keep it: started again if it exits (a
  replica that cannot renew its lease in time steps down and exits). Its CPU, peak RSS
  and requests are summed over its processes, and the restarts are reported.

Prints wall time (first create to last TrainingJob Succeeded), mean and p99 time to
admission per class, quota usage as Kueue's checker computes it (held GPU-time over
nominal quota x time), the operator's CPU seconds and peak RSS, and the API requests by
verb and resource from the API server's own metrics (`apiserver_request_total`, every
client) beside the operator's (`cadre_api_requests_total`). Writes workloads.csv (one row
per TrainingJob) to --out for bench/plot_admission.py.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "e2e", REPO / "tests", REPO / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from bench_queue import BenchOperator, Restarted, calibrate, proc_cpu_seconds  # noqa: E402
from cadre.controller.client import WRITE_VERBS  # noqa: E402
from cadre.controller.runtime.event_loop import event_loop_factory  # noqa: E402
from cadre_process import operator_kubeconfig  # noqa: E402
from kueue_harness import harness_config, percentile  # noqa: E402
from localcluster import LocalCluster  # noqa: E402

GROUP = "/apis/cadre.dev/v1alpha1"
FLAVOUR = "rf"
NODE_GPUS = 20
ADMITTED = ("Admitted", "Running", "Succeeded")


# ---- the scenario ------------------------------------------------------------------
@dataclass(frozen=True)
class WorkloadSet:
    count: int
    interval: float
    name: str
    runtime: float
    priority: int
    gpus: int


@dataclass(frozen=True)
class Queue:
    name: str
    cohort: str | None
    nominal: int
    borrowing: int | None
    sets: tuple[WorkloadSet, ...]


def queues_of(config: dict[str, Any]) -> list[Queue]:
    """The ClusterQueues of a Kueue generator config, named as Kueue's generator names
    them (<class>-<set>-<index>-<cohort>), one workload template per set."""
    out = []
    for cohort_set in config["cohorts"]:
        for c in range(cohort_set["count"]):
            cohort = f"{cohort_set['className']}-{c}"
            for qs_index, qset in enumerate(cohort_set["queuesSets"]):
                sets = tuple(
                    WorkloadSet(
                        count=ws["count"],
                        interval=ws["creationIntervalMs"] / 1000,
                        name=ws["workloads"][0]["className"],
                        runtime=ws["workloads"][0]["runtimeMs"] / 1000,
                        priority=int(ws["workloads"][0]["priority"]),
                        gpus=int(ws["workloads"][0]["request"]),
                    )
                    for ws in qset["workloadsSets"]
                )
                borrowing = qset.get("borrowingLimit")
                for q in range(qset["count"]):
                    out.append(
                        Queue(
                            name=f"{qset['className']}-{qs_index}-{q}-{cohort}",
                            cohort=cohort,
                            nominal=int(qset["nominalQuota"]),
                            borrowing=None if borrowing is None else int(borrowing),
                            sets=sets,
                        )
                    )
    return out


def operator_config(path: Path, priorities: dict[str, int]) -> Path:
    """examples/operator-config.yaml with the one flavour `rf` (capacity sums only) and
    these priority classes (the first is the default); no waitForPodsReady: no pod runs."""
    config = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    config["flavors"] = [
        {
            "name": FLAVOUR,
            "nodeLabels": {"cadre.dev/flavor": FLAVOUR},
            "gpuResource": "nvidia.com/gpu",
            "prices": {"gpuHour": "1"},
        }
    ]
    config["priorities"] = priorities
    config["defaultPriority"] = next(iter(priorities))
    config["admission"]["nodePlacement"] = False
    config["admission"]["nativeGangScheduling"] = "Off"
    config["admission"]["waitForPodsReady"] = {"enabled": False}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def budget(queue: Queue) -> dict[str, Any]:
    quota: dict[str, Any] = {"flavor": FLAVOUR, "gpus": queue.nominal}
    if queue.borrowing is not None:
        quota["borrowingLimit"] = {"gpus": queue.borrowing}
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ResourceBudget",
        "metadata": {"name": queue.name},
        "spec": {
            "namespaces": [queue.name],
            **({"cohort": queue.cohort} if queue.cohort else {}),
            "quota": [quota],
        },
    }


def node(name: str) -> dict[str, Any]:
    room = {"cpu": "256", "memory": "2Ti", "nvidia.com/gpu": str(NODE_GPUS), "pods": "1000"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"cadre.dev/flavor": FLAVOUR}},
        "status": {"capacity": room, "allocatable": room},
    }


def training_job(namespace: str, name: str, ws: WorkloadSet) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": namespace, "labels": {"bench": ws.name}},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "command": ["python", "train.py"],
            "resources": {"flavor": FLAVOUR, "gpus": ws.gpus},
            "priority": ws.name,
        },
    }


async def watch(
    session: aiohttp.ClientSession,
    url: str,
    on_event: Callable[[str, dict[str, Any]], None],
    done: asyncio.Event,
) -> None:
    """List then watch the collection at `url` until `done`; list again on 410 Gone."""
    rv = ""
    while not done.is_set():
        if not rv:
            async with session.get(url) as resp:
                data = await resp.json()
            for obj in data["items"]:
                on_event("ADDED", obj)
            rv = data["metadata"]["resourceVersion"]
        query = f"?watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion={rv}"
        try:
            async with session.get(url + query, timeout=aiohttp.ClientTimeout(total=None)) as resp:
                rest = b""
                async for chunk in resp.content.iter_any():
                    # One split per chunk (a chunk holds many events at this pace).
                    *lines, rest = (rest + chunk).split(b"\n")
                    for line in lines:
                        ev = orjson.loads(line)
                        if ev["type"] == "ERROR":
                            rv = ""
                            break
                        rv = ev["object"]["metadata"].get("resourceVersion", rv)
                        if ev["type"] != "BOOKMARK":
                            on_event(ev["type"], ev["object"])
                    if not rv or done.is_set():
                        break
        except (TimeoutError, aiohttp.ClientError):
            await asyncio.sleep(0.2)


# ---- the run -----------------------------------------------------------------------
@dataclass
class Record:
    """One TrainingJob as the recorder saw it (monotonic seconds)."""

    queue: str
    klass: str
    gpus: int
    runtime: float
    created: float | None = None
    started: float | None = None  # its Job first seen running
    status_admitted: float | None = None
    finished: float | None = None
    evictions: int = 0
    holds: list[tuple[float, float]] = field(default_factory=list)


class Run:
    def __init__(self, cluster: LocalCluster, queues: list[Queue]) -> None:
        self.cluster = cluster
        self.queues = queues
        self.base = cluster.server
        self.records: dict[tuple[str, str], Record] = {}
        self.running: dict[tuple[str, str], float] = {}  # Job key -> seen running at
        self.finishing: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.total = sum(ws.count for q in queues for ws in q.sets)
        self.done = asyncio.Event()
        self.succeeded = 0
        self.errors: Counter[str] = Counter()
        self.t0 = 0.0

    def key_record(self, namespace: str, name: str) -> Record | None:
        return self.records.get((namespace, name))

    async def generate(self, session: aiohttp.ClientSession) -> None:
        async def loop(queue: Queue, set_index: int, ws: WorkloadSet) -> None:
            for si in range(ws.count):
                await asyncio.sleep(ws.interval)
                name = f"{ws.name}-{set_index}-{si}-0"
                self.records[(queue.name, name)] = Record(queue.name, ws.name, ws.gpus, ws.runtime)
                doc = training_job(queue.name, name, ws)
                url = f"{self.base}{GROUP}/namespaces/{queue.name}/trainingjobs"
                for attempt in range(10):
                    async with session.post(url, json=doc) as resp:
                        if resp.status < 300 or resp.status == 409:
                            break
                        self.errors[f"create {resp.status}"] += 1
                    await asyncio.sleep(0.1 * 2**attempt)

        await asyncio.gather(*(loop(q, i, ws) for q in self.queues for i, ws in enumerate(q.sets)))

    async def watch(self, session: aiohttp.ClientSession, path: str, on_event: Any) -> None:
        await watch(session, self.base + path, on_event, self.done)

    def on_trainingjob(self, kind: str, tj: dict[str, Any]) -> None:
        meta = tj["metadata"]
        record = self.key_record(meta["namespace"], meta["name"])
        if record is None or kind == "DELETED":
            return
        now = time.monotonic()
        if record.created is None:
            record.created = now
        phase = (tj.get("status") or {}).get("phase")
        if phase in ADMITTED and record.status_admitted is None:
            record.status_admitted = now
        if phase == "Preempted" and record.status_admitted is not None:
            record.evictions += 1
            record.status_admitted = None
        if phase == "Succeeded" and record.finished is None:
            record.finished = now
            self.succeeded += 1
            if self.succeeded == self.total:
                self.done.set()

    def on_job(self, kind: str, job: dict[str, Any], session: aiohttp.ClientSession) -> None:
        meta = job["metadata"]
        owner = next(iter(meta.get("ownerReferences") or []), {}).get("name", "")
        record = self.key_record(meta["namespace"], owner)
        if record is None:
            return
        key = (meta["namespace"], meta["name"])
        conditions = (job.get("status") or {}).get("conditions") or []
        complete = any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)
        now = time.monotonic()
        active = kind != "DELETED" and not job["spec"].get("suspend") and not complete
        if active and key not in self.running:
            self.running[key] = now
            if record.started is None:
                record.started = now
            self.finishing[key] = asyncio.ensure_future(self.finish(session, key, record))
        elif not active and key in self.running:
            began = self.running.pop(key)
            record.holds.append((began, now))
            task = self.finishing.pop(key, None)
            if task is not None and not complete:
                task.cancel()

    async def finish(
        self, session: aiohttp.ClientSession, key: tuple[str, str], record: Record
    ) -> None:
        await asyncio.sleep(record.runtime)
        if key not in self.running:
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {
            "startTime": stamp,
            "completionTime": stamp,
            "succeeded": 1,
            "completedIndexes": "0",
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": stamp},
                {"type": "Complete", "status": "True", "lastTransitionTime": stamp},
            ],
        }
        url = f"{self.base}/apis/batch/v1/namespaces/{key[0]}/jobs/{key[1]}/status"
        headers = {"Content-Type": "application/merge-patch+json"}
        for attempt in range(10):
            async with session.patch(url, json={"status": status}, headers=headers) as resp:
                if resp.status < 300 or resp.status == 404:
                    return
                self.errors[f"finish {resp.status}"] += 1
            await asyncio.sleep(0.1 * 2**attempt)

    async def play(self, timeout: float) -> float:
        connector = aiohttp.TCPConnector(ssl=self.cluster.api.tls, limit=200)
        async with aiohttp.ClientSession(
            connector=connector, json_serialize=lambda obj: orjson.dumps(obj).decode()
        ) as session:
            watches = [
                asyncio.ensure_future(
                    self.watch(session, f"{GROUP}/trainingjobs", self.on_trainingjob)
                ),
                asyncio.ensure_future(
                    self.watch(
                        session, "/apis/batch/v1/jobs", lambda k, o: self.on_job(k, o, session)
                    )
                ),
            ]
            self.t0 = time.monotonic()
            await self.generate(session)
            try:
                await asyncio.wait_for(self.done.wait(), timeout)
            except TimeoutError:
                print(f"timed out: {self.succeeded}/{self.total} Succeeded", flush=True)
            ended = time.monotonic()
            self.done.set()
            for task in [*watches, *self.finishing.values()]:
                task.cancel()
            await asyncio.gather(*watches, *self.finishing.values(), return_exceptions=True)
            return ended


# ---- figures -----------------------------------------------------------------------
def apiserver_requests(cluster: LocalCluster) -> tuple[Counter[str], Counter[str]]:
    """`apiserver_request_total` and the seconds of `apiserver_request_duration_seconds`
    summed by 'VERB resource[/subresource]' (every client; watches left out)."""
    _, text = cluster.api.request("GET", "/metrics")
    counts: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for metric, out in (
        ("apiserver_request_total", counts),
        ("apiserver_request_duration_seconds_sum", seconds),
    ):
        for labels, value in samples(str(text), metric):
            resource = labels.get("resource", "")
            if not resource or labels.get("verb") == "WATCH":
                continue
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            out[f"{labels['verb']} {resource}"] += value
    return counts, seconds


def cpu_by_process(cluster: LocalCluster) -> Counter[str]:
    """CPU seconds so far of the cluster's processes (by name) and of this bench (its
    creates, watches and finisher): with the operator's, where the machine's cores went."""
    out: Counter[str] = Counter()
    for record in cluster.records:
        try:
            out[record.name] += proc_cpu_seconds(record.pid)
        except OSError:
            continue
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["the bench"] = usage.ru_utime + usage.ru_stime
    return out


def samples(text: str, metric: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of `metric` in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            labels_text, value = line[len(metric) + 1 :].rsplit("} ", 1)
            pairs = (part.split("=", 1) for part in labels_text.replace('"', "").split(","))
            out.append(({k: v for k, v in (p for p in pairs if len(p) == 2)}, float(value)))
    return out


def start_profiler(pid: int, path: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the operator (its stacks, collapsed) until SIGINT."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [spy, "record", "--pid", str(pid), "--rate", "25", "--format", "raw", "-o", str(path)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def hot_spots(path: Path, top: int = 25) -> list[tuple[str, float]]:
    """The functions of the operator's own code most often on the stack (share of samples
    in which each appears at least once: inclusive time)."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        frames = {f for f in stack.split(";") if "cadre/" in f or "kopf/" in f}
        for frame in frames:
            inclusive[frame] += int(count)
    return [(frame, n / total) for frame, n in inclusive.most_common(top)] if total else []


def figures(run: Run, ended: float) -> dict[str, Any]:
    records = list(run.records.values())
    firsts = [r.created for r in records if r.created is not None]
    out: dict[str, Any] = {
        "workloads": len(records),
        "succeeded": run.succeeded,
        "wall": ended - run.t0,
        "errors": dict(run.errors),
        "classes": {},
    }
    for klass in dict.fromkeys(r.klass for r in records):
        mine = [r for r in records if r.klass == klass]
        waits = [r.started - r.created for r in mine if r.started and r.created]
        status = [r.status_admitted - r.created for r in mine if r.status_admitted and r.created]
        out["classes"][klass] = {
            "count": len(mine),
            "admitted": len(waits),
            "mean": statistics.fmean(waits) if waits else math.nan,
            "p99": percentile(waits, 0.99),
            "mean_status": statistics.fmean(status) if status else math.nan,
            "evictions": sum(r.evictions for r in mine),
        }
    # Kueue's checker: GPU-time held over nominal quota x the monitored time.
    held = sum(r.gpus * (end - begin) for r in records for begin, end in r.holds)
    nominal = sum(q.nominal for q in run.queues)
    span = ended - min(firsts) if firsts else math.nan
    out["usage"] = 100 * held / (nominal * span) if span else math.nan
    return out


def write_csv(run: Run, path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["queue", "name", "class", "created_s", "admitted_s", "status_admitted_s"])
        for (queue, name), r in sorted(run.records.items()):
            writer.writerow(
                [
                    queue,
                    name,
                    r.klass,
                    *(
                        "" if t is None else f"{t - run.t0:.3f}"
                        for t in (r.created, r.started, r.status_admitted)
                    ),
                ]
            )


def report(fig: dict[str, Any]) -> str:
    lines = [
        f"Cadre wall {fig['wall']:.1f} s ({fig['succeeded']}/{fig['workloads']} Succeeded), "
        f"operator CPU {fig['cpu']:.1f} s, peak RSS {fig['rss_peak_kib'] / 1024:.0f} MiB, "
        f"usage {fig['usage']:.1f}% of nominal quota, calibration {fig['calibration']}, "
        f"operator restarts {fig.get('operator_restarts', 0)}"
    ]
    for klass, c in fig["classes"].items():
        lines.append(
            f"  {klass:<6} {c['count']:>6} workloads: time to admission mean {c['mean']:.1f} s, "
            f"p99 {c['p99']:.1f} s (status Admitted: mean {c['mean_status']:.1f} s), "
            f"evictions {c['evictions']}"
        )
    if fig.get("cpu_by_process"):
        spent = {"operator": fig["cpu"], **fig["cpu_by_process"]}
        lines.append(
            "  CPU over the play: "
            + ", ".join(f"{name} {sec:.1f} s" for name, sec in spent.items())
            + f" (of {fig['wall'] * (os.cpu_count() or 1):.0f} core-seconds)"
        )
    lines.append("  API server requests (every client, WATCH left out):")
    for key, n in sorted(fig["apiserver"].items(), key=lambda kv: -kv[1]):
        busy = fig["apiserver_seconds"].get(key, 0.0)
        lines.append(f"    {n:>8.0f}  {key:<36} {busy:8.1f} s answering")
    lines.append("  the operator's requests (cadre_api_requests_total, verb resource code):")
    for key, n in sorted(fig["operator"].items(), key=lambda kv: -kv[1]):
        lines.append(f"    {n:>8}  {key}")
    lines.extend(lifecycle_economy(fig["operator"], fig["workloads"]))
    if fig.get("profile"):
        lines.append("  the operator's hot spots (py-spy, share of samples on the stack):")
        lines.extend(f"    {share:6.1%}  {frame}" for frame, share in fig["profile"])
    if fig["errors"]:
        lines.append(f"  harness retries: {fig['errors']}")
    return "\n".join(lines)


def lifecycle_economy(operator: dict[str, int], workloads: int) -> list[str]:
    """S6: the operator's requests (after it led: its initial sync is not counted) per
    TrainingJob lifecycle, by verb and resource; the ResourceBudget status and Lease
    writes are shared by all jobs and shown apart."""
    by_call: Counter[str] = Counter()
    for key, n in operator.items():
        verb, resource, _code = key.split(" ")
        if verb != "WATCH":
            by_call[f"{verb} {resource}"] += n
    shared = {"PATCH resourcebudgets/status", "PUT leases"}
    per_job = {k: n / workloads for k, n in by_call.items() if k not in shared}
    writes = sum(n for k, n in per_job.items() if k.split(" ")[0] in WRITE_VERBS)
    reads = {
        v: sum(n for k, n in per_job.items() if k.startswith(v + " ")) for v in ("GET", "LIST")
    }
    lines = [
        f"  S6, per TrainingJob lifecycle (the operator's requests after it led / {workloads}): "
        f"{writes:.2f} writes ({per_job.get('POST events', 0.0):.2f} Events), "
        f"{reads['GET']:.4f} GETs, {reads['LIST']:.4f} LISTs; shared: "
        + ", ".join(f"{k} {by_call.get(k, 0)}" for k in sorted(shared))
    ]
    lines.extend(f"    {n:8.4f}  {k}" for k, n in sorted(per_job.items(), key=lambda kv: -kv[1]))
    return lines


def start_cluster(out: Path, gpus: int) -> LocalCluster:
    """etcd and kube-apiserver with the CRDs, and Node objects of flavour `rf` holding
    `gpus` GPUs in all (the caller stops it with `down()`, also when this fails)."""
    # No audit log: a fault-test instrument that Kueue's envtest API server does not write.
    cluster = LocalCluster(out / "cluster", mode="apiserver", audit=False)
    cluster.up()
    cluster.install_crds(sorted((REPO / "crds").glob("*.yaml")))
    for i in range(math.ceil(gpus / NODE_GPUS)):
        cluster.api.create("/api/v1/nodes", node(f"{FLAVOUR}-{i:04d}"))
    return cluster


def start_operator(cluster: LocalCluster, out: Path, priorities: dict[str, int]) -> BenchOperator:
    """`cadre run` under its ServiceAccount with operator_config(priorities), leading."""
    kubeconfig = operator_kubeconfig(cluster, out / "operator.kubeconfig")
    op = BenchOperator(kubeconfig, out, operator_config(out / "operator-config.yaml", priorities))
    op.start_owned(cluster, keep=False)
    while not op.leading():
        time.sleep(0.2)
    return op


def run(args: argparse.Namespace) -> dict[str, Any]:
    queues = queues_of(harness_config(args.config, args.out))
    out = args.out
    total_gpus = sum(q.nominal for q in queues)
    cluster: LocalCluster | None = None
    op: BenchOperator | None = None
    try:
        cluster = start_cluster(out, total_gpus)
        for q in queues:
            cluster.api.create("/api/v1/namespaces", {"metadata": {"name": q.name}})
            cluster.api.create(f"{GROUP}/resourcebudgets", budget(q))
        op = start_operator(cluster, out, {ws.name: ws.priority for ws in queues[0].sets})
        print(
            f"{len(queues)} budgets, {total_gpus} GPUs; operator pid {op.pid} leading; "
            f"playing {sum(ws.count for q in queues for ws in q.sets)} TrainingJobs",
            flush=True,
        )
        profiler = start_profiler(op.pid, out / "profile.txt") if args.profile else None
        api_before = apiserver_requests(cluster)
        cpu_before = cpu_by_process(cluster)
        kept = Restarted(op, cluster)  # as a Deployment keeps it: started again if it exits
        scenario = Run(cluster, queues)
        # uvloop and orjson: the harness shares the cores with what it measures, so it
        # spends as little of them as it can (Kueue's runner is Go).
        with kept.watching(), asyncio.Runner(loop_factory=event_loop_factory("uvloop")) as r:
            ended = r.run(scenario.play(args.timeout_minutes * 60))
        fig = figures(scenario, ended)
        fig["cpu_by_process"] = dict(+(cpu_by_process(cluster) - cpu_before))
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
            fig["profile"] = hot_spots(out / "profile.txt")
        requests = kept.requests()  # a last read of the live process, its CPU and RSS too
        fig["cpu"] = kept.cpu_seconds
        fig["rss_peak_kib"] = kept.hwm_kib
        fig["operator_restarts"] = kept.restarts
        api_after = apiserver_requests(cluster)
        fig["apiserver"] = +(api_after[0] - api_before[0])
        fig["apiserver_seconds"] = +(api_after[1] - api_before[1])
        fig["operator"] = Counter(
            {f"{verb} {resource} {code}": int(n) for (verb, resource, code), n in requests.items()}
        )
        fig["calibration"] = calibrate()
        write_csv(scenario, out / "workloads.csv")
        return fig
    finally:
        if op is not None:
            op.stop()
        if cluster is not None:
            cluster.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="quick", help="baseline, quick, or a generator file")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--timeout-minutes", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="sample the operator with py-spy")
    args = parser.parse_args()
    args.out = args.out or Path(tempfile.mkdtemp(prefix=f"cadre-kueue-{args.config}-"))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"Cadre on Kueue's scenario, config {args.config}, output {args.out}", flush=True)
    fig = run(args)
    (args.out / "figures.json").write_text(json.dumps(fig, indent=2, default=str))
    print(report(fig))


if __name__ == "__main__":
    main()
