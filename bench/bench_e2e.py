"""S3: end to end on the whole local cluster (issue #15; figures only).

    .venv/bin/python bench/bench_e2e.py [--nodes 500] [--jobs 2000] [--workers 8]
                                        [--runtime 10s] [--out DIR]

Starts the whole local cluster (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, KWOK) with --nodes fake a100 nodes of 8 GPUs each and nothing else, one
team whose ResourceBudget holds every one of those GPUs, and `cadre run` under its
ServiceAccount (examples/operator-config.yaml: node placement, native gang scheduling
Auto). Then it creates --jobs TrainingJobs at once (16 concurrent POSTs), each of
--workers workers with one GPU, running --runtime (KWOK's pod-complete delay), and
watches TrainingJobs and pods until every job has Succeeded. It prints:

- admissions per second (status Admitted, from the first to the last);
- worker pods Running per second (first seen Running, from the first to the last);
- per job, from its create to all its workers Running (its pods, seen Running): p50, p99, max;
- wall time from the first create to the last Succeeded, and the packing bound
  (waves of the cluster's GPUs times the runtime);
- the operator's CPU seconds, peak RSS and writes by verb and resource.

Everything runs on 127.0.0.1; the script stops what it started (the state dir is a
temporary one unless --out is given).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "e2e", REPO / "tests", REPO / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from bench_queue import (  # noqa: E402
    BenchOperator,
    ObjectWatch,
    Restarted,
    calibrate,
    fmt_writes,
)
from cadre_process import operator_kubeconfig  # noqa: E402
from kueue_harness import percentile  # noqa: E402
from localcluster import LocalCluster  # noqa: E402

NAMESPACE = "bench-e2e"
TEAM = "bench"
GROUP = "/apis/cadre.dev/v1alpha1"
LABEL_TRAININGJOB = "cadre.dev/trainingjob"  # on every worker pod
TJS = f"{GROUP}/namespaces/{NAMESPACE}/trainingjobs"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
GPUS_PER_NODE = 8


def nodepool_file(path: Path, nodes: int) -> Path:
    """e2e/cluster/nodepool.yaml's a100 pool alone, `nodes` of them."""
    pools = yaml.safe_load((REPO / "e2e" / "cluster" / "nodepool.yaml").read_text())
    a100 = next(p for p in pools["pools"] if p["name"] == "a100")
    pools["pools"] = [{**a100, "count": nodes}]
    path.write_text(yaml.safe_dump(pools, sort_keys=False))
    return path


def budget(gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ResourceBudget",
        "metadata": {"name": TEAM},
        "spec": {"namespaces": [NAMESPACE], "quota": [{"flavor": "a100", "gpus": gpus}]},
    }


def training_job(name: str, workers: int, runtime: str) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "command": ["torchrun", "train.py"],
            "workers": workers,
            "resources": {"flavor": "a100", "gpus": 1, "cpu": "4", "memory": "32Gi"},
            "podMetadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": runtime}},
        },
    }


class Timeline:
    """When each TrainingJob first showed each phase, each pod first ran, and each job's
    workers were all running (its `workers`-th pod seen Running, from the pods themselves:
    at this scale the Job controller's `ready` count lags so far behind that a ten-second
    gang often finishes before the Job reports it whole, and the TrainingJob goes from
    Admitted to Succeeded without a Running phase)."""

    def __init__(self, workers: int) -> None:
        self.lock = threading.Lock()
        self.workers = workers
        self.phases: dict[str, dict[str, float]] = {}
        self.pod_running: dict[str, float] = {}
        self.running_pods: dict[str, int] = {}  # per TrainingJob, pods seen Running
        self.gang_running: dict[str, float] = {}

    def on_trainingjob(self, kind: str, tj: dict[str, Any]) -> None:
        phase = (tj.get("status") or {}).get("phase")
        if kind == "DELETED" or not phase:
            return
        with self.lock:
            self.phases.setdefault(tj["metadata"]["name"], {}).setdefault(phase, time.monotonic())

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        if kind == "DELETED" or (pod.get("status") or {}).get("phase") != "Running":
            return
        meta = pod["metadata"]
        job = (meta.get("labels") or {}).get(LABEL_TRAININGJOB, "")
        now = time.monotonic()
        with self.lock:
            if meta["name"] in self.pod_running:
                return
            self.pod_running[meta["name"]] = now
            seen = self.running_pods[job] = self.running_pods.get(job, 0) + 1
            if seen == self.workers:
                self.gang_running[job] = now

    def count(self, phase: str) -> int:
        with self.lock:
            return sum(1 for p in self.phases.values() if phase in p)

    def first_seen(self, phase: str) -> list[float]:
        with self.lock:
            return sorted(p[phase] for p in self.phases.values() if phase in p)


def rate(times: list[float]) -> float:
    """Events per second from the first to the last."""
    if len(times) < 2 or times[-1] <= times[0]:
        return float("nan")
    return (len(times) - 1) / (times[-1] - times[0])


def run(args: argparse.Namespace) -> dict[str, Any]:
    state = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="cadre-bench-e2e-"))
    state.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(
        state / "cluster",
        mode="cluster",
        nodepool_file=nodepool_file(state / "nodepool.yaml", args.nodes),
        die_with_parent=True,
    )
    op: BenchOperator | None = None
    gpus = args.nodes * GPUS_PER_NODE
    fig: dict[str, Any] = {
        "nodes": args.nodes,
        "gpus": gpus,
        "jobs": args.jobs,
        "workers": args.workers,
        "runtime": args.runtime,
        "calibration": calibrate(),
    }
    try:
        cluster.up()
        cluster.install_crds(sorted((REPO / "crds").glob("*.yaml")))
        cluster.create_namespace(NAMESPACE, labels={"cadre.dev/team": TEAM})
        cluster.api.create(f"{GROUP}/resourcebudgets", budget(gpus))
        kubeconfig = operator_kubeconfig(cluster, state / "operator.kubeconfig")
        op = BenchOperator(kubeconfig, state, REPO / "examples" / "operator-config.yaml")
        op.start_owned(cluster, keep=False)
        print(f"cluster up: {cluster.node_count} nodes, {gpus} GPUs; operator pid {op.pid}")
        timeline = Timeline(args.workers)
        watches = [
            ObjectWatch(cluster, TJS, timeline.on_trainingjob).start(),
            ObjectWatch(cluster, PODS, timeline.on_pod).start(),
        ]
        kept = Restarted(op, cluster)
        created: dict[str, float] = {}
        lock = threading.Lock()

        def post(name: str) -> None:
            for attempt in range(5):
                status, _ = cluster.api.request(
                    "POST", TJS, training_job(name, args.workers, args.runtime)
                )
                if status < 300 or status == 409:
                    with lock:
                        created[name] = time.monotonic()
                    return
                time.sleep(0.2 * 2**attempt)

        t_start = time.monotonic()
        names = [f"e2e-{i:05d}" for i in range(args.jobs)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(post, names))
        fig["create_seconds"] = time.monotonic() - t_start
        print(f"{len(created):,} TrainingJobs created in {fig['create_seconds']:.1f} s")
        deadline = time.monotonic() + args.timeout
        next_log = 0.0
        while time.monotonic() < deadline:
            done = timeline.count("Succeeded")
            kept.check(scrape=time.monotonic() >= next_log)
            if time.monotonic() >= next_log:
                next_log = time.monotonic() + 15
                print(
                    f"[{time.monotonic() - t_start:6.0f}s] admitted "
                    f"{timeline.count('Admitted'):,}, gangs whole {len(timeline.gang_running):,}, "
                    f"succeeded {done:,}, pods run {len(timeline.pod_running):,}",
                    flush=True,
                )
            if done >= args.jobs:
                break
            time.sleep(1)
        t_end = time.monotonic()
        for watch in watches:
            watch.stop()
        succeeded = timeline.first_seen("Succeeded")
        fig["succeeded"] = len(succeeded)
        fig["wall"] = (succeeded[-1] if succeeded else t_end) - t_start
        waves = math.ceil(args.jobs * args.workers / gpus)
        fig["bound"] = waves * float(args.runtime.rstrip("s"))
        fig["admissions_per_second"] = rate(timeline.first_seen("Admitted"))
        pod_times = sorted(timeline.pod_running.values())
        fig["pods_running"] = len(pod_times)
        fig["pods_running_per_second"] = rate(pod_times)
        with timeline.lock:
            to_running = sorted(
                timeline.gang_running[name] - created[name]
                for name in created
                if name in timeline.gang_running
            )
        fig["phase_running"] = timeline.count("Running")
        fig["create_to_running"] = {
            "count": len(to_running),
            "p50": statistics.median(to_running) if to_running else float("nan"),
            "p99": percentile(to_running, 0.99) if to_running else float("nan"),
            "max": to_running[-1] if to_running else float("nan"),
        }
        fig |= kept.figures()
        return fig
    finally:
        if op is not None:
            op.stop()
        cluster.down()


def report(fig: dict[str, Any]) -> str:
    c = fig["create_to_running"]
    return "\n".join(
        [
            f"S3: {fig['jobs']:,} TrainingJobs of {fig['workers']} one-GPU workers, "
            f"{fig['runtime']} each, on {fig['nodes']} nodes ({fig['gpus']:,} GPUs); "
            f"calibration {fig['calibration']}",
            f"  wall {fig['wall']:.1f} s ({fig['succeeded']:,} Succeeded; packing bound "
            f"{fig['bound']:.0f} s); creates took {fig['create_seconds']:.1f} s",
            f"  admissions per second {fig['admissions_per_second']:.1f}; worker pods "
            f"Running per second {fig['pods_running_per_second']:.1f} "
            f"({fig['pods_running']:,} pods)",
            f"  create -> all workers Running (from the pods): p50 {c['p50']:.1f} s, "
            f"p99 {c['p99']:.1f} s, max {c['max']:.1f} s ({c['count']:,} jobs; "
            f"{fig['phase_running']:,} showed phase Running)",
            f"  operator CPU {fig['cpu']:.1f} s, peak RSS {fig['rss_peak_mib']:.0f} MiB, "
            f"restarted {fig.get('operator_restarts', 0)} times",
            f"  operator writes: {fmt_writes(Counter(fig['writes']))}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--runtime", default="10s", help="KWOK's pod-complete delay")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", default=None, help="state dir (default: a temporary one)")
    args = parser.parse_args()
    fig = run(args)
    if args.out:
        (Path(args.out) / "figures.json").write_text(json.dumps(fig, indent=2))
    print(report(fig))


if __name__ == "__main__":
    main()
