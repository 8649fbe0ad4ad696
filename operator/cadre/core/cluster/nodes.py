"""Nodes as the admission pass places pods on them: what each has, what every pod bound to
it (Cadre's or not) takes, and whether new pods may go there. Pure: the controller's
watch of bound pods fills the store, this reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cadre.core.api.config import Flavor, OperatorConfig, Toleration
from cadre.core.api.names import LABEL_MODELDEPLOYMENT, LABEL_TRAININGJOB
from cadre.core.scheduling import Node, NodeCapacity, Resources
from cadre.core.units.quantity import to_bytes, to_millicores

if TYPE_CHECKING:
    from cadre.core.cluster.store import NodeRecord

__all__ = [
    "BoundPod",
    "NodeParts",
    "bound_pod",
    "flavour_of",
    "node_capacities",
    "node_parts",
    "pod_requests",
    "tolerated",
]


@dataclass(frozen=True, slots=True)
class BoundPod:
    """A pod bound to a node and not finished, slimmed to what placement needs."""

    node: str
    requests: tuple[tuple[str, int], ...]
    """Resource name -> amount: CPU in millicores, memory in bytes, others as counts."""
    owner: str | None = None
    """The workload key of a Cadre pod ("ns/name", "md:ns/name"); None for others."""


def _amount(resource: str, value: Any) -> int:
    if resource == "memory":
        return to_bytes(value)
    millis = to_millicores(value)
    return millis if resource == "cpu" else -(-millis // 1000)


def _requests_of(container: Mapping[str, Any]) -> dict[str, int]:
    """A container's requests; a resource with a limit and no request is requested at its
    limit (as the API server defaults it)."""
    resources = container.get("resources") or {}
    merged = dict(resources.get("limits") or {}) | dict(resources.get("requests") or {})
    out: dict[str, int] = {}
    for resource, value in merged.items():
        try:
            out[str(resource)] = _amount(str(resource), value)
        except (ValueError, TypeError, ArithmeticError):
            continue  # the API server validated it; never let one pod break a pass
    return out


def pod_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """What the scheduler reserves for a pod: its containers and sidecars (init containers
    that keep running) summed, at least the largest run-to-completion init container with
    the sidecars started before it, plus the pod's overhead."""
    total: dict[str, int] = {}
    sidecars: dict[str, int] = {}
    peak: dict[str, int] = {}
    for init in spec.get("initContainers") or ():
        asked = _requests_of(init)
        if init.get("restartPolicy") == "Always":
            for resource, value in asked.items():
                sidecars[resource] = sidecars.get(resource, 0) + value
            continue
        for resource, value in asked.items():
            peak[resource] = max(peak.get(resource, 0), value + sidecars.get(resource, 0))
    for container in spec.get("containers") or ():
        for resource, value in _requests_of(container).items():
            total[resource] = total.get(resource, 0) + value
    for resource, value in sidecars.items():
        total[resource] = total.get(resource, 0) + value
    for resource, value in peak.items():
        total[resource] = max(total.get(resource, 0), value)
    for resource, value in (spec.get("overhead") or {}).items():
        try:
            total[str(resource)] = total.get(str(resource), 0) + _amount(str(resource), value)
        except (ValueError, TypeError, ArithmeticError):
            continue
    return total


def bound_pod(pod: Mapping[str, Any]) -> BoundPod | None:
    """The pod as placement sees it; None when it is not bound or has finished."""
    spec = pod.get("spec") or {}
    node = spec.get("nodeName")
    phase = (pod.get("status") or {}).get("phase")
    if not node or phase in ("Succeeded", "Failed"):
        return None
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    namespace = metadata.get("namespace", "")
    owner: str | None = None
    if labels.get(LABEL_MODELDEPLOYMENT):
        owner = f"md:{namespace}/{labels[LABEL_MODELDEPLOYMENT]}"
    elif labels.get(LABEL_TRAININGJOB):
        owner = f"{namespace}/{labels[LABEL_TRAININGJOB]}"
    return BoundPod(str(node), tuple(sorted(pod_requests(spec).items())), owner)


def tolerated(taints: Sequence[Mapping[str, Any]], tolerations: Sequence[Toleration]) -> bool:
    """Do the tolerations cover every NoSchedule and NoExecute taint (as the scheduler's
    TaintToleration filter reads them)?"""
    for taint in taints:
        effect = taint.get("effect")
        if effect not in ("NoSchedule", "NoExecute"):
            continue
        key, value = taint.get("key"), taint.get("value") or ""
        if not any(
            (t.effect is None or t.effect == effect)
            and (t.key == key)
            and (t.operator == "Exists" or (t.value or "") == value)
            for t in tolerations
        ):
            return False
    return True


def flavour_of(record: NodeRecord, flavours: Sequence[Flavor]) -> Flavor | None:
    """The first flavour whose labels the node all carries (as capacity_from_nodes)."""
    for flavour in flavours:
        if all(record.labels.get(k) == v for k, v in flavour.node_labels.items()):
            return flavour
    return None


def _resources(amounts: Mapping[str, int], gpu_resource: str) -> Resources:
    return Resources(amounts.get(gpu_resource, 0), amounts.get("cpu", 0), amounts.get("memory", 0))


@dataclass(frozen=True, slots=True)
class NodeParts:
    """What a node record means to admission, whatever is bound to it: parsed once per
    record, for the capacity of its flavour and for placing pods on it."""

    record: NodeRecord
    flavour: Flavor | None
    node: Node
    """The scheduling core's Node, which capacity_from_nodes counts in its flavour: the
    flavour's GPU resource, CPU and memory (nothing for a node of no flavour)."""
    schedulable: bool
    """Not cordoned, and every NoSchedule/NoExecute taint tolerated by its flavour."""


_NODE_PARTS: Final = "node parts"
"""The memo's key prefix of a node's NodeParts."""


def _allocatable(record: NodeRecord, flavour: Flavor) -> Resources:
    alloc = record.allocatable
    raw_gpus = alloc.get(flavour.gpu_resource)
    # Floored: a fraction of a device is no device (requests round up, see _amount).
    gpus = to_millicores(raw_gpus) // 1000 if raw_gpus is not None else 0
    return Resources(
        int(gpus), to_millicores(alloc.get("cpu", 0)), to_bytes(alloc.get("memory", 0))
    )


def node_parts(
    name: str,
    record: NodeRecord,
    flavours: Sequence[Flavor],
    memo: MutableMapping[Any, Any] | None = None,
) -> NodeParts:
    """The node's parts, kept in `memo` (the caller's, for one config) until the store
    replaces the node's record: a pass parses no quantity of a node that did not change."""
    parts = memo.get((_NODE_PARTS, name)) if memo is not None else None
    if isinstance(parts, NodeParts) and parts.record is record:
        return parts
    flavour = flavour_of(record, flavours)
    if flavour is None:
        parts = NodeParts(
            record, None, Node(record.labels, Resources(), record.unschedulable), False
        )
    else:
        parts = NodeParts(
            record,
            flavour,
            Node(record.labels, _allocatable(record, flavour), record.unschedulable),
            not record.unschedulable and tolerated(record.taints, flavour.tolerations),
        )
    if memo is not None:
        memo[(_NODE_PARTS, name)] = parts
    return parts


def node_capacities(
    nodes: Mapping[str, NodeRecord],
    pods: Iterable[BoundPod],
    config: OperatorConfig,
    memo: MutableMapping[Any, Any] | None = None,
) -> tuple[tuple[NodeCapacity, ...], dict[str, tuple[tuple[str, int], ...]]]:
    """Every node of a flavour with what its bound pods use, and, per Cadre workload, how
    many of its pods are bound on which node. `memo`: as for `node_parts`."""
    used: dict[str, dict[str, int]] = {}
    bound: dict[str, dict[str, int]] = {}
    for pod in pods:
        on_node = used.setdefault(pod.node, {})
        for resource, value in pod.requests:
            on_node[resource] = on_node.get(resource, 0) + value
        if pod.owner is not None:
            placed = bound.setdefault(pod.owner, {})
            placed[pod.node] = placed.get(pod.node, 0) + 1
    out: list[NodeCapacity] = []
    flavours = config.flavors
    for name, record in nodes.items():
        parts = node_parts(name, record, flavours, memo)
        flavour = parts.flavour
        if flavour is None:
            continue
        out.append(
            NodeCapacity(
                name=name,
                flavour=flavour.name,
                allocatable=parts.node.allocatable,
                used=_resources(used.get(name, {}), flavour.gpu_resource),
                schedulable=parts.schedulable,
            )
        )
    return tuple(out), {owner: tuple(sorted(placed.items())) for owner, placed in bound.items()}
