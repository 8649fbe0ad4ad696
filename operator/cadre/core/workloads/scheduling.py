"""What kube-scheduler says of a workload's pods: which wait for a node, and why.

An admitted gang whose workers cannot all be placed holds its quota while some of its
pods wait; the scheduler's own message (`PodScheduled=False`, reason Unschedulable, "0/8
nodes are available: 4 Insufficient nvidia.com/gpu...") is what tells a user why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cadre.core.objects import find_condition, timestamp, with_condition

__all__ = [
    "PODS_READY_TIMEOUT",
    "Backoff",
    "UnscheduledPod",
    "next_requeue",
    "requeue_delay",
    "requeue_in_status",
    "unbound",
    "unscheduled_message",
    "unscheduled_summary",
]

PODS_READY_TIMEOUT: Final = "PodsReadyTimeout"
"""The reason of a gang (or a ModelDeployment's replicas.min) requeued by
admission.waitForPodsReady."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """admission.waitForPodsReady's requeuing: the first wait, the longest, and how many
    requeues at most (None: for ever)."""

    base_seconds: int
    max_seconds: int
    limit_count: int | None


def next_requeue(
    status: Mapping[str, Any] | None, now: datetime, backoff: Backoff
) -> tuple[int, datetime | None]:
    """(The number of this requeue, when it may be tried again; None past the limit.)"""
    count = int(((status or {}).get("requeue") or {}).get("count") or 0) + 1
    if backoff.limit_count is not None and count > backoff.limit_count:
        return count, None
    return count, now + requeue_delay(count, backoff.base_seconds, backoff.max_seconds)


def requeue_in_status(
    out: dict[str, Any],
    *,
    count: int,
    at: datetime,
    message: str,
    generation: int,
    now: datetime,
    condition: str,
) -> None:
    """Write a requeue into the status `out` (in place): phase Queued, `requeue` {count,
    requeueAt}, the reason in `queue`, and Admitted and `condition` (Running, Ready) False
    with reason PodsReadyTimeout."""
    message = f"{message}; requeued ({count}), tried again from {timestamp(at)}"
    out["phase"] = "Queued"
    out["requeue"] = {"count": count, "requeueAt": timestamp(at)}
    out["queue"] = {"reason": message}
    conditions = with_condition(
        out.get("conditions"), "Admitted", "False", PODS_READY_TIMEOUT, message, generation, now
    )
    out["conditions"] = with_condition(
        conditions, condition, "False", PODS_READY_TIMEOUT, message, generation, now
    )


def requeue_delay(count: int, base_seconds: int, max_seconds: int) -> timedelta:
    """The wait before the `count`-th requeued try: base, then twice as long each time,
    at most `max_seconds` (Kueue's requeuing backoff, without its jitter: a test can say
    when)."""
    return timedelta(seconds=min(max_seconds, base_seconds * 2 ** min(max(count - 1, 0), 32)))


@dataclass(frozen=True, slots=True)
class UnscheduledPod:
    """A pod of a workload without a node yet, with the scheduler's message once it tried
    and failed (None before: not tried yet, or held until its gang is complete)."""

    name: str
    message: str | None


def unbound(pod: Mapping[str, Any]) -> bool:
    """A pod that waits for a node: not bound, not finished, not being deleted."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase")
    return not (metadata.get("deletionTimestamp") or spec.get("nodeName")) and phase in (
        None,
        "Pending",
    )


def unscheduled_message(pod: Mapping[str, Any]) -> str | None:
    """The scheduler's message when it tried and failed to place `pod`; None when the pod
    is bound, finished, being deleted, or not tried yet."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if metadata.get("deletionTimestamp") or spec.get("nodeName"):
        return None
    if status.get("phase") not in (None, "Pending"):
        return None
    condition = find_condition(status, "PodScheduled")
    if condition is None or condition.get("status") != "False":
        return None
    if condition.get("reason") not in ("Unschedulable", "SchedulerError"):
        return None
    return str(condition.get("message") or condition.get("reason")).strip()


def unscheduled_summary(workers: int, waiting: Sequence[UnscheduledPod]) -> str | None:
    """One line for a status condition: how many workers have a node, which wait and why
    ("1/3 workers scheduled; tj-2-x7k waits: 0/8 nodes are available: ..."); None while
    no waiting pod has the scheduler's message yet (nothing to say but "waiting")."""
    said = sorted((p for p in waiting if p.message), key=lambda p: p.name)
    if not said:
        return None
    first = said[0]
    scheduled = max(0, workers - len(waiting))
    others = f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else ""
    return f"{scheduled}/{workers} workers scheduled; {first.name}{others} waits: {first.message}"
