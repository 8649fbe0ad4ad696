"""An operator killed (SIGKILL) in the middle of admitting a queue, then started again,
admits no gang twice and never exceeds the quota: the store is rebuilt from the Jobs
(unsuspended = admitted) before the first pass. Sampled every 100 ms from outside.

Issue 5's 200-job test: 200 one-worker jobs of one GPU each, half on t4 and half on
a100. Team vision may use all 8 t4 GPUs (4 nominal + 4 borrowed from nlp) and all 32
a100 GPUs of the cluster (16 + 16), so at most 8 and 32 run at once; each runs 2 s
(KWOK). The restarted process has the same identity (as a container restarted in its
pod), so it takes its lease back at once. CADRE_RESTART_JOBS sets another count."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from burst import AdmissionSampler, all_succeeded, pods_per_job, trainingjob
from cadre_process import OperatorProcess, operator_kubeconfig
from localcluster import LocalCluster
from waiting import eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "vision-research"
TJS = f"/apis/cadre.dev/v1alpha1/namespaces/{NAMESPACE}/trainingjobs"
CAPACITY = {"t4": 8, "a100": 32}
"""GPUs of each flavour in the cluster, all within team vision's quota plus borrowing."""
COUNT = int(os.environ.get("CADRE_RESTART_JOBS", "200"))


def test_killed_operator_restarts_without_double_admission(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "-f", str(REPO / "examples" / "budgets.yaml"))
    cluster.wait_default_service_account(NAMESPACE)
    kubeconfig = operator_kubeconfig(cluster, tmp_path / "kubeconfig")
    run = uuid.uuid4().hex[:6]
    flavors = {f"restart-{run}-{i:03d}": ("t4", "a100")[i % 2] for i in range(COUNT)}
    first = OperatorProcess(kubeconfig, tmp_path / "first")
    second = OperatorProcess(kubeconfig, tmp_path / "second")
    t0 = time.monotonic()
    with AdmissionSampler(cluster, NAMESPACE, flavors) as sampler:
        try:
            first.start()
            # Kill it while it admits, once a quarter of the jobs have been admitted (most
            # still wait, and jobs are still being created while it is down).
            target = max(COUNT // 4, 1)
            killed_at = admitted_at_kill = -1

            def kill_and_restart() -> None:
                nonlocal killed_at, admitted_at_kill
                first.kill()
                killed_at, admitted_at_kill = len(sampler.samples), len(sampler.started)
                second.start()

            for name, flavor in flavors.items():
                cluster.api.create(TJS, trainingjob(name, run, flavor))
                if killed_at < 0 and len(sampler.started) >= target:
                    kill_and_restart()
            created_in = time.monotonic() - t0
            if killed_at < 0:
                eventually("a quarter admitted", lambda: len(sampler.started) >= target, 60)
                kill_and_restart()
            eventually(
                "every job Succeeded",
                lambda: all_succeeded(cluster, NAMESPACE, run, COUNT),
                timeout=120,
                interval=0.2,
            )
            elapsed = time.monotonic() - t0
            # Every gang ran once: one pod per job, and every job succeeded the first time.
            per_job = pods_per_job(cluster, NAMESPACE, run)
            assert per_job == dict.fromkeys(flavors, 1), per_job
        finally:
            first.stop()
            second.stop()
            for name in flavors:
                cluster.api.call("DELETE", f"{TJS}/{name}", ok=(404,))
    samples = sampler.samples
    print(
        f"\n{COUNT} jobs created in {created_in:.1f}s, all Succeeded {elapsed:.1f}s after "
        f"the first create; operator killed with {admitted_at_kill} admitted; "
        f"{len(samples)} samples, {killed_at} before the kill; most GPUs admitted at once: "
        f"{sampler.peak()} of {CAPACITY}"
    )
    sampler.assert_sampled_often()
    over = sampler.over(CAPACITY)
    assert not over, over[:3]
