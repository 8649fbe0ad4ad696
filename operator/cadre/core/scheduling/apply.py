"""Apply a pass's decisions to its snapshot: the next snapshot, as the cluster would be."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from cadre.core.scheduling.types import PassResult, Snapshot, Workload

__all__ = ["apply_result"]


def apply_result(snapshot: Snapshot, result: PassResult, now: float | datetime) -> Snapshot:
    """Mark admitted workloads admitted (at `now`), victims not admitted (or scaled down);
    nothing else.

    Used by the tests (idempotence) and by simulations; the operator applies decisions to
    the API objects instead.
    """
    admitted = result.admitted_by_key()
    victims = result.victims_by_key()
    workloads: list[Workload] = []
    for old in snapshot.workloads:
        new = old
        a = admitted.get(old.key)
        v = victims.get(old.key)
        if v is not None and v.replicas:
            new = replace(old, admitted_extra=v.extra_replicas_left)
        elif v is not None:
            new = replace(old, admitted=False, admitted_extra=0, admitted_at=None)
        elif a is not None and a.gang:
            new = replace(
                old, admitted=True, admitted_extra=a.total_extra_replicas, admitted_at=now
            )
        elif a is not None:
            new = replace(old, admitted_extra=a.total_extra_replicas)
        workloads.append(new)
    return replace(snapshot, workloads=tuple(workloads))
