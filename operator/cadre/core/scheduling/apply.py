"""Apply a pass's decisions to its snapshot: the next snapshot, as the cluster would be."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from cadre.core.scheduling.types import Admission, PassResult, Snapshot, Victim, Workload

__all__ = ["apply_result"]

_Decision = TypeVar("_Decision", Admission, Victim)


def apply_result(snapshot: Snapshot, result: PassResult, now: float | datetime) -> Snapshot:
    """Mark admitted workloads admitted (at `now`), victims not admitted (or scaled down);
    nothing else.

    Used by the tests (idempotence) and by simulations; the operator applies decisions to
    the API objects instead. Raises ValueError on a result that contradicts itself (a
    workload admitted twice, stopped twice, or both admitted and stopped): applied one
    decision per key, it would hide the contradiction.
    """
    admitted = _by_key(result.admitted, "admitted")
    victims = _by_key(result.victims, "stopped")
    both = sorted(admitted.keys() & victims.keys())
    if both:
        raise ValueError(f"the result both admits and stops (preempts) {', '.join(both)}")
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


def _by_key(decisions: Sequence[_Decision], verb: str) -> dict[str, _Decision]:
    out: dict[str, _Decision] = {}
    for decision in decisions:
        if decision.key in out:
            raise ValueError(f"the result names {decision.key} twice among those it {verb}")
        out[decision.key] = decision
    return out
