"""The PassResult of a finished pass: admissions (with what they borrow), victims, every
pending workload with its position and reason, and each team's usage."""

from __future__ import annotations

from cadre.core.scheduling.explain import budget_message
from cadre.core.scheduling.quantities import (
    Amount,
    Vector,
    amount_from,
    scaled,
    to_resources,
)
from cadre.core.scheduling.reasons import waiting_reason
from cadre.core.scheduling.state import (
    ADMITTED,
    ADMITTED_NOW,
    EVICTED,
    PENDING,
    PassState,
    TeamQuota,
    WorkloadState,
    admitted_in_pass,
)
from cadre.core.scheduling.types import (
    ZERO,
    Admission,
    FlavourUsage,
    PassResult,
    Pending,
    Reason,
    Resources,
    TeamUsage,
    Victim,
)

__all__ = ["build_result"]

_PendingEntry = tuple[int, int, float, str, WorkloadState]
"""As a team queue's entry (state.QueueEntry), with the workload itself."""


def build_result(state: PassState) -> PassResult:
    admitted = _admissions(state)
    by_team, admitted_counts = _pending_by_team(state)
    pending = _pending(state, by_team)
    teams = tuple(
        TeamUsage(
            name,
            tuple(
                FlavourUsage(
                    flavour,
                    to_resources(team.quotas[flavour].usage),
                    to_resources(team.quotas[flavour].borrowed()),
                )
                for flavour in sorted(team.quotas)
            ),
            admitted_counts.get(name, 0),
            len(by_team.get(name, ())),
        )
        for name, team in state.teams.items()
    )
    return PassResult(admitted, _victims(state), pending, teams)


def _admissions(state: PassState) -> tuple[Admission, ...]:
    """What this pass admitted, in admission order. A team's borrowing (above nominal, after
    the pass) is attributed to its latest admissions."""
    works = state.works
    rows: list[tuple[WorkloadState, bool, int]] = []  # (workload, gang?, pods admitted now)
    seen: set[int] = set()
    for index in state.admit_log:
        if index in seen:
            continue
        seen.add(index)
        work = works[index]
        if admitted_in_pass(work):
            gang = work.status == ADMITTED_NOW
            rows.append((work, gang, (work.pods if gang else 0) + work.extras_admitted_now))
    unattributed: dict[TeamQuota, Vector] = {}  # borrowed, not yet attributed, per quota
    borrowed: list[Resources] = []
    for work, _, pods in reversed(rows):
        quota = work.quota
        assert quota is not None
        left = unattributed.get(quota)
        if left is None:
            left = unattributed[quota] = quota.borrowed()
        if left.is_zero():
            borrowed.append(ZERO)
            continue
        usage = scaled(work.per_pod, pods)
        part = amount_from(min(over, amount) for over, amount in zip(left, usage, strict=True))
        left.subtract(part)
        borrowed.append(to_resources(part) if any(part) else ZERO)
    borrowed.reverse()
    return tuple(
        Admission(
            key=work.spec.key,
            team=work.spec.team,
            flavour=work.spec.flavour,
            gang=gang,
            extra_replicas=work.extras_admitted_now,
            total_extra_replicas=work.extras_admitted,
            usage=to_resources(scaled(work.per_pod, pods)),
            borrowed=lent,
            placement=_placement(state, work),
        )
        for (work, gang, pods), lent in zip(rows, borrowed, strict=True)
    )


def _placement(state: PassState, work: WorkloadState) -> tuple[tuple[str, int], ...]:
    """Where the pass plans the workload's pods that are not bound, by node name."""
    reserved = work.reserved_at
    if not reserved:
        return ()
    nodes = state.flavours[work.spec.flavour].nodes
    assert nodes is not None
    return tuple(sorted((nodes.names[node], pods) for node, pods in reserved.items() if pods))


def _pending_by_team(
    state: PassState,
) -> tuple[dict[str, list[_PendingEntry]], dict[str, int]]:
    """Per team: the units still waiting (gangs, and admitted workloads wanting more extra
    replicas), unsorted; and how many workloads are admitted."""
    by_team: dict[str, list[_PendingEntry]] = {}
    admitted_counts: dict[str, int] = {}
    for work in state.works:
        status = work.status
        if status == PENDING:
            is_extra = 0
        elif status in (ADMITTED, ADMITTED_NOW):
            name = work.spec.team
            admitted_counts[name] = admitted_counts.get(name, 0) + 1
            if work.extras_admitted >= work.extras_wanted:
                continue
            is_extra = 1
        else:
            continue
        name = work.spec.team
        entries = by_team.get(name)
        if entries is None:
            entries = by_team[name] = []
        entries.append((-work.priority, is_extra, work.created, work.spec.key, work))
    return by_team, admitted_counts


def _pending(state: PassState, by_team: dict[str, list[_PendingEntry]]) -> tuple[Pending, ...]:
    """Every waiting unit with its 1-based position in its team's queue order and a reason
    from the final state (cached per quota, request and replicas wanted)."""
    pending: list[Pending] = []
    cache: dict[tuple[int, Amount, Amount, int], tuple[Reason, str]] = {}
    for team_name in sorted(by_team):
        entries = by_team[team_name]
        entries.sort()
        team = state.teams.get(team_name)
        budget = (
            (Reason.BUDGET_EXCEEDED, budget_message(team.spec.spend))
            if team is not None and team.budget_blocked
            else None
        )
        strict = team is not None and team.strict
        blocker: str | None = None  # StrictFIFO: the first gang that does not fit
        for position, (_, is_extra, _, key, work) in enumerate(entries, 1):
            replicas_left = work.extras_wanted - work.extras_admitted if is_extra else 0
            if work.fixed_reason is not None and not is_extra:
                reason, message = work.fixed_reason
            elif budget is not None:
                reason, message = budget
            elif blocker is not None:
                reason = Reason.STRICT_FIFO_BLOCKED
                message = f"held by StrictFIFO: {blocker} is ahead and does not fit"
            else:
                request = work.per_pod if is_extra else work.gang
                quota = work.quota
                assert quota is not None
                cache_key = (quota.index, request, work.per_pod, replicas_left)
                found = cache.get(cache_key)
                if found is None:
                    found = cache[cache_key] = waiting_reason(work, request, replicas_left)
                reason, message = found
                if strict and not is_extra:
                    blocker = key
            spec = work.spec
            pending.append(
                Pending(
                    key,
                    spec.team,
                    spec.flavour,
                    position,
                    reason,
                    message,
                    replicas_left if is_extra else work.pods,
                )
            )
    return tuple(pending)


def _victims(state: PassState) -> tuple[Victim, ...]:
    """Workloads stopped whole, and scale-downs of extra replicas admitted before the pass
    (those of this pass are simply not admitted)."""
    victims: list[Victim] = []
    for index in state.victim_log:
        work = state.works[index]
        assert work.eviction is not None
        reason, message, preemptor = work.eviction
        spec = work.spec
        if work.status == EVICTED:
            victims.append(Victim(spec.key, spec.team, spec.flavour, reason, message, preemptor))
        elif work.extras_stopped:
            count = work.extras_stopped
            victims.append(
                Victim(
                    spec.key,
                    spec.team,
                    spec.flavour,
                    reason,
                    f"{count} extra replica{'' if count == 1 else 's'} {message}",
                    preemptor,
                    replicas=count,
                    extra_replicas_left=work.extras_admitted,
                )
            )
    return tuple(victims)
