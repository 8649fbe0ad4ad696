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


def choose_victims(
    state: PassState, work: WorkloadState, quota: TeamQuota, request: Amount
) -> list[VictimUnit] | None:
    """The victims that make room for `request` of `work` (on `quota`), or None."""
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
    found = _first_sufficient(
        quota, request, candidates, room_needed=room_needed, own_room_needed=own_room_needed
    )
    if found is None:
        return None
    chosen, released = found
    _give_back_unneeded(quota, request, chosen, released)
    if len({unit.work.index for unit in chosen}) > 1:  # fewest: is one victim enough alone?
        alone = _single_victim(
            quota,
            request,
            candidates({}),
            room_needed=room_needed,
            own_room_needed=own_room_needed,
        )
        if alone is not None:
            return [alone]
    return chosen


def _first_sufficient(
    quota: TeamQuota,
    request: Amount,
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
        if not whole:
            taken[victim.index] = taken.get(victim.index, 0) + 1
        release = released.get(victim_quota)
        if release is None:
            release = released[victim_quota] = Vector()
        release.add(amount)
        freed.add(amount)
        if not from_other_team:
            own_freed.add(amount)
        chosen.append(VictimUnit(victim, whole, from_other_team, amount))
        if (
            freed.covers(room_needed)
            and own_freed.covers(own_room_needed)
            and quota.fits_after_release(request, released)
        ):
            return chosen, released
    return None


def _give_back_unneeded(
    quota: TeamQuota,
    request: Amount,
    chosen: list[VictimUnit],
    released: dict[TeamQuota, Vector],
) -> None:
    """Make the set minimal: give back, most important first (the last one chosen is needed),
    every victim not needed; an extra replica only while its workload as a whole is not a
    victim (it would go with it)."""
    whole_victims = {unit.work.index for unit in chosen if unit.whole}
    for position in reversed(range(len(chosen) - 1)):
        unit = chosen[position]
        if not unit.whole and unit.work.index in whole_victims:
            continue
        assert unit.work.quota is not None
        release = released[unit.work.quota]
        release.subtract(unit.amount)
        if quota.fits_after_release(request, released):
            del chosen[position]
            if unit.whole:
                whole_victims.discard(unit.work.index)
        else:
            release.add(unit.amount)


def _single_victim(
    quota: TeamQuota,
    request: Amount,
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
        if (
            covers(amount, room_needed)
            and (within_own_limit if from_other_team else covers(amount, own_room_needed))
            and quota.fits_after_release(request, {victim_quota: Vector(*amount)})
        ):
            return VictimUnit(victim, whole, from_other_team, amount)
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


def _unit_amount(victim: WorkloadState, whole: bool, taken: dict[int, int]) -> Amount:
    """What stopping the unit gives back: the gang and the extras not already taken, or one
    extra replica."""
    count = victim.pods + victim.extras_admitted - taken.get(victim.index, 0) if whole else 1
    return scaled(victim.per_pod, count)
