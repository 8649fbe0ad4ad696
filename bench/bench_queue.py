"""The operator with a long queue of TrainingJobs on the real local cluster (figures only).

    .venv/bin/python bench/bench_queue.py [--jobs 10000] [--steady-seconds 180] [--keep]

(e2e/ and tests/ are put on sys.path here; see docs/benchmarks.md for measured figures.)

Starts the whole local cluster (etcd, kube-apiserver, controller-manager, scheduler, KWOK
with e2e/cluster/nodepool.yaml) in a temporary state dir, one team whose ResourceBudget
gives it 8 a100 GPUs, and `cadre run` under its least-privilege ServiceAccount with a
bench config (examples/operator-config.yaml plus ten priority tiers). Then it creates
--jobs one-GPU TrainingJobs (16 concurrent POSTs, seeded random tiers; their pods never
complete), so 8 are admitted and really run on KWOK nodes and the rest queue, and prints:

1. admission pass time (histogram `cadre_admission_pass_seconds`, counter
   `cadre_admission_passes_total`) while the queue fills and while it sits still;
2. the operator's mutating API requests (`cadre_api_requests_total`, checked against
   the API server's audit log) to get every job queued (its first Queued status and
   Event, positions refreshed meanwhile; since issue #15 a waiting job has no Job, which
   Cadre creates at admission), then per interval during a steady period of
   --steady-seconds when nothing changes;
3. the operator's RSS (VmRSS/VmHWM of /proc/<pid>/status) and the time from the last
   create to every job having its phase (Queued, or Admitted/Running for the 8);
4. after deleting one running job, the time until the next in line is admitted; then
   the same for a second deletion made at once, while the position refreshes that the
   first admission caused are being written, and the writes until a whole refresh
   interval passes without any.

Everything it starts is stopped by PID at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import timeit
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "e2e", REPO / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from cadre.core.workloads.queue import queue_place  # noqa: E402
from cadre_process import OperatorProcess, operator_kubeconfig  # noqa: E402
from localcluster import LocalCluster, procs  # noqa: E402

NAMESPACE = "bench-queue"
TEAM = "bench"
QUOTA_GPUS = 8
GROUP = "/apis/cadre.dev/v1alpha1"
TJS = f"{GROUP}/namespaces/{NAMESPACE}/trainingjobs"
OPERATOR_USER = "system:serviceaccount:cadre-system:cadre-operator"
TIERS = {f"tier-{i}": 100 * (i + 1) for i in range(10)}  # tier-0 100 ... tier-9 1000
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
AUDIT_WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
WAITING, RUNNING = ("Queued", "Preempted"), ("Admitted", "Running")
EXACT_POSITIONS = 10
"""admission.exactQueuePositions: the bench config keeps the default."""


# ---- the operator ------------------------------------------------------------------
class BenchOperator(OperatorProcess):
    """OperatorProcess whose process may outlive this script (--keep): then it is
    recorded in the cluster's state.json, so `localcluster down` stops it by PID."""

    def start_owned(self, cluster: LocalCluster, keep: bool, timeout: float = 120) -> None:
        def own(record: procs.ProcRecord) -> None:
            cluster.records.append(record)
            cluster._save()

        self.start(timeout, die_with_parent=not keep, on_spawn=own if keep else None)

    @property
    def pid(self) -> int:
        assert self._rec is not None
        return self._rec.pid

    def memory_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB; (0, 0) when the process is gone."""
        rss = hwm = 0
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        return rss, hwm

    def scrape(self) -> Scrape:
        for attempt in range(5):
            try:
                return Scrape(self.metrics())
            except OSError:
                if attempt == 4:
                    raise
                time.sleep(1)
        raise AssertionError("unreachable")


class Scrape:
    """One read of the metrics endpoint: writes by (verb, resource), pass histogram."""

    def __init__(self, text: str) -> None:
        self.at = time.monotonic()
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.buckets: dict[float, float] = {}
        self.pass_sum = self.pass_count = self.passes = self.pending = 0.0
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name_labels, value = line.rsplit(" ", 1)
            name, _, labels_text = name_labels.partition("{")
            labels = _labels(labels_text.rstrip("}"))
            if name == "cadre_api_requests_total":
                self.requests[(labels["verb"], labels["resource"], labels["code"])] += float(value)
            elif name == "cadre_admission_pass_seconds_bucket":
                self.buckets[float(labels["le"])] = float(value)
            elif name == "cadre_admission_pass_seconds_sum":
                self.pass_sum = float(value)
            elif name == "cadre_admission_pass_seconds_count":
                self.pass_count = float(value)
            elif name == "cadre_admission_passes_total":
                self.passes = float(value)
            elif name == "cadre_admission_pending_workloads":
                self.pending = float(value)

    def writes(self, since: Scrape | None = None) -> Counter[str]:
        """Successful mutating requests by 'VERB resource' (minus those of `since`)."""
        out: Counter[str] = Counter()
        for (verb, resource, code), n in self.requests.items():
            if verb in WRITE_VERBS and code.startswith("2"):
                out[f"{verb} {resource}"] += n
        if since is not None:
            out.subtract(since.writes())
        return +out

    def failed(self, since: Scrape | None = None) -> float:
        def bad(s: Scrape) -> float:
            return sum(n for (_, _, code), n in s.requests.items() if not code.startswith("2"))

        return bad(self) - (bad(since) if since else 0.0)

    def passes_between(self, since: Scrape) -> tuple[int, float, dict[float, float]]:
        """(passes, mean seconds, cumulative buckets) of the passes after `since`."""
        n = int(self.pass_count - since.pass_count)
        mean = (self.pass_sum - since.pass_sum) / n if n else float("nan")
        buckets = {le: c - since.buckets.get(le, 0.0) for le, c in self.buckets.items()}
        return n, mean, buckets


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Restarted:
    """The operator kept as its Deployment keeps it: started again when it exits (it
    does, by design, when it cannot renew its lease in time, as with an API server that
    stops answering under load). CPU, peak RSS and API requests are summed over its
    processes, each read while it lived (a process's counters start again from zero; what
    one did after its last read is lost, so reads come every `scrape_every` seconds).

    `check()` from the bench's own loop, or `watching()` for a thread that checks every
    second while the bench runs elsewhere (an asyncio scenario). An operator started
    again from that thread belongs to the cluster (stopped with it), since one spawned
    to die with its parent would die with the thread."""

    def __init__(self, op: BenchOperator, cluster: LocalCluster, scrape_every: float = 5) -> None:
        self.op, self.cluster = op, cluster
        self.scrape_every = scrape_every
        self.restarts = 0
        self.base: Scrape | None = op.scrape()
        self.last: Scrape | None = self.base
        self.cpu_base = self.cpu_seen = proc_cpu_seconds(op.pid)
        self.cpu_done = 0.0
        self.hwm_kib = 0
        self.requests_done: Counter[tuple[str, str, str]] = Counter()
        self._scraped = time.monotonic()
        self._owned_by_cluster = False

    def check(self, *, scrape: bool | None = None) -> None:
        """Read the live process's counters; or, if it exited, start it again."""
        if scrape is None:
            scrape = time.monotonic() - self._scraped >= self.scrape_every
        if self.op.alive():
            with contextlib.suppress(OSError):
                self.cpu_seen = proc_cpu_seconds(self.op.pid)
                self.hwm_kib = max(self.hwm_kib, self.op.memory_kib()[1])
                if scrape:
                    self.last = self.op.scrape()
                    self._scraped = time.monotonic()
            return
        self.cpu_done += self.cpu_seen - self.cpu_base
        self.requests_done += self._lived()
        self.restarts += 1
        print(
            f"operator exited ({self.op.log_tail(1).strip()[:160]}); starting it again", flush=True
        )
        self.op.start_owned(self.cluster, keep=self._owned_by_cluster)
        self.base = self.last = None
        self.cpu_base = self.cpu_seen = 0.0

    def _lived(self) -> Counter[tuple[str, str, str]]:
        """The live process's requests since it started (or since the first read)."""
        if self.last is None:
            return Counter()
        out = Counter(self.last.requests)
        if self.base is not None:
            out.subtract(self.base.requests)
        return +out

    @contextlib.contextmanager
    def watching(self) -> Iterator[Restarted]:
        self._owned_by_cluster = True
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(1.0):
                with contextlib.suppress(Exception):  # a bad read: the next one counts
                    self.check()

        thread = threading.Thread(target=loop, name="keep-operator", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def requests(self) -> Counter[tuple[str, str, str]]:
        """(verb, resource, code) of the operator's API requests, over its processes."""
        self.check(scrape=True)
        return self.requests_done + self._lived()

    @property
    def cpu_seconds(self) -> float:
        """CPU over the processes, as of the last check."""
        return self.cpu_done + self.cpu_seen - self.cpu_base

    def figures(self) -> dict[str, Any]:
        requests = self.requests()
        writes: Counter[str] = Counter()
        for (verb, resource, code), n in requests.items():
            if verb in WRITE_VERBS and code.startswith("2"):
                writes[f"{verb} {resource}"] += int(n)
        return {
            "cpu": self.cpu_seconds,
            "rss_peak_mib": self.hwm_kib / 1024,
            "writes": dict(writes),
            "operator_restarts": self.restarts,
        }


def _labels(text: str) -> dict[str, str]:
    out = {}
    for part in text.split('",'):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip().strip('"')
    return out


def bucket_quantile(buckets: dict[float, float], q: float) -> str:
    """The upper bound of the histogram bucket holding quantile q ("≤ 0.5 s")."""
    total = buckets.get(float("inf"), 0.0)
    if not total:
        return "-"
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return f"≤ {le:g} s" if le != float("inf") else "> 10 s"
    return "-"


# ---- the API server's view ---------------------------------------------------------
class AuditTail:
    """Counts the operator's writes in the API server's audit log (server side)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.total: Counter[str] = Counter()

    def read(self) -> Counter[str]:
        """The operator's writes by 'verb resource[/sub]' appended since the last read."""
        new: Counter[str] = Counter()
        if not self.path.exists():
            return new
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for raw in data[:end].splitlines():
            if OPERATOR_USER.encode() not in raw:
                continue
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            if ev.get("user", {}).get("username") != OPERATOR_USER:
                continue
            if ev.get("verb") not in AUDIT_WRITE_VERBS:
                continue
            if not 200 <= int((ev.get("responseStatus") or {}).get("code") or 0) < 300:
                continue
            ref = ev.get("objectRef") or {}
            resource = ref.get("resource", "?")
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            new[f"{ev['verb']} {resource}"] += 1
        self.total.update(new)
        return new


# ---- objects -----------------------------------------------------------------------
def bench_config(path: Path, refresh: int) -> Path:
    config = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    config["priorities"] = {**config["priorities"], **TIERS}
    config["admission"]["positionRefreshSeconds"] = refresh
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def budget() -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ResourceBudget",
        "metadata": {"name": TEAM},
        "spec": {
            "namespaces": [NAMESPACE],
            "quota": [{"flavor": "a100", "gpus": QUOTA_GPUS}],
        },
    }


def training_job(name: str, tier: str) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench": "queue"}},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "command": ["python", "train.py"],
            "resources": {"flavor": "a100", "gpus": 1, "cpu": "1", "memory": "4Gi"},
            "priority": tier,
            # KWOK: a running pod owned by a Job completes after this delay: never here.
            "podMetadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "8760h"}},
        },
    }


def list_jobs(cluster: LocalCluster) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.api.get(TJS)["items"]
    return items


def phases(items: list[dict[str, Any]]) -> Counter[str]:
    return Counter((tj.get("status") or {}).get("phase") or "-" for tj in items)


class ObjectWatch:
    """A list, then a watch of the collection at `path` (listed again after a 410), each
    object handed to `on_event(type, object)` in a thread of its own (a list every few
    seconds of 10,000 objects would load the API server more than the operator does)."""

    def __init__(
        self, cluster: LocalCluster, path: str, on_event: Callable[[str, dict[str, Any]], None]
    ) -> None:
        self.cluster = cluster
        self.path = path
        self.on_event = on_event
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="object-watch", daemon=True)

    def start(self) -> ObjectWatch:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True

    def _run(self) -> None:
        api = self.cluster.api
        rv = ""
        while not self.stopping:
            if not rv:
                data = api.get(self.path)
                for obj in data["items"]:
                    self.on_event("ADDED", obj)
                rv = data["metadata"]["resourceVersion"]
            conn = http.client.HTTPSConnection(api.host, api.port, context=api.tls, timeout=120)
            try:
                conn.request(
                    "GET",
                    f"{self.path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=600"
                    f"&resourceVersion={rv}",
                    headers={"Accept": "application/json"},
                )
                resp = conn.getresponse()
                if resp.status != 200:
                    rv = ""
                    continue
                while not self.stopping:
                    line = resp.readline()
                    if not line:
                        break
                    ev = json.loads(line)
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        rv = ""  # 410 Gone: list again
                        break
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if ev["type"] != "BOOKMARK":
                        self.on_event(ev["type"], obj)
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.5)
            finally:
                conn.close()


class PhaseWatch:
    """The TrainingJobs of the bench's namespace, kept current by an ObjectWatch."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.watch = ObjectWatch(cluster, TJS, self._on_event)

    def start(self) -> PhaseWatch:
        self.watch.start()
        return self

    def stop(self) -> None:
        self.watch.stop()

    def counts(self) -> Counter[str]:
        with self.lock:
            return phases(list(self.objects.values()))

    def items(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.objects.values())

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        with self.lock:
            if kind == "DELETED":
                self.objects.pop(obj["metadata"]["name"], None)
            else:
                self.objects[obj["metadata"]["name"]] = obj


def queue_key(tj: dict[str, Any]) -> tuple[int, str, str]:
    """The team's queue order as the bench expects it: priority, then age, then name."""
    return (
        -TIERS[tj["spec"]["priority"]],
        tj["metadata"]["creationTimestamp"],
        tj["metadata"]["name"],
    )


def places_wrong(items: list[dict[str, Any]], exact: int) -> tuple[int, int]:
    """Waiting jobs whose stored place (exact position near the head, a range behind)
    differs from their place in the queue order; and how many wait."""
    waiting = sorted(
        (tj for tj in items if (tj.get("status") or {}).get("phase") in WAITING), key=queue_key
    )
    wrong = 0
    for position, tj in enumerate(waiting, 1):
        queue = (tj.get("status") or {}).get("queue") or {}
        place = queue_place(position, exact)
        if (queue.get("position"), queue.get("positionRange")) != (place.position, place.range):
            wrong += 1
    return wrong, len(waiting)


def count(cluster: LocalCluster, path: str) -> int:
    return len(cluster.api.get(path)["items"])


def delete_and_time(
    cluster: LocalCluster, watch: PhaseWatch, op: BenchOperator, timeout: float
) -> dict[str, Any] | None:
    """Deletes the running job of the smallest name; times until the first job in the
    queue order (priority, then age) is admitted (phase Admitted/Running) and Running."""
    items = watch.items()
    running = sorted(
        tj["metadata"]["name"] for tj in items if (tj.get("status") or {}).get("phase") in RUNNING
    )
    waiting = [tj for tj in items if (tj.get("status") or {}).get("phase") in WAITING]
    if not running or not waiting:
        return None
    victim = running[0]
    expected = min(waiting, key=queue_key)["metadata"]["name"]
    pos1 = [
        tj["metadata"]["name"]
        for tj in waiting
        if ((tj.get("status") or {}).get("queue") or {}).get("position") == 1
    ]
    before = op.scrape()
    t_del = time.monotonic()
    cluster.api.call("DELETE", f"{TJS}/{victim}")
    admitted_after = running_after = None
    while time.monotonic() - t_del < timeout:
        status = (cluster.api.get(f"{TJS}/{expected}").get("status")) or {}
        if admitted_after is None and status.get("phase") in RUNNING:
            admitted_after = time.monotonic() - t_del
        if status.get("phase") == "Running":
            running_after = time.monotonic() - t_del
            break
        time.sleep(0.05)
    time.sleep(0.5)
    newly = sorted(
        tj["metadata"]["name"]
        for tj in watch.items()
        if (tj.get("status") or {}).get("phase") in RUNNING
        and tj["metadata"]["name"] not in running
    )
    s = op.scrape()
    return {
        "deleted": victim,
        "expected": expected,
        "position_1_in_status": pos1,
        "admitted_after": admitted_after,
        "running_after": running_after,
        "newly_admitted": newly,
        "passes": int(s.passes - before.passes),
        "writes_meanwhile": sum(s.writes(before).values()),
    }


# ---- the run -----------------------------------------------------------------------
def calibrate() -> str:
    """How fast this (shared, virtual) machine is right now."""
    best = min(timeit.repeat("sum(range(10**6))", number=3, repeat=3)) / 3
    return f"{best * 1000:.1f} ms"


def log(msg: str, t0: float) -> None:
    print(f"[{time.monotonic() - t0:7.1f}s] {msg}", flush=True)


def job_writes(c: Counter[str]) -> float:
    """Writes about the jobs: without the ResourceBudget status, which the operator
    refreshes every 30 s whatever the queue does, and the leader's Lease renewals (every
    2 s: counted, nothing would ever be quiet)."""
    return sum(n for k, n in c.items() if "resourcebudgets" not in k and "leases" not in k)


def fmt_writes(c: Counter[str]) -> str:
    return ", ".join(f"{k} {int(v):,}" for k, v in sorted(c.items())) or "none"


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.monotonic()
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="cadre-bench-queue-"))
    cluster = LocalCluster(state, mode="cluster", die_with_parent=not args.keep)
    op: BenchOperator | None = None
    fig: dict[str, Any] = {"jobs": args.jobs, "calibration": calibrate()}
    try:
        cluster.up()
        cluster.install_crds(sorted((REPO / "crds").glob("*.yaml")))
        log(f"cluster up in {state} ({cluster.node_count} nodes)", t0)
        cluster.create_namespace(NAMESPACE, labels={"cadre.dev/team": TEAM})
        cluster.api.create(f"{GROUP}/resourcebudgets", budget())
        kubeconfig = operator_kubeconfig(cluster, state / "operator.kubeconfig")
        config = bench_config(state / "operator-config.yaml", args.refresh)
        op = BenchOperator(kubeconfig, state, config)
        op.start_owned(cluster, keep=args.keep)
        time.sleep(3)
        fig["rss_idle"] = op.memory_kib()
        audit = AuditTail(cluster.audit_log)
        audit.read()
        base = op.scrape()
        log(f"operator pid {op.pid} healthy; RSS {fig['rss_idle'][0] / 1024:.0f} MiB", t0)

        # -- create ---------------------------------------------------------------------
        watch = PhaseWatch(cluster).start()
        rng = random.Random(42)
        docs = [training_job(f"q-{i:05d}", rng.choice(list(TIERS))) for i in range(args.jobs)]
        errors: list[str] = []
        created = 0
        lock = threading.Lock()

        def post(doc: dict[str, Any]) -> None:
            nonlocal created
            for attempt in range(5):
                status, body = cluster.api.request("POST", TJS, doc)
                if 200 <= status < 300 or status == 409:
                    with lock:
                        created += 1
                    return
                if status != 429 and status < 500:
                    break
                time.sleep(0.5 * (attempt + 1))
            with lock:
                errors.append(f"{doc['metadata']['name']}: {status} {str(body)[:200]}")

        t_create = time.monotonic()
        rss_peak_during = 0
        with ThreadPoolExecutor(args.threads) as pool:
            futures = [pool.submit(post, d) for d in docs]
            while not all(f.done() for f in futures):
                time.sleep(5)
                rss_peak_during = max(rss_peak_during, op.memory_kib()[0])
                log(f"created {created:,}/{args.jobs:,}", t0)
        t_last_create = time.monotonic()
        fig["create_seconds"] = t_last_create - t_create
        fig["create_errors"] = len(errors)
        if errors:
            print("create errors (first 5):", *errors[:5], sep="\n  ")
        log(f"{created:,} created in {fig['create_seconds']:.1f}s", t0)

        # -- wait until every job has its phase ------------------------------------------------
        want_running = min(QUOTA_GPUS, args.jobs)
        deadline = time.monotonic() + args.queue_timeout
        all_phased = None
        last_phases: Counter[str] = Counter()
        next_log = 0.0
        while time.monotonic() < deadline:
            last_phases = watch.counts()
            waiting = sum(last_phases[p] for p in WAITING)
            running = sum(last_phases[p] for p in RUNNING)
            rss = op.memory_kib()[0]
            rss_peak_during = max(rss_peak_during, rss)
            s = op.scrape()
            if not op.alive():
                raise RuntimeError(f"operator died:\n{op.log_tail()}")
            done = waiting + running == args.jobs and running >= want_running
            if done or time.monotonic() >= next_log:
                next_log = time.monotonic() + 10
                log(
                    f"phases {dict(last_phases)}; operator writes "
                    f"{sum(s.writes(base).values()):,.0f}, RSS {rss / 1024:.0f} MiB, "
                    f"passes {s.passes - base.passes:.0f} (last: {s.pending:.0f} pending)",
                    t0,
                )
            if done:
                all_phased = time.monotonic()
                break
            time.sleep(args.poll)
        fig["phases_at_end_of_wait"] = dict(last_phases)
        fig["queued_after_last_create"] = (
            all_phased - t_last_create if all_phased is not None else None
        )
        if all_phased is None:
            log(f"NOT all phased after {args.queue_timeout:.0f}s", t0)

        # quiet: no operator write for --quiet seconds (bounded)
        last_n, since = job_writes(op.scrape().writes()), time.monotonic()
        quiet_deadline = time.monotonic() + args.quiet_timeout
        while time.monotonic() < quiet_deadline:
            time.sleep(1)
            n = job_writes(op.scrape().writes())
            if n != last_n:
                last_n, since = n, time.monotonic()
            elif time.monotonic() - since >= args.quiet:
                break
        queued_scrape = op.scrape()
        fig["queue_writes"] = queued_scrape.writes(base)
        fig["queue_failed"] = queued_scrape.failed(base)
        fig["queue_audit"] = audit.read()
        fig["fill_passes"] = queued_scrape.passes_between(base)
        fig["rss_queued"] = op.memory_kib()
        fig["rss_peak_fill"] = rss_peak_during
        fig["children"] = (
            count(cluster, f"/api/v1/namespaces/{NAMESPACE}/services"),
            count(cluster, f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"),
        )
        log(f"queue writes: {fmt_writes(fig['queue_writes'])}", t0)

        # -- steady ----------------------------------------------------------------------
        steady_start = prev = op.scrape()
        interval = args.interval
        timeline = []
        end = time.monotonic() + args.steady_seconds
        while time.monotonic() < end:
            time.sleep(min(interval, max(0.0, end - time.monotonic())))
            now = op.scrape()
            w = now.writes(prev)
            n, mean, _ = now.passes_between(prev)
            rss = op.memory_kib()[0]
            timeline.append((now.at - steady_start.at, sum(w.values()), n, mean, rss))
            log(
                f"steady +{now.at - steady_start.at:5.0f}s: writes {fmt_writes(w)}; "
                f"{n} passes, mean {mean * 1000:.0f} ms; RSS {rss / 1024:.0f} MiB",
                t0,
            )
            prev = now
            if not op.alive():
                raise RuntimeError(f"operator died:\n{op.log_tail()}")
        steady_end = op.scrape()
        fig["steady_seconds"] = steady_end.at - steady_start.at
        fig["steady_writes"] = steady_end.writes(steady_start)
        fig["steady_audit"] = audit.read()
        fig["steady_passes"] = steady_end.passes_between(steady_start)
        fig["steady_timeline"] = timeline
        fig["rss_steady"] = op.memory_kib()
        items = watch.items()
        fig["phases_steady"] = dict(phases(items))

        # -- delete a running job: how soon is the next one admitted -------------------------
        # First in a still queue; then a second one at once, while the first admission's
        # position refreshes are being written; then the writes until quiet again.
        before = op.scrape()
        t_first = time.monotonic()
        fig["next"] = delete_and_time(cluster, watch, op, args.next_timeout)
        log(f"first delete: {fig['next']}", t0)
        if fig["next"] and args.second_delete:
            fig["next2"] = delete_and_time(cluster, watch, op, args.next_timeout)
            log(f"second delete (during the refresh writes): {fig['next2']}", t0)
        wave: list[tuple[float, float]] = []
        last_n, since = job_writes(op.scrape().writes(before)), time.monotonic()
        wave_deadline = time.monotonic() + args.wave_timeout
        while time.monotonic() < wave_deadline:
            time.sleep(1)
            n = job_writes(op.scrape().writes(before))
            wave.append((time.monotonic() - t_first, n))
            if n != last_n:
                last_n, since = n, time.monotonic()
            elif time.monotonic() - since >= args.refresh + args.quiet:
                break  # a whole refresh interval without writes: no wave left
        after = op.scrape()
        fig["wave_writes"] = after.writes(before)
        fig["wave_seconds"] = since - t_first
        fig["wave_passes"] = after.passes_between(before)
        log(
            f"writes after the deletes until quiet ({fig['wave_seconds']:.0f} s): "
            f"{fmt_writes(fig['wave_writes'])}",
            t0,
        )

        fig["places_wrong"] = places_wrong(watch.items(), EXACT_POSITIONS)
        fig["rss_end"] = op.memory_kib()
        fig["cluster_rss_mib"] = {k: v // 1024 for k, v in cluster.rss_kib().items()}
        fig["operator_problems"] = Counter(
            r.get("level")
            for r in op.log_records()
            if r.get("level") in ("warning", "error", "critical")
        )
        fig["operator_alive"] = op.alive()
        fig["total_seconds"] = time.monotonic() - t0
        fig["calibration"] += f" at the start, {calibrate()} at the end"
        return fig
    finally:
        if args.keep:
            print(
                f"\n--keep: left running (operator pid {op.pid if op else '-'}, log "
                f"{op.log_path if op else '-'}).\n  export KUBECONFIG={cluster.kubeconfig}\n"
                f"  stop: PYTHONPATH=e2e .venv/bin/python -m localcluster --state-dir {state}"
                " down"
            )
        else:
            if op is not None:
                op.stop()
            cluster.down()
            if not args.state_dir:  # our temporary dir: logs and audit log, ~100 MB at 10k
                shutil.rmtree(state, ignore_errors=True)


def report(fig: dict[str, Any], args: argparse.Namespace) -> None:
    n = fig["jobs"]

    def mib(kib: int) -> str:
        return f"{kib / 1024:,.0f} MiB"

    def secs(v: float | None) -> str:
        return "not reached" if v is None else f"{v:,.1f} s"

    rows: list[tuple[str, str]] = []
    rows.append(("TrainingJobs created", f"{n:,} in {fig['create_seconds']:.1f} s"))
    rows.append(("create errors", str(fig["create_errors"])))
    rows.append(
        (
            "children (Services, Jobs)",
            "{:,} / {:,} (one worker each: no Service)".format(*fig["children"]),
        )
    )
    rows.append(("machine calibration sum(range(10**6))", fig["calibration"]))
    rows.append(("last create -> every job has its phase", secs(fig["queued_after_last_create"])))
    rows.append(("phases then", str(fig["phases_at_end_of_wait"])))
    p, mean, buckets = fig["fill_passes"]
    rows.append(
        (
            "admission passes while filling",
            f"{p} passes, mean {mean * 1000:,.0f} ms, p50 {bucket_quantile(buckets, 0.5)}, "
            f"max {bucket_quantile(buckets, 1.0)}",
        )
    )
    p, mean, buckets = fig["steady_passes"]
    rows.append(
        (
            f"admission passes, steady ({n:,} pending)",
            f"{p} passes, mean {mean * 1000:,.0f} ms, p50 {bucket_quantile(buckets, 0.5)}, "
            f"max {bucket_quantile(buckets, 1.0)}",
        )
    )
    qw = fig["queue_writes"]
    rows.append(
        (
            "operator writes to get all queued",
            f"{sum(qw.values()):,.0f} ({sum(qw.values()) / n:.2f} per job): {fmt_writes(qw)}",
        )
    )
    rows.append(("  of which failed (non-2xx, all verbs)", f"{fig['queue_failed']:,.0f}"))
    rows.append(
        (
            "  audit log (server side)",
            f"{sum(fig['queue_audit'].values()):,}: {fmt_writes(fig['queue_audit'])}",
        )
    )
    sw = fig["steady_writes"]
    total = sum(sw.values())
    per_min = total / fig["steady_seconds"] * 60 if fig["steady_seconds"] else 0
    rows.append(
        (
            f"operator writes, steady {fig['steady_seconds']:.0f} s",
            f"{total:,.0f} ({per_min:,.0f}/min; {per_min * args.refresh / 60:,.0f} per "
            f"{args.refresh} s refresh interval): {fmt_writes(sw)}",
        )
    )
    rows.append(
        (
            "  audit log (server side)",
            f"{sum(fig['steady_audit'].values()):,}: {fmt_writes(fig['steady_audit'])}",
        )
    )
    tl = " | ".join(f"+{t:.0f}s {w:,.0f}" for t, w, *_ in fig["steady_timeline"])
    rows.append(("  writes per interval", tl))
    rows.append(("operator RSS idle (before jobs)", mib(fig["rss_idle"][0])))
    rows.append(
        (
            "operator RSS all queued / peak while filling",
            f"{mib(fig['rss_queued'][0])} / {mib(fig['rss_peak_fill'])}",
        )
    )
    rows.append(
        (
            "operator RSS end of steady / VmHWM",
            f"{mib(fig['rss_steady'][0])} / {mib(fig['rss_steady'][1])}",
        )
    )
    for label, key in (
        ("delete 1 running (still queue)", "next"),
        ("delete 1 more (refresh writes going on)", "next2"),
    ):
        nxt = fig.get(key)
        if nxt:
            rows.append(
                (
                    f"{label} -> next admitted",
                    f"{secs(nxt['admitted_after'])} (Running {secs(nxt['running_after'])}); "
                    f"expected {nxt['expected']}, admitted {nxt['newly_admitted']}, "
                    f"status position 1: {nxt['position_1_in_status']}; "
                    f"{nxt['passes']} passes, {nxt['writes_meanwhile']:,.0f} writes meanwhile",
                )
            )
    if "wave_writes" in fig:
        ww = fig["wave_writes"]
        p, mean, buckets = fig["wave_passes"]
        rows.append(
            (
                "writes after the deletes until quiet",
                f"{sum(ww.values()):,.0f} over {fig['wave_seconds']:.0f} s: {fmt_writes(ww)}",
            )
        )
        rows.append(
            (
                "  admission passes meanwhile",
                f"{p} passes, mean {mean * 1000:,.0f} ms, max {bucket_quantile(buckets, 1.0)}",
            )
        )
    if "places_wrong" in fig:
        wrong, waiting = fig["places_wrong"]
        rows.append(
            (
                "stored places off the queue order at the end",
                f"{wrong:,} of {waiting:,} (exact for the first {EXACT_POSITIONS}, ranges behind)",
            )
        )
    rows.append(("cluster RSS (MiB)", str(fig["cluster_rss_mib"])))
    rows.append(("operator warnings/errors in log", str(dict(fig["operator_problems"]))))
    rows.append(("operator alive at the end", str(fig["operator_alive"])))
    rows.append(("bench wall time", f"{fig['total_seconds']:.0f} s"))
    width = max(len(k) for k, _ in rows)
    print(f"\n== {n:,} queued TrainingJobs ({datetime.now().isoformat(timespec='seconds')}) ==")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10000, help="TrainingJobs to create")
    parser.add_argument("--steady-seconds", type=float, default=180, help="steady period")
    parser.add_argument("--keep", action="store_true", help="leave cluster and operator running")
    parser.add_argument("--refresh", type=int, default=60, help="positionRefreshSeconds")
    parser.add_argument("--threads", type=int, default=16, help="concurrent creates")
    parser.add_argument("--interval", type=float, default=30, help="steady sampling (s)")
    parser.add_argument("--poll", type=float, default=1, help="phase polling (s)")
    parser.add_argument("--quiet", type=float, default=5, help="no writes this long = quiet")
    parser.add_argument("--quiet-timeout", type=float, default=90)
    parser.add_argument("--queue-timeout", type=float, default=1800)
    parser.add_argument("--next-timeout", type=float, default=300)
    parser.add_argument("--wave-timeout", type=float, default=600)
    parser.add_argument(
        "--no-second-delete",
        dest="second_delete",
        action="store_false",
        help="skip the second deletion (made while position refreshes are written)",
    )
    parser.add_argument("--state-dir", default=None, help="cluster state dir (default: temp)")
    args = parser.parse_args()
    report(run(args), args)


if __name__ == "__main__":
    main()
