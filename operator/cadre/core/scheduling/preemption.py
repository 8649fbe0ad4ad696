"""Preemption: which admitted work to stop so that a workload fits, and stopping it.

A workload that does not fit may preempt (a) admitted work of its own team with strictly
lower priority, and (b) work of other teams of its cohort that run on borrowed quota, but
only when it stays within its own team's nominal quota (a reclaim; priority does not matter,
as in Kueue's `reclaimWithinCohort: Any`). Candidates come reclaim first, then lowest
priority, extra replicas before whole gangs, most recently admitted first; a cross-team
candidate is skipped once its team no longer borrows. The first prefix of candidates that
makes room is made minimal (every victim not needed is given back) and, if it still has
several workloads, replaced by a single one that suffices alone (from another team: only
within what that team borrows).

With nodes in the snapshot, "makes room" also means a placement: the victims' pods give
their nodes back, and the workload's pods must then fit on the nodes as they would be. A
victim whose pods are on nodes that do not help is not needed, and is given back.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from itertools import islice
from typing import NamedTuple

from cadre.core.scheduling.quantities import Amount, Vector, covers, scaled
from cadre.core.scheduling.state import (
    GANG_ENTRY,
    AdmittedEntry,
    PassState,
    TeamQuota,
    TeamState,
    WorkloadState,
)
from cadre.core.scheduling.types import Reason, WorkloadKind

__all__ = ["SINGLE_VICTIM_SCAN", "VictimUnit", "choose_victims", "take_victims"]

SINGLE_VICTIM_SCAN = 256
"""How many candidates are tried as a lone victim when the minimal set has several."""


class VictimUnit(NamedTuple):
    """One unit to stop: a whole workload, or one extra replica of a ModelDeployment."""

    work: WorkloadState
    whole: bool
    reclaim: bool
    """Taken from another team of the cohort that borrows (else: own lower priority)."""
    amount: Amount
    """What stopping it gives back."""
    nodes: tuple[int, ...] = ()
    """The node of each of its pods that has one (with nodes in the snapshot)."""


class _Room:
    """Does a set of victims make room: the quota rules, and a placement when the flavour
    has nodes (the victims' nodes given back)."""

    __slots__ = ("count", "freed", "nodes", "per_pod", "quota", "request")

    def __init__(self, quota: TeamQuota, request: Amount, per_pod: Amount, count: int) -> None:
        self.quota = quota
        self.request = request
        self.nodes = quota.flavour.nodes
        self.per_pod = per_pod
        self.count = count
        self.freed: dict[int, list[int]] = {}

    def add(self, unit: VictimUnit, sign: int = 1) -> None:
        gpus, cpu, memory = unit.work.per_pod
        freed = self.freed
        for node in unit.nodes:
            node_freed = freed.get(node)
            if node_freed is None:
                node_freed = freed[node] = [0, 0, 0]
            node_freed[0] += sign * gpus
            node_freed[1] += sign * cpu
            node_freed[2] += sign * memory

    def made(self, released: dict[TeamQuota, Vector]) -> bool:
        return self.quota.fits_after_release(self.request, released) and (
            self.nodes is None or self.nodes.fits_with(self.per_pod, self.count, self.freed)
        )

    def made_alone(self, unit: VictimUnit) -> bool:
        victim_quota = unit.work.quota
        assert victim_quota is not None
        if not self.quota.fits_after_release(self.request, {victim_quota: Vector(*unit.amount)}):
            return False
        if self.nodes is None:
            return True
        alone = _Room(self.quota, self.request, self.per_pod, self.count)
        alone.add(unit)
        return self.nodes.fits_with(self.per_pod, self.count, alone.freed)


def choose_victims(
    state: PassState, work: WorkloadState, quota: TeamQuota, request: Amount, count: int
) -> list[VictimUnit] | None:
    """The victims that make room for `request` (`count` pods) of `work` (on `quota`), or
    None."""
    lowest = state.lowest_priority(quota)
    own = lowest is not None and lowest < work.priority
    reclaim = quota.others_borrow() and quota.within_nominal_with(request)
    if not own and not reclaim:
        return None

    def candidates(taken: dict[int, int]) -> Iterator[tuple[WorkloadState, bool, bool]]:
        return _units(state, work, quota, reclaim=reclaim, own=own, taken=taken)

    # Cheap necessary conditions before the full check, per resource: the victims must give
    # back at least what the flavour or the cohort's pool lacks, and the team's own victims
    # what the team would hold above its limit.
    room_needed = quota.shortfall(request)
    own_room_needed = quota.over_limit(request)
    room = _Room(quota, request, work.per_pod, count)
    found = _first_sufficient(
        room, candidates, room_needed=room_needed, own_room_needed=own_room_needed
    )
    if found is None:
        return None
    chosen, released = found
    _give_back_unneeded(room, chosen, released)
    if len({unit.work.index for unit in chosen}) > 1:  # fewest: is one victim enough alone?
        alone = _single_victim(
            room,
            candidates({}),
            room_needed=room_needed,
            own_room_needed=own_room_needed,
        )
        if alone is not None:
            return [alone]
    return chosen


def _first_sufficient(
    room: _Room,
    candidates: Callable[[dict[int, int]], Iterator[tuple[WorkloadState, bool, bool]]],
    *,
    room_needed: Amount,
    own_room_needed: Amount,
) -> tuple[list[VictimUnit], dict[TeamQuota, Vector]] | None:
    """The shortest prefix of the candidates that makes room, and what it releases per
    quota; None if all of them together do not."""
    freed = Vector()
    own_freed = Vector()
    released: dict[TeamQuota, Vector] = {}
    taken: dict[int, int] = {}  # extra replicas taken so far, per workload index
    chosen: list[VictimUnit] = []
    for victim, whole, from_other_team in candidates(taken):
        victim_quota = victim.quota
        assert victim_quota is not None
        if from_other_team and not victim_quota.borrows_after(released.get(victim_quota)):
            continue  # that team no longer borrows: the rest of its work is safe
        amount = _unit_amount(victim, whole, taken)
        nodes = _unit_nodes(room, victim, whole, taken)
        if not whole:
            taken[victim.index] = taken.get(victim.index, 0) + 1
        release = released.get(victim_quota)
        if release is None:
            release = released[victim_quota] = Vector()
        release.add(amount)
        freed.add(amount)
        if not from_other_team:
            own_freed.add(amount)
        unit = VictimUnit(victim, whole, from_other_team, amount, nodes)
        chosen.append(unit)
        room.add(unit)
        if freed.covers(room_needed) and own_freed.covers(own_room_needed) and room.made(released):
            return chosen, released
    return None


def _give_back_unneeded(
    room: _Room,
    chosen: list[VictimUnit],
    released: dict[TeamQuota, Vector],
) -> None:
    """Make the set minimal: give back, most important first (the last one chosen is needed),
    every victim not needed; an extra replica only while its workload as a whole is not a
    victim (it would go with it). With nodes, only the last one taken of its workload:
    stopping n replicas stops the first n in release order, whose nodes the units recorded
    (once one is kept, the ones taken before it stay too)."""
    whole_victims = {unit.work.index for unit in chosen if unit.whole}
    kept_extras = (
        {chosen[-1].work.index}
        if chosen and not chosen[-1].whole and room.nodes is not None
        else set()
    )
    for position in reversed(range(len(chosen) - 1)):
        unit = chosen[position]
        if not unit.whole and (unit.work.index in whole_victims or unit.work.index in kept_extras):
            continue
        assert unit.work.quota is not None
        release = released[unit.work.quota]
        release.subtract(unit.amount)
        room.add(unit, -1)
        if room.made(released):
            del chosen[position]
            if unit.whole:
                whole_victims.discard(unit.work.index)
        else:
            release.add(unit.amount)
            room.add(unit)
            if not unit.whole and room.nodes is not None:  # without nodes, any replica will do
                kept_extras.add(unit.work.index)


def _single_victim(
    room: _Room,
    candidates: Iterator[tuple[WorkloadState, bool, bool]],
    *,
    room_needed: Amount,
    own_room_needed: Amount,
) -> VictimUnit | None:
    """The first of the first SINGLE_VICTIM_SCAN candidates that makes room alone, if any.
    One from another team does not lower the team's own usage, so it can only do when the
    request keeps the team within its limit anyway; and it may only take what that team
    borrows. Otherwise "fewest victims" would trade a few borrowed units for a gang
    within its nominal, and that team would reclaim it back: two teams evicting each
    other round after round."""
    within_own_limit = all(short <= 0 for short in own_room_needed)
    for victim, whole, from_other_team in islice(candidates, SINGLE_VICTIM_SCAN):
        victim_quota = victim.quota
        assert victim_quota is not None
        amount = _unit_amount(victim, whole, {})
        if from_other_team and not _within_borrowed(victim_quota, amount):
            continue
        if covers(amount, room_needed) and (
            within_own_limit if from_other_team else covers(amount, own_room_needed)
        ):
            unit = VictimUnit(
                victim, whole, from_other_team, amount, _unit_nodes(room, victim, whole, {})
            )
            if room.made_alone(unit):
                return unit
    return None


def _within_borrowed(quota: TeamQuota, amount: Amount) -> bool:
    """Is `amount` at most what the team uses above its nominal quota, in every resource?
    (`TeamQuota.borrowed().covers(amount)`, without building a Vector: this runs for each
    candidate of the single-victim scan.)"""
    usage, nominal = quota.usage, quota.nominal
    gpus, cpu, memory = amount
    return (
        gpus <= max(0, usage.gpus - nominal.gpus)
        and cpu <= max(0, usage.cpu - nominal.cpu)
        and memory <= max(0, usage.memory - nominal.memory)
    )


def take_victims(
    state: PassState,
    work: WorkloadState,
    quota: TeamQuota,
    victims: list[VictimUnit],
    requeue: Callable[[TeamState], None],
) -> None:
    """Stop the victims chosen for `work`; `requeue` puts a victim's team back in the heap of
    team heads under its new share."""
    team = quota.team
    flavour = work.spec.flavour
    preemptor = work.spec.key
    whole = {unit.work.index for unit in victims if unit.whole}
    extras: dict[int, int] = {}  # extra replicas to stop, per workload not stopped whole
    for unit in victims:
        if not unit.whole and unit.work.index not in whole:
            extras[unit.work.index] = extras.get(unit.work.index, 0) + 1
    done: set[int] = set()
    for unit in victims:
        victim = unit.work
        if victim.index in done:
            continue
        done.add(victim.index)
        victim_quota = victim.quota
        assert victim_quota is not None
        if unit.reclaim:
            message = (
                f"preempted by {preemptor} to reclaim {flavour} quota of team {team.name}"
                f" lent to team {victim_quota.team.name}"
            )
        else:
            message = (
                f"preempted by {preemptor} (priority {work.priority} > {victim.priority}) to"
                f" free {flavour} quota of team {team.name}"
            )
        if victim.index in whole:
            state.evict(victim, Reason.PREEMPTED, message, preemptor)
        else:
            state.evict_extras(victim, extras[victim.index], message, preemptor)
        if victim_quota is not quota:  # the victim's team uses less now: its failures may fit
            victim_quota.release_epoch += 1
            state.released = True
        victim_team = victim_quota.team
        victim_team.update_share()
        if victim_team is not team:
            requeue(victim_team)


def _candidates(
    state: PassState, work: WorkloadState, quota: TeamQuota, *, reclaim: bool, own: bool
) -> Iterator[tuple[AdmittedEntry, bool]]:
    """Admitted-index entries that may be preempted, in order, each with "from another team":
    the cohort's borrowers first (merged, in preemption order), then the team's own work of
    lower priority."""
    if reclaim:
        borrowers = sorted(index for index in quota.pool.borrowers if index != quota.index)
        entries = (state.live_entries(state.quotas[index]) for index in borrowers)
        for entry in heapq.merge(*entries):
            yield entry, True
    if own:
        for entry in state.live_entries(quota):
            priority, _, _, _, _ = entry
            if priority >= work.priority:  # sorted by priority: the rest is as important
                break
            yield entry, False


def _units(
    state: PassState,
    work: WorkloadState,
    quota: TeamQuota,
    *,
    reclaim: bool,
    own: bool,
    taken: dict[int, int],
) -> Iterator[tuple[WorkloadState, bool, bool]]:
    """Candidate victims one unit at a time: (workload, whole?, from another team?). An
    extras entry gives its extra replicas one by one (those not taken yet); a gang entry the
    workload."""
    works = state.works
    for_training = work.spec.kind == WorkloadKind.TRAINING_JOB
    for (_, part, _, _, index), from_other_team in _candidates(
        state, work, quota, reclaim=reclaim, own=own
    ):
        victim = works[index]
        if part == GANG_ENTRY:
            if for_training and not victim.spec.training_may_preempt:
                continue  # serving keeps its floor against training (the config says so)
            yield victim, True, from_other_team
        else:
            for _ in range(victim.extras_admitted - taken.get(victim.index, 0)):
                yield victim, False, from_other_team


def _unit_nodes(
    room: _Room, victim: WorkloadState, whole: bool, taken: dict[int, int]
) -> tuple[int, ...]:
    """The nodes the unit gives back: all its pods' not taken yet, or one replica's."""
    if room.nodes is None:
        return ()
    return tuple(victim.released_nodes(taken.get(victim.index, 0), None if whole else 1))


def _unit_amount(victim: WorkloadState, whole: bool, taken: dict[int, int]) -> Amount:
    """What stopping the unit gives back: the gang and the extras not already taken, or one
    extra replica."""
    count = victim.pods + victim.extras_admitted - taken.get(victim.index, 0) if whole else 1
    return scaled(victim.per_pod, count)
