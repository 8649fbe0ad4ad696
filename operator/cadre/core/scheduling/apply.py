"""Apply a pass's decisions to its snapshot: the next snapshot, as the cluster would be."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from cadre.core.scheduling.types import (
    Admission,
    PassResult,
    Resources,
    Snapshot,
    Victim,
    Workload,
)

__all__ = ["apply_result"]

_Decision = TypeVar("_Decision", Admission, Victim)


def apply_result(snapshot: Snapshot, result: PassResult, now: float | datetime) -> Snapshot:
    """Mark admitted workloads admitted (at `now`), victims not admitted (or scaled down);
    with nodes, planned pods bound where planned and victims' pods gone from their nodes;
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
    node_use: dict[str, Resources] = (
        {} if snapshot.nodes is None else {n.name: n.used for n in snapshot.nodes}
    )
    for old in snapshot.workloads:
        new = old
        a = admitted.get(old.key)
        v = victims.get(old.key)
        if v is not None and v.replicas:
            bound = _unbind(old.bound, v.replicas, old.per_pod, node_use)
            new = replace(old, admitted_extra=v.extra_replicas_left, bound=bound)
        elif v is not None:
            _unbind(old.bound, None, old.per_pod, node_use)
            new = replace(old, admitted=False, admitted_extra=0, admitted_at=None, bound=())
        elif a is not None and a.gang:
            new = replace(
                old,
                admitted=True,
                admitted_extra=a.total_extra_replicas,
                admitted_at=now,
                bound=_bind(old.bound, a.placement, old.per_pod, node_use),
            )
        elif a is not None:
            new = replace(
                old,
                admitted_extra=a.total_extra_replicas,
                bound=_bind(old.bound, a.placement, old.per_pod, node_use),
            )
        workloads.append(new)
    nodes = snapshot.nodes
    if nodes is not None:
        nodes = tuple(replace(n, used=node_use[n.name]) for n in nodes)
    return replace(snapshot, workloads=tuple(workloads), nodes=nodes)


def _bind(
    bound: tuple[tuple[str, int], ...],
    placement: tuple[tuple[str, int], ...],
    per_pod: Resources,
    node_use: dict[str, Resources],
) -> tuple[tuple[str, int], ...]:
    """The planned pods bound where the plan says (the scheduler did as planned)."""
    pods = dict(bound)
    for name, count in placement:
        if name in node_use:
            node_use[name] = node_use[name] + per_pod * count
            pods[name] = pods.get(name, 0) + count
    return tuple(sorted(pods.items()))


def _unbind(
    bound: tuple[tuple[str, int], ...],
    count: int | None,
    per_pod: Resources,
    node_use: dict[str, Resources],
) -> tuple[tuple[str, int], ...]:
    """`count` of its bound pods gone (None: all), the last node by name first (the pass's
    release order when every pod is bound)."""
    kept: list[tuple[str, int]] = []
    left = count
    for name, pods in sorted(bound, reverse=True):
        gone = pods if left is None else min(pods, left)
        if left is not None:
            left -= gone
        if name in node_use:
            node_use[name] = node_use[name] - per_pod * gone
        if pods - gone:
            kept.append((name, pods - gone))
    return tuple(sorted(kept))


def _by_key(decisions: Sequence[_Decision], verb: str) -> dict[str, _Decision]:
    out: dict[str, _Decision] = {}
    for decision in decisions:
        if decision.key in out:
            raise ValueError(f"the result names {decision.key} twice among those it {verb}")
        out[decision.key] = decision
    return out
