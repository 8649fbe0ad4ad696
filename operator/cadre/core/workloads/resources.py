"""A workload's flavour, placement and per-pod resources, as its pods ask for them."""

from __future__ import annotations

from typing import Any, NamedTuple

from cadre.core.api.common import WorkerResources
from cadre.core.api.config import Flavor, OperatorConfig
from cadre.core.units.quantity import to_bytes, to_millicores
from cadre.core.workloads.errors import FlavourRequiredError, UnknownFlavourError


class PodRequest(NamedTuple):
    """What one pod asks of its flavour, in the admission core's integer units: GPUs as a
    count, CPU in millicores (rounded up), memory in bytes (rounded up)."""

    flavor: str | None
    gpus: int
    cpu_milli: int
    memory_bytes: int


def pod_request(resources: WorkerResources) -> PodRequest:
    """It matches what `container_resources` puts in the requests (absent is 0)."""
    return PodRequest(
        flavor=resources.flavor,
        gpus=resources.gpus,
        cpu_milli=0 if resources.cpu is None else to_millicores(resources.cpu),
        memory_bytes=0 if resources.memory is None else to_bytes(resources.memory),
    )


def resolve_flavour(resources: WorkerResources, config: OperatorConfig) -> Flavor | None:
    """The config's flavour of the resources; None for a workload without flavour and
    without GPUs."""
    known = [f.name for f in config.flavors]
    name = resources.flavor
    if name is None:
        if resources.gpus > 0:
            raise FlavourRequiredError(resources.gpus, known)
        return None
    flavour = config.flavor(name)
    if flavour is None:
        raise UnknownFlavourError(name, known)
    return flavour


def container_resources(resources: WorkerResources, flavour: Flavor | None) -> dict[str, Any]:
    """A container's requests and limits."""
    # GPUs: extended resources must have requests == limits. Memory: limit = request, so a
    # pod is OOM-killed at what it asked for instead of taking a neighbour's memory.
    # CPU: a request only; a CPU limit throttles data loaders and servers for no gain.
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if resources.cpu is not None:
        requests["cpu"] = str(resources.cpu)
    if resources.memory is not None:
        requests["memory"] = limits["memory"] = str(resources.memory)
    if resources.gpus > 0 and flavour is not None:
        requests[flavour.gpu_resource] = limits[flavour.gpu_resource] = str(resources.gpus)
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = dict(sorted(limits.items()))
    if requests:
        out["requests"] = dict(sorted(requests.items()))
    return out


def place_on_flavour(pod_spec: dict[str, Any], flavour: Flavor | None) -> None:
    """The flavour's nodeSelector and tolerations, into a pod spec."""
    if flavour is None:
        return
    pod_spec["nodeSelector"] = dict(sorted(flavour.node_labels.items()))
    if flavour.tolerations:
        pod_spec["tolerations"] = [t.to_wire() for t in flavour.tolerations]
