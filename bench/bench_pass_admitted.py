"""The admission pass on a cluster full of admitted and finished gangs (S3's shape; #15).

    .venv/bin/python bench/bench_pass_admitted.py [--nodes 500] [--jobs 2000] [--workers 8]
                                                  [--finished 1000] [--passes 20]

S3 at full size (docs/benchmarks.md) spent seconds per pass with few jobs pending, where
S1's passes over 10,000 pending take milliseconds: what a pass costs there is the work
that is admitted or done, not the queue. This builds the store the operator holds at
such a moment with the core's own functions, as the admission loop and the reconciler
would write it: --nodes a100 nodes of 8 GPUs, one team with all of them, --jobs gangs of
--workers one-GPU workers; the passes admit as many as fit, the gangs admitted first
finish (their Jobs complete, their TrainingJobs Succeeded) until --finished have, and the
running ones have their pods bound, --workers to a node. Then it times --passes passes
with nothing changed between them and the snapshot cache kept, as the loop runs them,
split into the snapshot's build and `schedule()`, and the build's node parts alone.
Pure core, no cluster; figures only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_queue import calibrate  # noqa: E402
from cadre.core.api.config import OperatorConfig, parse_config  # noqa: E402
from cadre.core.cluster.nodes import BoundPod, node_capacities, node_parts  # noqa: E402
from cadre.core.cluster.snapshot import build_snapshot  # noqa: E402
from cadre.core.cluster.store import Store  # noqa: E402
from cadre.core.scheduling import schedule  # noqa: E402
from cadre.core.scheduling.capacity import capacity_from_nodes  # noqa: E402
from cadre.core.scheduling.types import FlavourSelector  # noqa: E402
from cadre.core.training.children import build_job  # noqa: E402
from cadre.core.training.job import job_record  # noqa: E402
from cadre.core.training.lifecycle import admitted, from_job  # noqa: E402

NAMESPACE, TEAM = "bench-e2e", "bench"
GPUS_PER_NODE = 8
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def config() -> OperatorConfig:
    cfg = parse_config((REPO / "examples" / "operator-config.yaml").read_text())
    return cfg.model_copy(
        update={"admission": cfg.admission.model_copy(update={"node_placement": True})}
    )


def trainingjob(i: int, workers: int) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {
            "name": f"e2e-{i:05d}",
            "namespace": NAMESPACE,
            "uid": f"uid-{i}",
            "generation": 1,
            "resourceVersion": str(i),
            "creationTimestamp": (NOW - timedelta(hours=1, seconds=-i)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        },
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "command": ["torchrun", "train.py"],
            "workers": workers,
            "resources": {"flavor": "a100", "gpus": 1, "cpu": "4", "memory": "32Gi"},
        },
    }


def fill(args: argparse.Namespace, cfg: OperatorConfig) -> Store:
    store = Store()
    store.upsert_namespace({"metadata": {"name": NAMESPACE, "labels": {"cadre.dev/team": TEAM}}})
    store.upsert_budget(
        {
            "metadata": {"name": TEAM, "resourceVersion": "1"},
            "spec": {
                "namespaces": [NAMESPACE],
                "quota": [{"flavor": "a100", "gpus": args.nodes * GPUS_PER_NODE}],
            },
        },
        read=True,
    )
    for n in range(args.nodes):
        store.upsert_node(
            {
                "metadata": {"name": f"a100-{n:04d}", "labels": {"cadre.dev/flavor": "a100"}},
                "spec": {
                    "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule", "value": "x"}]
                },
                "status": {
                    "allocatable": {
                        "cpu": "96",
                        "memory": "1152Gi",
                        "nvidia.com/gpu": str(GPUS_PER_NODE),
                        "pods": "110",
                    }
                },
            }
        )
    store.bound_pods_listed = True
    for i in range(args.jobs):
        store.upsert_trainingjob(trainingjob(i, args.workers), read=True)
    running: list[str] = []  # keys, in the order admitted
    finished = 0
    cache: dict[Any, Any] = {}
    while True:
        build = build_snapshot(store, cfg, cache, now=NOW)
        result = schedule(build.snapshot)
        for admission in result.admitted:
            admit(store, cfg, build.info[admission.key], admission.key, args.workers)
            running.append(admission.key)
        if finished >= args.finished or not running:
            break
        # The gangs admitted first finish, freeing room for the next pass's admissions.
        while running and finished < args.finished:
            finish(store, running.pop(0), args.workers)
            finished += 1
    bind(store, running, args.workers)
    return store


def admit(store: Store, cfg: OperatorConfig, info: Any, key: str, workers: int) -> None:
    tj = store.trainingjobs[key]
    name = tj["metadata"]["name"]
    admission = {
        "id": f"adm-{name}",
        "jobDigest": info.job_digest,
        "team": info.team,
        "flavor": info.flavor,
        "priority": info.priority,
        "gpus": info.gpus,
    }
    status = admitted(
        tj.get("status"),
        generation=1,
        now=NOW,
        admission={k: v for k, v in admission.items() if v is not None},
        team=info.team,
        gpus=info.gpus,
    )
    store.upsert_trainingjob({**tj, "status": status}, read=True)
    job = build_job(
        tj,
        name=name,
        namespace=NAMESPACE,
        uid=tj["metadata"]["uid"],
        team=TEAM,
        config=cfg,
        admission_id=admission["id"],
    )
    job["metadata"]["uid"] = f"job-{name}"
    job["metadata"]["resourceVersion"] = "1"
    job["spec"]["suspend"] = False
    job["status"] = {"active": workers, "ready": workers, "startTime": "2026-12-01T11:00:00Z"}
    store.upsert_job(job)
    record = store.jobs[key]
    running = from_job(
        store.trainingjobs[key].get("status"), record, workers=workers, generation=1, now=NOW
    )
    store.upsert_trainingjob({**store.trainingjobs[key], "status": running}, read=True)


def finish(store: Store, key: str, workers: int) -> None:
    record = store.jobs[key]
    name = key.split("/", 1)[1]
    job = {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": record.uid,
            "resourceVersion": "2",
            "labels": {"cadre.dev/trainingjob": name},
            "ownerReferences": [
                {
                    "kind": "TrainingJob",
                    "name": name,
                    "uid": store.trainingjobs[key]["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"suspend": False},
        "status": {
            "succeeded": workers,
            "completionTime": "2026-12-01T11:30:00Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    store.upsert_job(job)
    done = from_job(
        store.trainingjobs[key].get("status"),
        job_record(job),
        workers=workers,
        generation=1,
        now=NOW,
    )
    store.upsert_trainingjob({**store.trainingjobs[key], "status": done}, read=True)


def bind(store: Store, running: list[str], workers: int) -> None:
    requests = (("cpu", 4000), ("memory", 32 * 2**30), ("nvidia.com/gpu", 1))
    names = sorted(store.nodes)
    for n, key in enumerate(running):
        node = names[(n * workers // GPUS_PER_NODE) % len(names)]
        for w in range(workers):
            store.set_bound_pod(f"{key}-{w}", BoundPod(node, requests, key))


def timed(fn: Callable[[], object], passes: int) -> list[float]:
    out = []
    for _ in range(passes):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:,.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--finished", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=20)
    args = parser.parse_args()
    cfg = config()
    started = time.perf_counter()
    store = fill(args, cfg)
    filled = time.perf_counter() - started
    cache: dict[Any, Any] = {}
    build = build_snapshot(store, cfg, cache, now=NOW)  # the first pass fills the cache
    phases = [str((tj.get("status") or {}).get("phase")) for tj in store.trainingjobs.values()]
    counts = {p: phases.count(p) for p in sorted(set(phases))}
    pending = sum(1 for w in build.snapshot.workloads if not w.admitted)
    builds = timed(lambda: build_snapshot(store, cfg, cache, now=NOW), args.passes)
    snapshot = build_snapshot(store, cfg, cache, now=NOW).snapshot
    schedules = timed(lambda: schedule(snapshot), args.passes)
    selectors = [FlavourSelector(f.name, dict(f.node_labels)) for f in cfg.flavors]
    capacity = timed(
        lambda: capacity_from_nodes(
            selectors, (node_parts(n, r, cfg.flavors).node for n, r in store.nodes.items())
        ),
        args.passes,
    )
    placement = timed(
        lambda: node_capacities(store.nodes, store.bound_pods.values(), cfg, cache), args.passes
    )
    placement_afresh = timed(
        lambda: node_capacities(store.nodes, store.bound_pods.values(), cfg), args.passes
    )
    print(
        f"pass at S3's shape: {args.jobs:,} TrainingJobs of {args.workers} ({counts}), "
        f"{pending:,} pending, {args.nodes} nodes, {len(store.bound_pods):,} bound pods; "
        f"store filled in {filled:.1f} s; calibration {calibrate()}"
    )
    print(f"  build_snapshot, cache kept, nothing changed: median {ms(builds)}")
    print(f"    of which node placement (node_capacities, node parts kept): {ms(placement)}")
    print(
        f"  for comparison, every node parsed afresh: capacity per flavour (node_parts, no memo) "
        f"{ms(capacity)}, placement {ms(placement_afresh)}"
    )
    print(f"  schedule(): median {ms(schedules)}")
    print(f"  a pass: {ms([b + s for b, s in zip(builds, schedules, strict=True)])}")


if __name__ == "__main__":
    main()
