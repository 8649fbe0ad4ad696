"""A canary's share of the replicas, and of the traffic that follows them.

Without a service mesh, the model's Service spreads requests over every ready pod of both
tracks, so the canary's share of the traffic is its share of the ready replicas. The
percent a user asks for is therefore met as closely as whole replicas allow, and the
status reports the share that is actually in effect.
"""

from __future__ import annotations

from typing import Final

MIN_REPLICAS_WITH_CANARY: Final = 2


def split_replicas(total: int, traffic_percent: int) -> tuple[int, int]:
    """(stable, canary) replicas out of `total` that come closest to `traffic_percent`.

    The canary gets c replicas, c in [1, total - 1] (both tracks always serve), with
    |c / total - traffic_percent / 100| as small as possible. A tie goes to the smaller c:
    the candidate is the one being tested, so it gets the lesser share (3 replicas at 50%
    gives 1 canary, not 2). A percent outside 1..99 gets the nearest split in range.

    Raises ValueError for fewer than 2 replicas: there is no split with one of each (the
    CRD requires replicas.min >= 2 with a canary).
    """
    if total < MIN_REPLICAS_WITH_CANARY:
        raise ValueError(
            f"a canary needs at least {MIN_REPLICAS_WITH_CANARY} replicas, one per track; "
            f"got {total}"
        )
    # In integers, scaled by 100 * total: minimise |100 * c - percent * total|. The
    # unconstrained minimum is percent * total / 100 rounded half down (the tie rule);
    # the distance grows on both sides of it, so clamping it into range stays the best.
    whole, rest = divmod(traffic_percent * total, 100)
    canary = whole + 1 if 2 * rest > 100 else whole
    canary = min(max(canary, 1), total - 1)
    return total - canary, canary


def effective_percent(stable_ready: int, canary_ready: int) -> int | None:
    """The canary's share of the ready replicas, in whole percent, rounded half up
    (1 of 8 is 13%); None while no replica of either track is ready."""
    ready = stable_ready + canary_ready
    if ready <= 0:
        return None
    return (200 * canary_ready + ready) // (2 * ready)


def split_text(stable: int, canary: int) -> str:
    """The split for kubectl get: the canary's share, then canary / all replicas counted,
    for example "25% (1/4)"; "n/a (0/0)" when there are none."""
    percent = effective_percent(stable, canary)
    shown = "n/a" if percent is None else f"{percent}%"
    return f"{shown} ({canary}/{stable + canary})"
