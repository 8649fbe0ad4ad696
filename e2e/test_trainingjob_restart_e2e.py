"""An operator killed (SIGKILL) in the middle of admitting a queue, then started again,
admits no gang twice and never exceeds the quota: the store is rebuilt from the Jobs
(unsuspended = admitted) before the first pass. Sampled every 100 ms from outside.

Issue 5's 200-job test: 200 one-worker jobs of one GPU each, half on t4 and half on
a100. Team vision may use all 8 t4 GPUs (4 nominal + 4 borrowed from nlp) and all 32
a100 GPUs of the cluster (16 + 16), so at most 8 and 32 run at once; each runs 2 s
(KWOK). CADRE_RESTART_JOBS sets another count."""

from __future__ import annotations

import os
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
CAPACITY = {"t4": 8, "a100": 32}
"""GPUs of each flavour in the cluster, all within team vision's quota plus borrowing."""
COUNT = int(os.environ.get("CADRE_RESTART_JOBS", "200"))


def flavor_of(name: str) -> str:
    return name.split("-")[2]


def trainingjob(name: str, run_label: str) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "labels": {"run": run_label}},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "resources": {"flavor": flavor_of(name), "gpus": 1},
            "podMetadata": {
                "labels": {"run": run_label},
                "annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "2s"},
            },
        },
    }


def admitted_gpus(jobs: list[dict[str, Any]]) -> dict[str, int]:
    """GPUs held by admitted gangs per flavour: Jobs unsuspended and not finished (one
    GPU per worker)."""
    held = dict.fromkeys(CAPACITY, 0)
    for job in jobs:
        finished = any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True"
            for c in (job.get("status") or {}).get("conditions") or []
        )
        if not job["spec"].get("suspend") and not finished:
            held[flavor_of(job["metadata"]["name"])] += int(job["spec"]["parallelism"])
    return held


def test_killed_operator_restarts_without_double_admission(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "-f", str(REPO / "examples" / "budgets.yaml"))
    cluster.wait_default_service_account(NAMESPACE)
    kubeconfig = operator_kubeconfig(cluster, tmp_path / "kubeconfig")
    run = uuid.uuid4().hex[:6]
    names = [f"restart-{run}-{('t4', 'a100')[i % 2]}-{i:03d}" for i in range(COUNT)]
    selector = f"?labelSelector=run%3D{run}"

    samples: list[dict[str, int]] = []
    started: set[str] = set()
    """Jobs seen unsuspended (admitted) by the sampler."""
    stop = threading.Event()
    wanted = set(names)

    def sample() -> None:
        due = time.monotonic()
        while not stop.is_set():
            jobs = cluster.api.get(JOBS + "?labelSelector=cadre.dev%2Ftrainingjob")["items"]
            mine = [j for j in jobs if j["metadata"]["name"] in wanted]
            started.update(j["metadata"]["name"] for j in mine if not j["spec"].get("suspend"))
            samples.append(admitted_gpus(mine))
            due += 0.1  # every 100 ms from start to start, when a list takes less
            time.sleep(max(0.0, due - time.monotonic()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    first = OperatorProcess(kubeconfig, tmp_path / "first")
    second = OperatorProcess(kubeconfig, tmp_path / "second")
    t0 = time.monotonic()
    try:
        first.start()
        # Kill it while it admits, once a quarter of the jobs have been admitted (most
        # still wait, and jobs are still being created while it is down).
        target = max(COUNT // 4, 1)
        killed_at = admitted_at_kill = -1

        def kill_and_restart() -> None:
            nonlocal killed_at, admitted_at_kill
            first.kill()
            killed_at, admitted_at_kill = len(samples), len(started)
            second.start()

        for name in names:
            cluster.api.create(TJS, trainingjob(name, run))
            if killed_at < 0 and len(started) >= target:
                kill_and_restart()
        created_in = time.monotonic() - t0
        deadline = time.monotonic() + 60
        while killed_at < 0 and time.monotonic() < deadline and len(started) < target:
            time.sleep(0.05)
        if killed_at < 0:
            kill_and_restart()

        def all_finished() -> bool:
            items = cluster.api.get(TJS + selector)["items"]
            phases = [(i.get("status") or {}).get("phase") for i in items]
            return len(items) == COUNT and all(p == "Succeeded" for p in phases)

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all_finished():
            time.sleep(0.2)
        assert all_finished(), second.log_tail()
        elapsed = time.monotonic() - t0
        # Every gang ran once: one pod per job, and every job succeeded the first time.
        pods = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/pods{selector}")["items"]
        per_job: dict[str, int] = {}
        for pod in pods:
            job_name = pod["metadata"]["labels"]["cadre.dev/trainingjob"]
            per_job[job_name] = per_job.get(job_name, 0) + 1
        assert per_job == dict.fromkeys(names, 1), per_job
    finally:
        sampled_for = time.monotonic() - t0
        stop.set()
        sampler.join(timeout=5)
        first.stop()
        second.stop()
        for name in names:
            cluster.api.call("DELETE", f"{TJS}/{name}", ok=(404,))
    peak = {f: max(s[f] for s in samples) for f in CAPACITY}
    print(
        f"\n{COUNT} jobs created in {created_in:.1f}s, all Succeeded {elapsed:.1f}s after "
        f"the first create; operator killed with {admitted_at_kill} admitted; "
        f"{len(samples)} samples ({sampled_for / max(len(samples), 1) * 1000:.0f} ms apart), "
        f"{killed_at} before the kill; most GPUs admitted at once: {peak} of {CAPACITY}"
    )
    assert len(samples) > sampled_for / 0.5  # really sampled, not a handful of times
    for flavor, capacity in CAPACITY.items():
        over = [s for s in samples if s[flavor] > capacity]
        assert not over, (flavor, over[:3])
