"""Bounded memory at scale: create/admit/delete cycles of TrainingJobs (figures only).

    .venv/bin/python bench/bench_churn.py [--cycles 10000] [--in-flight 16]

Starts the whole local cluster in a temporary dir, one team with all 40 GPUs, and `cadre
run` under its ServiceAccount; takes the operator's RSS after --warm-up cycles, then runs
--cycles cycles (create a one-GPU TrainingJob, wait until it is admitted, delete it;
--in-flight at once), waits until the namespace holds no Job, Service, pod or TrainingJob
and the operator's per-object state (its cache and its writers' maps, from /readyz) is
empty, and prints: cycles per second, RSS before / after / peak, what is left
(nothing, or it says what), and the operator's write counts.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "e2e", REPO / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from burst import (  # noqa: E402
    CAPACITY,
    RBS,
    churn,
    leftovers,
    one_cycle,
    operator_leftovers,
    rss_kib,
)
from cadre_process import EXAMPLE_CONFIG, OperatorProcess, operator_kubeconfig  # noqa: E402
from localcluster import LocalCluster  # noqa: E402


def wait(what: str, check: Callable[[], Any], timeout: float) -> float:
    """Poll check() until it holds; exit with `what` when it does not in time."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - started


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def wait_state_empty(op: OperatorProcess, what: str) -> None:
    """Wait until the operator holds nothing per TrainingJob or pod; say what it holds if not."""
    try:
        # Up to a resync (resyncSeconds, 300) and a margin: a forgetting missed is repaired
        # by the next one (AdmissionLoop.forget_gone), which the log then names.
        wait(what, lambda: not operator_leftovers(op.readiness()), 400)
    except SystemExit:
        print(f"left in the operator: {operator_leftovers(op.readiness())}")
        # The run's folder is temporary: keep the operator's log, where the path that
        # left the state behind can be read.
        kept = Path(tempfile.gettempdir()) / f"cadre-bench-churn-{int(time.time())}.log"
        shutil.copyfile(op.log_path, kept)
        print(f"the operator's log: {kept}")
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10000)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument(
        "--warm-up",
        type=int,
        default=200,
        help="cycles before the RSS baseline (pools, caches and arenas settle first)",
    )
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=None,
        help="the operator's controller.gcThreshold (the example config's by default)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cadre-bench-churn-") as tmp:
        work = Path(tmp)
        with LocalCluster(work / "cluster", "cluster", die_with_parent=True) as cluster:
            cluster.install_crds(sorted((REPO / "crds").glob("*.yaml")))
            team = f"churn-{uuid.uuid4().hex[:4]}"
            cluster.create_namespace(team)
            cluster.wait_default_service_account(team)
            cluster.api.create(
                RBS,
                {
                    "apiVersion": "cadre.dev/v1alpha1",
                    "kind": "ResourceBudget",
                    "metadata": {"name": team},
                    "spec": {
                        "namespaces": [team],
                        "quota": [{"flavor": f, "gpus": n} for f, n in CAPACITY.items()],
                    },
                },
            )
            config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
            if args.gc_threshold is not None:
                config.setdefault("controller", {})["gcThreshold"] = args.gc_threshold
            path = work / "config.yaml"
            path.write_text(yaml.safe_dump(config))
            kubeconfig = operator_kubeconfig(cluster, work / "kubeconfig")
            op = OperatorProcess(kubeconfig, work, path).start(timeout=120)
            try:
                wait("leading", op.leading, 60)
                one_cycle(cluster, team, "warm-up")
                churn(cluster, team, args.warm_up, args.in_flight)
                wait("warm-up gone", lambda: not leftovers(cluster, team), 900)
                wait_state_empty(op, "warm-up state gone")
                rss_before = rss_kib(op.pid)
                started = time.monotonic()
                churn(cluster, team, args.cycles, args.in_flight)
                seconds = time.monotonic() - started
                drained = wait("nothing left", lambda: not leftovers(cluster, team), 900)
                wait_state_empty(op, "state empty")
                rss_after, peak = rss_kib(op.pid), peak_kib(op.pid)
                writes = op.api_requests(ok_only=True)
            finally:
                op.stop()
    print(
        f"\n{args.cycles} create/admit/delete cycles ({args.in_flight} in flight) in "
        f"{seconds:.0f} s ({args.cycles / seconds:.1f} per second); the cluster drained "
        f"{drained:.0f} s later"
    )
    print(
        f"operator RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after "
        f"({(rss_after - rss_before) / rss_before:+.1%}), peak {peak / 1024:.1f} MiB; "
        f"controller.gcThreshold {config.get('controller', {}).get('gcThreshold')}"
    )
    print("left in the cluster and in the operator's state: nothing")
    mutating = {k: int(v) for k, v in writes.items() if k[0] in ("POST", "PUT", "PATCH", "DELETE")}
    print(f"operator writes (2xx): {dict(sorted(mutating.items()))}")


if __name__ == "__main__":
    main()
