"""GPU-hours and cost of a workload from its pods, as the API server reports them.

Each container is charged for the time it actually ran (its `state.running.startedAt`
up to `now`, `state.terminated.startedAt` to `finishedAt`, and the same for
`lastState.terminated` of a restarted container), with what it requested: GPUs (the
flavours' extended resources, from limits, as they must equal requests), CPU and memory
requests (limits when no request is given, as the API server defaults them). A pod
deleted while a container still ran is closed at the time the deletion was seen.

Pure and exact: plain pod dicts in, Decimals out; `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from cadre.core.accounting.usage import Interval, PodUsage, Rates, cost, to_cents, usage_within
from cadre.core.objects.times import parse_api_time
from cadre.core.units.quantity import QuantityError, to_bytes, to_millicores

__all__ = [
    "GPU_HOURS_STEP",
    "PodCharge",
    "container_usages",
    "format_figures",
    "pod_charge",
    "usage_and_cost",
]

GPU_HOURS_STEP: Final = Decimal("0.0001")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _intervals(status: Mapping[str, Any], deleted_at: datetime | None) -> list[Interval]:
    out: list[Interval] = []
    for field in ("lastState", "state"):
        state = status.get(field) or {}
        running = state.get("running") or {}
        terminated = state.get("terminated") or {}
        start = parse_api_time(running.get("startedAt"))
        if start is not None:
            out.append(Interval(start, deleted_at))
            continue
        start = parse_api_time(terminated.get("startedAt"))
        end = parse_api_time(terminated.get("finishedAt"))
        if start is not None:
            out.append(Interval(start, end or deleted_at or start))
    return out


def _amount(resources: Mapping[str, Any], name: str, parse: Any) -> int:
    for part in ("requests", "limits"):
        value = (resources.get(part) or {}).get(name)
        if value is not None:
            try:
                return int(parse(value))
            except QuantityError:
                return 0
    return 0


def container_usages(
    pod: Mapping[str, Any], gpu_resources: Collection[str], deleted_at: datetime | None = None
) -> tuple[PodUsage, ...]:
    """One PodUsage per interval a container of `pod` ran, with what it holds."""
    spec_containers = {
        c.get("name"): c.get("resources") or {}
        for c in (pod.get("spec") or {}).get("containers") or ()
    }
    out: list[PodUsage] = []
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        resources = spec_containers.get(status.get("name")) or {}
        limits = resources.get("limits") or {}
        gpus = sum(int(limits.get(name) or 0) for name in gpu_resources)
        cpu = _amount(resources, "cpu", to_millicores)
        memory = _amount(resources, "memory", to_bytes)
        for interval in _intervals(status, deleted_at):
            out.append(PodUsage(interval, gpus=gpus, cpu_milli=cpu, memory_bytes=memory))
    return tuple(out)


def usage_and_cost(
    usages: Iterable[PodUsage], rates: Rates, now: datetime
) -> tuple[Decimal, Decimal]:
    """(GPU-hours, cost) of the intervals up to `now`, exactly."""
    used = usage_within(tuple(usages), _EPOCH, now, now)
    return used.gpu_hours, cost(used, rates)


def format_figures(gpu_hours: Decimal, amount: Decimal) -> dict[str, str]:
    """The status fields: gpuHours to 4 decimals, cost to the cent (half-even)."""
    return {
        "gpuHours": str(gpu_hours.quantize(GPU_HOURS_STEP, rounding=ROUND_HALF_EVEN)),
        "cost": str(to_cents(amount)),
    }


@dataclass(frozen=True, slots=True)
class PodCharge:
    """A pod of a Cadre workload, as budget accounting needs it."""

    uid: str
    name: str
    namespace: str
    team: str | None
    flavor: str | None
    usages: tuple[PodUsage, ...]
    finalizers: tuple[str, ...] = ()
    deleting: bool = False
    """Its deletion was asked for (deletionTimestamp)."""
    gone: bool = False
    """It no longer exists in the API (a DELETED event)."""
    deletion_due: datetime | None = None
    """deletionTimestamp: the end of its grace period, by which its containers stop."""

    def running(self) -> bool:
        return any(u.interval.end is None for u in self.usages)

    def closed_at(self, end: datetime) -> PodCharge:
        """The pod with intervals still open closed at `end` (its node never said)."""
        usages = tuple(
            replace(u, interval=Interval(u.interval.start, end)) if u.interval.end is None else u
            for u in self.usages
        )
        return replace(self, usages=usages)


def pod_charge(
    pod: Mapping[str, Any],
    gpu_resources: Collection[str],
    *,
    team: str | None,
    flavor: str | None,
    gone_at: datetime | None = None,
) -> PodCharge:
    """The PodCharge of a pod dict, charged to `team` at `flavor`'s prices (decided by
    the caller from records the pod's owner cannot edit, never from its labels);
    `gone_at`: when a DELETED event was seen (intervals still open are closed then)."""
    metadata = pod.get("metadata") or {}
    # The API server sets deletionTimestamp to the end of the grace period.
    deletion = parse_api_time(metadata.get("deletionTimestamp"))
    return PodCharge(
        uid=str(metadata.get("uid", "")),
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        team=team,
        flavor=flavor,
        usages=container_usages(pod, gpu_resources, gone_at),
        finalizers=tuple(str(f) for f in metadata.get("finalizers") or ()),
        deleting=deletion is not None,
        gone=gone_at is not None,
        deletion_due=deletion,
    )
