"""Where a waiting job stands, as its status says it: exact near the head of its team's
queue, a range behind.

Every admission moves everyone behind it one place up. Were every waiting job's exact
position stored, one admission at 10,000 waiting would rewrite 10,000 statuses (measured:
docs/benchmarks.md). Stored exactly, positions are what a user at the head watches ("3rd,
then 2nd"); behind it, a range whose bounds grow tenfold ("11-100", "101-1,000") moves
only when a job crosses a bound: one admission changes at most `exact` positions and one
range per bound, whatever the queue's length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["QueuePlace", "queue_place", "with_place"]


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """`status.queue.position` and `status.queue.positionRange`: one of them is set."""

    position: int | None
    range: str | None


def queue_place(position: int, exact: int) -> QueuePlace:
    """The stored place of the job at 1-based `position` of its team's queue, with exact
    positions for the first `exact` (at least 1)."""
    if position <= exact:
        return QueuePlace(position, None)
    low, high = exact + 1, exact * 10
    while position > high:
        low, high = high + 1, high * 10
    return QueuePlace(None, f"{low:,}-{high:,}")


def with_place(queue: Mapping[str, Any], place: QueuePlace | None) -> dict[str, Any]:
    """`status.queue` with `place` written (None: left as it was)."""
    out = dict(queue)
    if place is not None:
        out.pop("position", None)
        out.pop("positionRange", None)
        if place.position is not None:
            out["position"] = place.position
        if place.range is not None:
            out["positionRange"] = place.range
    return out
