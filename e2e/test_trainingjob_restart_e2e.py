"""An operator killed (SIGKILL) in the middle of admitting a queue, then started again,
admits no gang twice and never exceeds the quota: the store is rebuilt from the Jobs
(unsuspended = admitted) before the first pass. Sampled every 100 ms from outside.

A small version of issue 5's 200-job test: 10 one-worker jobs of 4 t4 GPUs each, of which
the cluster (8 t4 GPUs, all usable by team vision) runs two at a time."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cadre_process import OperatorProcess, operator_kubeconfig
from localcluster import LocalCluster

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "vision-research"
TJS = f"/apis/cadre.dev/v1alpha1/namespaces/{NAMESPACE}/trainingjobs"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
T4_GPUS = 8
COUNT = 10


def trainingjob(name: str, run_label: str) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "labels": {"run": run_label}},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "resources": {"flavor": "t4", "gpus": 4},
            "podMetadata": {
                "labels": {"run": run_label},
                "annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "2s"},
            },
        },
    }


def admitted_gpus(jobs: list[dict[str, Any]]) -> int:
    """GPUs held by admitted gangs: Jobs unsuspended and not finished (4 GPUs each)."""
    held = 0
    for job in jobs:
        finished = any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True"
            for c in (job.get("status") or {}).get("conditions") or []
        )
        if not job["spec"].get("suspend") and not finished:
            held += 4 * int(job["spec"]["parallelism"])
    return held


def test_killed_operator_restarts_without_double_admission(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "-f", str(REPO / "examples" / "budgets.yaml"))
    cluster.wait_default_service_account(NAMESPACE)
    kubeconfig = operator_kubeconfig(cluster, tmp_path / "kubeconfig")
    run = uuid.uuid4().hex[:6]
    names = [f"restart-{run}-{i:02d}" for i in range(COUNT)]
    selector = f"?labelSelector=run%3D{run}"

    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            jobs = cluster.api.get(JOBS + "?labelSelector=cadre.dev%2Ftrainingjob")["items"]
            mine = [j for j in jobs if j["metadata"]["name"] in names]
            samples.append(admitted_gpus(mine))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    first = OperatorProcess(kubeconfig, tmp_path / "first")
    second = OperatorProcess(kubeconfig, tmp_path / "second")
    try:
        first.start()
        for name in names:
            cluster.api.create(TJS, trainingjob(name, run))
        # Kill it while it admits: once the first gangs run and the rest wait.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(samples[-3:]):
            time.sleep(0.05)
        time.sleep(2.5)
        first.kill()
        killed_at = len(samples)
        second.start()

        def all_finished() -> bool:
            items = cluster.api.get(TJS + selector)["items"]
            phases = [(i.get("status") or {}).get("phase") for i in items]
            return len(items) == COUNT and all(p == "Succeeded" for p in phases)

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all_finished():
            time.sleep(0.2)
        assert all_finished(), second.log_tail()
        # Every gang ran once: one pod per job, and every job succeeded the first time.
        pods = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/pods{selector}")["items"]
        per_job: dict[str, int] = {}
        for pod in pods:
            job_name = pod["metadata"]["labels"]["cadre.dev/trainingjob"]
            per_job[job_name] = per_job.get(job_name, 0) + 1
        assert per_job == dict.fromkeys(names, 1), per_job
    finally:
        stop.set()
        sampler.join(timeout=5)
        first.stop()
        second.stop()
        for name in names:
            cluster.api.call("DELETE", f"{TJS}/{name}", ok=(404,))

    print(
        f"\n{len(samples)} samples, {killed_at} before the kill; "
        f"most GPUs admitted at once: {max(samples)} of {T4_GPUS}"
    )
    assert max(samples) <= T4_GPUS, samples
