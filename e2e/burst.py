"""A burst of one-worker TrainingJobs and a sampler of what is admitted, for the e2e tests
that kill or partition operators in the middle of admitting a queue.

The sampler reads every Job of the namespace every 100 ms (from start to start) from
outside the operator and records the GPUs held per flavour: Jobs unsuspended and not
finished. A test then checks that no sample exceeds the capacity (or quota) of a flavour.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from localcluster import LocalCluster
from waiting import eventually

RBS = "/apis/cadre.dev/v1alpha1/resourcebudgets"
CAPACITY = {"t4": 8, "a100": 32}
"""GPUs of each flavour in the cluster (and a test team's quota)."""
PER_GPU_SECOND = {"a100": Decimal(1), "t4": Decimal("0.5")}
"""The e2e `config` fixture's prices (no CPU or memory prices)."""
LEASE = {"leaseDurationSeconds": 6, "renewDeadlineSeconds": 4, "retryPeriodSeconds": 1}


def trainingjob(
    name: str,
    run_label: str,
    flavor: str,
    runtime: str = "2s",
    *,
    workers: int = 1,
    gpus: int = 1,
    **resources: str,
) -> dict[str, Any]:
    """`workers` workers (one by default) with `gpus` GPUs of `flavor` each (and `cpu`,
    `memory` if given), running `runtime` (KWOK's pod-complete delay)."""
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "labels": {"run": run_label}},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            **({"workers": workers} if workers != 1 else {}),
            "resources": {"flavor": flavor, "gpus": gpus, **resources},
            "podMetadata": {
                "labels": {"run": run_label},
                "annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": runtime},
            },
        },
    }


def finished(job: dict[str, Any]) -> bool:
    return any(
        c["type"] in ("Complete", "Failed") and c["status"] == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def admitted_gpus(jobs: list[dict[str, Any]], flavors: dict[str, str]) -> dict[str, int]:
    """GPUs held by admitted gangs per flavour (one GPU per worker): Jobs unsuspended and
    not finished. `flavors`: Job name -> its flavour."""
    held = dict.fromkeys(set(flavors.values()), 0)
    for job in jobs:
        flavor = flavors.get(job["metadata"]["name"])
        if flavor is not None and not job["spec"].get("suspend") and not finished(job):
            held[flavor] += int(job["spec"]["parallelism"])
    return held


class AdmissionSampler:
    """Samples the admitted GPUs of `flavors`' Jobs in `namespace` every 100 ms."""

    def __init__(self, cluster: LocalCluster, namespace: str, flavors: dict[str, str]) -> None:
        self.cluster = cluster
        self.path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
        self.flavors = flavors
        self.samples: list[dict[str, int]] = []
        self.started: set[str] = set()
        """Jobs seen unsuspended (admitted) at least once."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = 0.0
        self.t1 = 0.0

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            jobs = self.cluster.api.get(self.path)["items"]
            mine = [j for j in jobs if j["metadata"]["name"] in self.flavors]
            self.started.update(j["metadata"]["name"] for j in mine if not j["spec"].get("suspend"))
            self.samples.append(admitted_gpus(mine, self.flavors))
            due += 0.1
            time.sleep(max(0.0, due - time.monotonic()))

    def __enter__(self) -> AdmissionSampler:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.t1 = time.monotonic()

    def peak(self) -> dict[str, int]:
        """The most GPUs of each flavour held at once."""
        flavours = set(self.flavors.values())
        return {f: max((s.get(f, 0) for s in self.samples), default=0) for f in flavours}

    def over(self, limits: dict[str, int]) -> list[dict[str, int]]:
        """The samples where a flavour held more than its limit."""
        return [s for s in self.samples if any(s.get(f, 0) > n for f, n in limits.items())]

    def assert_sampled_often(self) -> None:
        seconds = self.t1 - self.t0
        assert len(self.samples) > seconds / 0.5, (len(self.samples), seconds)


def pods_per_job(cluster: LocalCluster, namespace: str, run_label: str) -> dict[str, int]:
    pods = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector=run%3D{run_label}")
    per_job: dict[str, int] = {}
    for pod in pods["items"]:
        job_name = pod["metadata"]["labels"]["cadre.dev/trainingjob"]
        per_job[job_name] = per_job.get(job_name, 0) + 1
    return per_job


def all_succeeded(cluster: LocalCluster, namespace: str, run_label: str, count: int) -> bool:
    path = f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/trainingjobs"
    items = cluster.api.get(f"{path}?labelSelector=run%3D{run_label}")["items"]
    phases = [(i.get("status") or {}).get("phase") for i in items]
    return len(items) == count and all(p == "Succeeded" for p in phases)


# ---- create/admit/delete cycles (bounded memory) -------------------------------------
PER_TRAININGJOB_STATE = (
    "trainingjobs",
    "jobs",
    "expectations",
    "admitted_at",
    "retired_jobs",
    "deleted_trainingjobs",
    "pod_usage",
    "closed_pods",
    "pods",
)
"""The operator's cache tables that hold something per TrainingJob or pod (/readyz)."""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def one_cycle(cluster: LocalCluster, namespace: str, name: str, flavor: str = "a100") -> None:
    """Create a TrainingJob, wait until it is admitted, delete it."""
    tjs = f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/trainingjobs"
    cluster.api.create(tjs, trainingjob(name, "churn", flavor, runtime="10m"))
    eventually(
        f"{name} admitted",
        lambda: (
            (cluster.api.get(f"{tjs}/{name}").get("status") or {}).get("phase")
            in ("Admitted", "Running")
        ),
        timeout=300,
        interval=0.05,
    )
    cluster.api.call("DELETE", f"{tjs}/{name}")


def churn(cluster: LocalCluster, namespace: str, cycles: int, in_flight: int = 16) -> None:
    """`cycles` create/admit/delete cycles, `in_flight` at once (admissions are bounded by
    the cluster's 40 GPUs), t4 and a100 in turn."""
    run = uuid.uuid4().hex[:4]

    def cycle(i: int) -> None:
        one_cycle(cluster, namespace, f"churn-{run}-{i:05d}", ("t4", "a100")[i % 2])

    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(cycle, range(cycles)))


def leftovers(cluster: LocalCluster, namespace: str) -> dict[str, int]:
    """Jobs, Services, pods and TrainingJobs still in the namespace."""
    counts = {}
    for kind, path in (
        ("jobs", f"/apis/batch/v1/namespaces/{namespace}/jobs"),
        ("services", f"/api/v1/namespaces/{namespace}/services"),
        ("pods", f"/api/v1/namespaces/{namespace}/pods"),
        ("trainingjobs", f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/trainingjobs"),
    ):
        counts[kind] = len(cluster.api.get(path)["items"])
    return {k: v for k, v in counts.items() if v}


def operator_leftovers(readiness: dict[str, Any]) -> dict[str, Any]:
    """What the operator still holds per TrainingJob or pod (its /readyz answer)."""
    cache, per_object = readiness["cache"], readiness["per_object"]
    left = {k: cache[k] for k in PER_TRAININGJOB_STATE if cache.get(k)}
    return left | {k: v for k, v in per_object.items() if v}
