"""Bounded memory: TrainingJobs created, admitted and deleted, many times over, leave
nothing behind: no Job, Service or pod (no accounting finalizer stuck), no entry in the
operator's cache or in its writers' per-object state. Its RSS is printed; the figures at
10,000 cycles come from bench/bench_churn.py (docs/benchmarks.md).
CADRE_CHURN_CYCLES sets the count (default 200)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from burst import churn, leftovers, one_cycle, operator_leftovers, rss_kib
from cadre_process import OperatorProcess
from localcluster import LocalCluster
from waiting import eventually

pytestmark = pytest.mark.e2e

CYCLES = int(os.environ.get("CADRE_CHURN_CYCLES", "200"))


def test_create_admit_delete_cycles_leave_nothing_behind(
    cluster: LocalCluster, tmp_path: Path, team: str, kubeconfig: Path, config: Callable[..., Path]
) -> None:
    op = OperatorProcess(kubeconfig, tmp_path / "op", config()).start()
    try:
        eventually("leading", op.leading)
        # Warm up (imports, caches, connection pools), then take the baseline.
        one_cycle(cluster, team, "warm-up")
        # (A deleted pod is held by Cadre's finalizer until its containers stopped: KWOK
        # does not say so, so it is closed at the end of its grace period, 30 s, + 30 s.)
        held = lambda: operator_leftovers(op.readiness())  # noqa: E731
        eventually("warm-up gone", lambda: not held(), timeout=120, state=held)
        rss_before = rss_kib(op.pid)
        churn(cluster, team, CYCLES)
        eventually(
            "no Job, Service, pod or TrainingJob left",
            lambda: not leftovers(cluster, team),
            timeout=180,
            state=lambda: leftovers(cluster, team),
        )
        eventually(
            "the operator's per-object state empty", lambda: not held(), timeout=120, state=held
        )
        rss_after = rss_kib(op.pid)
        growth = (rss_after - rss_before) / rss_before
        print(
            f"\n{CYCLES} create/admit/delete cycles: nothing left in the cluster or the "
            f"operator's state ({op.readiness()['cache']}); RSS {rss_before / 1024:.1f} MiB "
            f"before, {rss_after / 1024:.1f} MiB after ({growth:+.1%})"
        )
    finally:
        op.stop()
