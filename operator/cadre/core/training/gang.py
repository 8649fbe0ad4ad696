"""What a TrainingJob's gang asks of its flavour, in the admission core's integer units."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from cadre.core.api.trainingjob import TrainingJobSpec
from cadre.core.workloads.resources import pod_request


class GangRequest(NamedTuple):
    """Per-pod request of a gang of `pods` identical workers on one flavour.

    Units are those of `cadre.core.scheduling.types.Resources`: GPUs as a count, CPU in
    millicores (rounded up), memory in bytes (rounded up). `flavor` is None only for a
    job that names no flavour (no GPUs); which quota such a job counts against is the
    admission adapter's decision.
    """

    flavor: str | None
    pods: int
    gpus_per_pod: int
    cpu_milli_per_pod: int
    memory_bytes_per_pod: int

    @property
    def gpus(self) -> int:
        """GPUs of the whole gang."""
        return self.pods * self.gpus_per_pod

    @property
    def cpu_milli(self) -> int:
        """CPU millicores of the whole gang."""
        return self.pods * self.cpu_milli_per_pod

    @property
    def memory_bytes(self) -> int:
        """Memory bytes of the whole gang."""
        return self.pods * self.memory_bytes_per_pod


def gang_request(spec: TrainingJobSpec) -> GangRequest:
    """The gang's request: `workers` pods, each with the spec's per-worker resources.

    It matches what `build_job` puts in the pod's requests (absent cpu or memory is 0).
    """
    pod = pod_request(spec.resources)
    return GangRequest(
        flavor=pod.flavor,
        pods=spec.workers,
        gpus_per_pod=pod.gpus,
        cpu_milli_per_pod=pod.cpu_milli,
        memory_bytes_per_pod=pod.memory_bytes,
    )


def admission_record(request: GangRequest) -> dict[str, Any]:
    """The request as the admission records what it holds (`status.admission`'s workers
    and perWorker, beside its flavor and gpus)."""
    return {
        "gpus": request.gpus,
        "workers": request.pods,
        "perWorker": {
            "gpus": request.gpus_per_pod,
            "cpuMillicores": request.cpu_milli_per_pod,
            "memoryBytes": request.memory_bytes_per_pod,
        },
    }


def matches_admission(admission: Mapping[str, Any], request: GangRequest) -> bool:
    """The spec's request is what the admission holds: what `admission_record` would
    write for it. An admission written before it recorded workers and perWorker is
    compared by flavour and GPUs, what it holds."""
    wanted = {"flavor": request.flavor, **admission_record(request)}
    if "workers" not in admission or not isinstance(admission.get("perWorker"), Mapping):
        wanted = {"flavor": wanted["flavor"], "gpus": wanted["gpus"]}
    return all(admission.get(field, value) == value for field, value in wanted.items())
