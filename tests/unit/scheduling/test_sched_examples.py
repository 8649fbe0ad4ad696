"""Example-based tests: every reason string, every preemption case, the order of a pass."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from scheduling_helpers import apply

from cadre.core.scheduling import (
    Flavour,
    FlavourQuota,
    FlavourSelector,
    Limits,
    Node,
    PassResult,
    QueueingStrategy,
    Reason,
    Resources,
    Snapshot,
    Spend,
    SpendPolicy,
    SpendState,
    Team,
    Workload,
    WorkloadKind,
    capacity_from_nodes,
    schedule,
)
from cadre.core.scheduling.admission_pass import AdmissionPass
from cadre.core.scheduling.state import TeamState

GI = 1 << 30


def a100(capacity: int) -> Flavour:
    return Flavour("a100", Resources(capacity, 0, 0))


def team(
    name: str,
    nominal: int,
    cohort: str | None = "research",
    borrow: int | None = None,
    lend: int | None = None,
    **kw: object,
) -> Team:
    quota = FlavourQuota(
        "a100",
        Limits(gpus=nominal),
        None if borrow is None else Limits(gpus=borrow),
        None if lend is None else Limits(gpus=lend),
    )
    return Team(name, (quota,), cohort, **kw)  # type: ignore[arg-type]


def job(
    key: str,
    team: str,
    gpus: int,
    *,
    pods: int = 1,
    prio: int = 100,
    created: float = 0.0,
    admitted: bool = False,
    at: float | None = None,
    preemptible: bool = True,
) -> Workload:
    return Workload(
        key,
        team,
        "a100",
        Resources(gpus, 0, 0),
        pods=pods,
        priority=prio,
        created=created,
        admitted=admitted,
        admitted_at=at if at is not None else (0.0 if admitted else None),
        preemptible=preemptible,
    )


def run(flavours: list[Flavour], teams: list[Team], workloads: list[Workload]) -> PassResult:
    return schedule(Snapshot(tuple(flavours), tuple(teams), tuple(workloads)))


def pending(result: PassResult, key: str) -> tuple[Reason, str]:
    p = result.pending_by_key()[key]
    return p.reason, p.message


def admitted(result: PassResult) -> list[str]:
    return [a.key for a in result.admitted]


OVER_BUDGET = Spend(
    SpendState.EXCEEDED, SpendPolicy.QUEUE, Decimal("20140"), Decimal("20000"), "USD", "Monthly"
)


# ---- reasons ------------------------------------------------------------------------------


def test_waiting_for_quota_with_no_idle_in_the_cohort() -> None:
    r = run(
        [a100(16)],
        [team("vision", 8), team("nlp", 8)],
        [
            job("vision-research/a", "vision", 8, admitted=True),
            job("nlp/b", "nlp", 8, admitted=True),
            job("vision-research/c", "vision", 8),
        ],
    )
    assert pending(r, "vision-research/c") == (
        Reason.QUOTA_EXHAUSTED,
        "waiting for 8 a100 GPUs: team vision uses 8/8 nominal, cohort research has 0 idle",
    )
    assert r.pending_by_key()["vision-research/c"].position == 1
    assert r.admitted == () and r.victims == ()


def test_waiting_for_quota_without_a_cohort() -> None:
    r = run(
        [a100(16)],
        [team("vision", 8, cohort=None)],
        [job("v/a", "vision", 8, admitted=True), job("v/b", "vision", 1)],
    )
    assert pending(r, "v/b") == (
        Reason.QUOTA_EXHAUSTED,
        "waiting for 1 a100 GPU: team vision uses 8/8 nominal and has no cohort to borrow from",
    )


def test_waiting_at_the_borrowing_limit() -> None:
    r = run(
        [a100(32)],
        [team("vision", 8, borrow=4), team("nlp", 16)],
        [job("v/a", "vision", 12, admitted=True), job("v/b", "vision", 8)],
    )
    assert pending(r, "v/b") == (
        Reason.QUOTA_EXHAUSTED,
        "waiting for 8 a100 GPUs: team vision uses 12/8 nominal and may borrow at most 4",
    )


def test_waiting_while_own_quota_is_lent_to_work_that_cannot_be_preempted() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8), team("nlp", 0)],
        [job("n/a", "nlp", 8, admitted=True, preemptible=False), job("v/b", "vision", 4)],
    )
    assert pending(r, "v/b") == (
        Reason.QUOTA_EXHAUSTED,
        "waiting for 4 a100 GPUs: team vision uses 0/8 nominal, "
        "the rest is lent to other teams of cohort research",
    )
    assert r.victims == ()


def test_lending_limit_keeps_part_of_the_quota_for_the_lender() -> None:
    # vision lends at most 2 of its 8: nlp may borrow 2, not more
    r = run(
        [a100(16)],
        [team("vision", 8, lend=2), team("nlp", 0)],
        [job("n/a", "nlp", 2, created=1), job("n/b", "nlp", 1, created=2)],
    )
    assert admitted(r) == ["n/a"]
    assert pending(r, "n/b") == (
        Reason.QUOTA_EXHAUSTED,
        "waiting for 1 a100 GPU: team nlp uses 2/0 nominal, cohort research has 0 idle",
    )


def test_waiting_for_capacity() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8, cohort=None), team("infra", 8, cohort=None)],
        [job("i/a", "infra", 4, admitted=True), job("v/b", "vision", 8)],
    )
    assert pending(r, "v/b") == (
        Reason.CAPACITY_EXHAUSTED,
        "waiting for 8 a100 GPUs: flavour a100 has 4 of 8 GPUs free",
    )


def test_cpu_and_memory_are_named_in_their_units() -> None:
    cpu_only = Flavour("cpu-only", Resources(0, 64_000, 256 * GI))
    nlp = Team("nlp", (FlavourQuota("cpu-only", Limits(cpu=64_000, memory=256 * GI)),))
    running = Workload("n/a", "nlp", "cpu-only", Resources(0, 60_000, 64 * GI), admitted=True)
    wants_cpu = Workload("n/b", "nlp", "cpu-only", Resources(0, 2_000, GI), pods=4)
    wants_mem = Workload("n/c", "nlp", "cpu-only", Resources(0, 500, 100 * GI), pods=2)
    r = run([cpu_only], [nlp], [running, wants_cpu, wants_mem])
    assert pending(r, "n/b") == (
        Reason.QUOTA_EXHAUSTED,
        "waiting for 8 CPU of cpu-only: team nlp uses 60/64 CPU nominal and has no cohort "
        "to borrow from",
    )
    assert pending(r, "n/c") == (
        Reason.QUOTA_EXHAUSTED,
        "waiting for 200Gi memory of cpu-only: team nlp uses 64Gi/256Gi memory nominal and "
        "has no cohort to borrow from",
    )


def test_a100_quota_in_gpus_only_leaves_cpu_and_memory_to_capacity() -> None:
    flavour = Flavour("a100", Resources(8, 96_000, 1024 * GI))
    vision = team("vision", 8, cohort=None)
    big_cpu = Workload("v/a", "vision", "a100", Resources(8, 32_000, 200 * GI))
    r = run([flavour], [vision], [big_cpu])
    assert admitted(r) == ["v/a"]


def test_budget_exceeded_with_queue_admits_nothing_new() -> None:
    r = run(
        [a100(16)],
        [team("vision", 8, spend=OVER_BUDGET)],
        [job("v/a", "vision", 2, admitted=True), job("v/b", "vision", 2)],
    )
    assert r.admitted == () and r.victims == ()
    assert pending(r, "v/b") == (
        Reason.BUDGET_EXCEEDED,
        "budget exceeded for this month: 20,140 of 20,000 USD",
    )


def test_budget_exceeded_with_suspend_returns_running_work_as_victims() -> None:
    suspend = replace(OVER_BUDGET, policy=SpendPolicy.SUSPEND)
    r = run(
        [a100(8)],
        [team("vision", 8, cohort=None, spend=suspend), team("nlp", 8, cohort=None)],
        [
            job("v/a", "vision", 8, admitted=True),
            job("v/b", "vision", 1),
            job("n/c", "nlp", 8),
        ],
    )
    (victim,) = r.victims
    assert (victim.key, victim.reason, victim.preemptor) == ("v/a", Reason.BUDGET_EXCEEDED, None)
    assert victim.message == "suspended: budget exceeded for this month: 20,140 of 20,000 USD"
    assert pending(r, "v/b")[0] == Reason.BUDGET_EXCEEDED
    assert admitted(r) == ["n/c"]  # what the suspended team held is free in the same pass


def test_budget_exceeded_with_warn_admits() -> None:
    warn = replace(OVER_BUDGET, policy=SpendPolicy.WARN)
    r = run([a100(8)], [team("vision", 8, spend=warn)], [job("v/a", "vision", 8)])
    assert admitted(r) == ["v/a"]


def test_strict_fifo_holds_work_behind_a_head_that_does_not_fit() -> None:
    def scenario(strategy: QueueingStrategy) -> PassResult:
        return run(
            [a100(8)],
            [team("vision", 8, cohort=None, queueing=strategy)],
            [
                job("vision-research/running", "vision", 4, admitted=True),
                job("vision-research/big-job", "vision", 8, created=1),
                job("vision-research/small", "vision", 2, created=2),
            ],
        )

    strict = scenario(QueueingStrategy.STRICT_FIFO)
    assert strict.admitted == ()
    assert pending(strict, "vision-research/big-job")[0] == Reason.QUOTA_EXHAUSTED
    assert pending(strict, "vision-research/small") == (
        Reason.STRICT_FIFO_BLOCKED,
        "held by StrictFIFO: vision-research/big-job is ahead and does not fit",
    )
    assert [p.position for p in strict.pending] == [1, 2]
    best_effort = scenario(QueueingStrategy.BEST_EFFORT_FIFO)
    assert admitted(best_effort) == ["vision-research/small"]


def test_workloads_that_can_never_fit_say_so_and_do_not_block_strict_fifo() -> None:
    vision = team("vision", 8, borrow=8, queueing=QueueingStrategy.STRICT_FIFO)
    r = run(
        [a100(64), Flavour("t4", Resources(4, 0, 0))],
        [vision, team("nlp", 16), team("infra", 8, cohort=None)],
        [
            job("v/huge", "vision", 32, created=0),
            Workload("v/t4", "vision", "t4", Resources(1, 0, 0), created=1),
            Workload("v/h200", "vision", "h200", Resources(1, 0, 0), created=2),
            job("x/stranger", "nobody", 1),
            job("i/too-big", "infra", 9, pods=8),
            job("v/ok", "vision", 4, created=3),
        ],
    )
    assert admitted(r) == ["v/ok"]
    assert pending(r, "v/huge") == (
        Reason.EXCEEDS_QUOTA,
        "needs 32 a100 GPUs but team vision may use at most 16 (8 nominal + 8 borrowable)",
    )
    assert pending(r, "v/t4") == (
        Reason.FLAVOUR_NOT_IN_QUOTA,
        "team vision has no quota for flavour t4",
    )
    assert pending(r, "v/h200") == (Reason.UNKNOWN_FLAVOUR, "no flavour h200 in the cluster")
    assert pending(r, "x/stranger") == (Reason.UNKNOWN_TEAM, "no ResourceBudget for team nobody")
    assert pending(r, "i/too-big") == (
        Reason.EXCEEDS_CAPACITY,
        "needs 72 a100 GPUs but flavour a100 has only 64 on schedulable nodes",
    )


def test_model_deployment_min_replicas_as_a_gang_then_extras_one_at_a_time() -> None:
    serving = Workload(
        "risk-prod/fraud-scorer",
        "risk",
        "a100",
        Resources(1, 0, 0),
        pods=2,
        kind=WorkloadKind.MODEL_DEPLOYMENT,
        extra_replicas=3,
    )
    snap = Snapshot((a100(16),), (team("risk", 4, cohort=None),), (serving,))
    first = schedule(snap)
    (a,) = first.admitted
    assert (a.gang, a.extra_replicas, a.total_extra_replicas) == (True, 2, 2)
    assert a.usage == Resources(4, 0, 0)
    p = first.pending_by_key()["risk-prod/fraud-scorer"]
    assert p.replicas == 1
    assert p.message == (
        "waiting for 1 a100 GPU for 1 more replica (1 wanted): team risk uses 4/4 nominal "
        "and has no cohort to borrow from"
    )
    # more quota later: only the last extra replica is admitted
    grown = replace(apply(snap, first), teams=(team("risk", 8, cohort=None),))
    (b,) = schedule(grown).admitted
    assert (b.gang, b.extra_replicas, b.total_extra_replicas) == (False, 1, 3)
    assert b.usage == Resources(1, 0, 0)


def test_model_deployment_whose_min_replicas_do_not_fit_takes_nothing() -> None:
    serving = Workload(
        "risk-prod/fraud-scorer",
        "risk",
        "a100",
        Resources(1, 0, 0),
        pods=5,
        kind=WorkloadKind.MODEL_DEPLOYMENT,
        extra_replicas=3,
    )
    r = run([a100(16)], [team("risk", 4, cohort=None)], [serving])
    assert r.admitted == ()
    assert r.pending_by_key()["risk-prod/fraud-scorer"].replicas == 5


def test_admission_reports_what_is_borrowed_and_team_usage() -> None:
    r = run(
        [a100(16)],
        [team("vision", 8), team("nlp", 8)],
        [job("v/a", "vision", 4, admitted=True), job("v/b", "vision", 8)],
    )
    (a,) = r.admitted
    assert a.borrowed == Resources(4, 0, 0)
    usage = {t.team: t for t in r.teams}
    assert usage["vision"].flavours[0].usage == Resources(12, 0, 0)
    assert usage["vision"].flavours[0].borrowed == Resources(4, 0, 0)
    assert (usage["vision"].admitted, usage["vision"].pending) == (2, 0)


# ---- preemption ---------------------------------------------------------------------------


def test_preempts_lower_priority_work_of_the_same_team() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8, cohort=None)],
        [
            job("vision-research/low", "vision", 8, prio=100, admitted=True),
            job("vision-research/resnet", "vision", 8, prio=1000),
        ],
    )
    (v,) = r.victims
    assert (v.key, v.reason, v.preemptor) == (
        "vision-research/low",
        Reason.PREEMPTED,
        "vision-research/resnet",
    )
    assert v.message == (
        "preempted by vision-research/resnet (priority 1000 > 100)"
        " to free a100 quota of team vision"
    )
    assert admitted(r) == ["vision-research/resnet"]


def test_never_preempts_equal_priority_within_a_team() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8, cohort=None)],
        [job("v/a", "vision", 8, admitted=True), job("v/b", "vision", 8)],
    )
    assert r.victims == () and r.admitted == ()


def test_reclaims_quota_lent_to_another_team_whatever_its_priority() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8), team("nlp", 0)],
        [
            job("nlp/borrower", "nlp", 8, prio=1000, admitted=True),
            job("vision-research/a", "vision", 8, prio=0),
        ],
    )
    (v,) = r.victims
    assert v.key == "nlp/borrower" and v.preemptor == "vision-research/a"
    assert v.message == (
        "preempted by vision-research/a to reclaim a100 quota of team vision lent to team nlp"
    )
    assert admitted(r) == ["vision-research/a"]


def test_no_reclaim_when_the_preemptor_would_itself_borrow() -> None:
    r = run(
        [a100(12)],
        [team("vision", 4), team("nlp", 4), team("speech", 4)],
        [
            job("n/borrower", "nlp", 8, admitted=True),
            job("v/a", "vision", 8),
        ],
    )
    assert r.victims == ()
    assert pending(r, "v/a")[0] == Reason.QUOTA_EXHAUSTED


def test_other_teams_within_nominal_are_never_preempted() -> None:
    r = run(
        [a100(16)],
        [team("vision", 8), team("nlp", 8)],
        [
            job("n/a", "nlp", 8, prio=0, admitted=True),
            job("v/a", "vision", 8, prio=0, admitted=True),
            job("v/b", "vision", 4, prio=1000),
        ],
    )
    assert [v.key for v in r.victims] == ["v/a"]  # its own lower priority, not nlp's


def test_non_preemptible_work_is_never_a_victim() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8, cohort=None)],
        [
            job("v/a", "vision", 8, prio=0, admitted=True, preemptible=False),
            job("v/b", "vision", 8, prio=9),
        ],
    )
    assert r.victims == () and r.admitted == ()


def test_fewest_victims() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8, cohort=None)],
        [
            job("v/big", "vision", 4, prio=0, admitted=True, at=0.0),
            job("v/small-1", "vision", 2, prio=0, admitted=True, at=1.0),
            job("v/small-2", "vision", 2, prio=0, admitted=True, at=2.0),
            job("v/urgent", "vision", 4, prio=9),
        ],
    )
    assert [v.key for v in r.victims] == ["v/big"]


def test_most_recently_admitted_first_and_lowest_priority_first() -> None:
    r = run(
        [a100(12)],
        [team("vision", 12, cohort=None)],
        [
            job("v/old", "vision", 4, prio=0, admitted=True, at=1.0),
            job("v/new", "vision", 4, prio=0, admitted=True, at=2.0),
            job("v/mid-priority", "vision", 4, prio=5, admitted=True, at=3.0),
            job("v/urgent", "vision", 4, prio=9),
        ],
    )
    assert [v.key for v in r.victims] == ["v/new"]


def test_only_the_victims_needed_are_taken() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8, cohort=None)],
        [job(f"v/{i}", "vision", 2, prio=0, admitted=True, at=float(i)) for i in range(4)]
        + [job("v/urgent", "vision", 4, prio=9)],
    )
    assert sorted(v.key for v in r.victims) == ["v/2", "v/3"]


def test_extra_replicas_are_scaled_down_before_a_gang_is_stopped() -> None:
    serving = Workload(
        "risk-prod/fraud-scorer",
        "risk",
        "a100",
        Resources(1, 0, 0),
        pods=2,
        kind=WorkloadKind.MODEL_DEPLOYMENT,
        extra_replicas=3,
        admitted=True,
        admitted_extra=3,
        admitted_at=0.0,
    )
    snap = Snapshot(
        (a100(8),),
        (team("vision", 5), team("risk", 3)),
        (serving, job("vision-research/a", "vision", 5, prio=0)),
    )
    r = schedule(snap)
    (v,) = r.victims
    assert (v.key, v.replicas, v.extra_replicas_left) == ("risk-prod/fraud-scorer", 2, 1)
    assert v.message == (
        "2 extra replicas preempted by vision-research/a to reclaim a100 quota of team vision"
        " lent to team risk"
    )
    assert admitted(r) == ["vision-research/a"]
    after = apply(snap, r)
    assert {w.key: w.admitted_extra for w in after.workloads}["risk-prod/fraud-scorer"] == 1
    assert schedule(after).victims == ()


def test_a_borrower_admitted_earlier_in_the_pass_is_taken_back_not_preempted() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8), team("nlp", 0)],
        [job("n/b", "nlp", 8, prio=10), job("v/a", "vision", 8, prio=0)],
    )
    assert r.victims == ()
    assert admitted(r) == ["v/a"]
    assert pending(r, "n/b") == (
        Reason.QUOTA_EXHAUSTED,
        "waiting for 8 a100 GPUs: team nlp uses 0/0 nominal, cohort research has 0 idle",
    )


def test_a_unit_that_failed_before_another_team_borrowed_reclaims_in_the_same_pass() -> None:
    """n/two fails first (nlp is furthest below its share): 1 GPU free, and vision does not
    borrow, so there is nothing to reclaim. v/one then borrows nlp's idle quota, which makes
    vision's work reclaimable. The pass goes round again and n/two reclaims now, not in the
    next pass: one pass's decisions are final."""
    flavours = [a100(4)]
    teams = [team("vision", 2), team("nlp", 4)]
    workloads = [
        job("v/low", "vision", 2, prio=0, admitted=True),
        job("n/held", "nlp", 1, prio=50, admitted=True),
        job("n/two", "nlp", 2, prio=50, created=1.0),
        job("v/one", "vision", 1, prio=50, created=2.0),
    ]
    r = run(flavours, teams, workloads)
    assert admitted(r) == ["v/one", "n/two"]
    (v,) = r.victims
    assert v.key == "v/low"
    assert v.message == "preempted by n/two to reclaim a100 quota of team nlp lent to team vision"
    after = apply(Snapshot(tuple(flavours), tuple(teams), tuple(workloads)), r)
    again = schedule(after)
    assert again.admitted == () and again.victims == ()


# ---- order ---------------------------------------------------------------------------------


def test_higher_priority_first() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8, cohort=None), team("nlp", 8, cohort=None)],
        [job("v/a", "vision", 8, prio=0, created=0), job("n/a", "nlp", 8, prio=10, created=1)],
    )
    assert admitted(r) == ["n/a"]


def test_team_furthest_below_its_fair_share_first() -> None:
    r = run(
        [a100(8)],
        [team("vision", 8, cohort=None), team("nlp", 8, cohort=None)],
        [
            job("v/running", "vision", 4, admitted=True),
            job("v/a", "vision", 4, created=0),
            job("n/a", "nlp", 4, created=1),
        ],
    )
    assert admitted(r) == ["n/a"]  # nlp 0/8 goes before vision 4/8, though created later


def test_fair_share_weight_divides_the_share() -> None:
    r = run(
        [a100(10)],
        [
            team("vision", 8, cohort=None, fair_share_weight=4.0),
            team("nlp", 8, cohort=None, fair_share_weight=1.0),
        ],
        [
            job("v/running", "vision", 4, admitted=True),  # 0.5 / 4
            job("n/running", "nlp", 2, admitted=True),  # 0.25 / 1
            job("n/a", "nlp", 4, created=0),
            job("v/a", "vision", 4, created=1),
        ],
    )
    assert admitted(r) == ["v/a"]


def test_weight_zero_goes_last() -> None:
    r = run(
        [a100(4)],
        [team("vision", 8, cohort=None, fair_share_weight=0.0), team("nlp", 8, cohort=None)],
        [
            job("n/running", "nlp", 4, admitted=True),
            job("v/a", "vision", 4, created=0),
            job("n/a", "nlp", 4, created=1),
        ],
    )
    assert r.admitted == ()
    # vision (weight 0) uses nothing, nlp uses 4/8: nlp still goes first
    r = run(
        [a100(8)],
        [team("vision", 8, cohort=None, fair_share_weight=0.0), team("nlp", 8, cohort=None)],
        [
            job("n/running", "nlp", 4, admitted=True),
            job("v/a", "vision", 4, created=0),
            job("n/a", "nlp", 4, created=1),
        ],
    )
    assert admitted(r) == ["n/a"]


def test_creation_time_then_key_break_ties() -> None:
    r = run(
        [a100(4)],
        [team("vision", 8, cohort=None), team("nlp", 8, cohort=None)],
        [job("v/a", "vision", 4, created=2), job("n/a", "nlp", 4, created=1)],
    )
    assert admitted(r) == ["n/a"]
    r = run(
        [a100(4)],
        [team("vision", 8, cohort=None), team("nlp", 8, cohort=None)],
        [job("v/a", "vision", 4, created=1), job("n/a", "nlp", 4, created=1)],
    )
    assert admitted(r) == ["n/a"]


def test_positions_follow_the_team_queue_order() -> None:
    r = run(
        [a100(0)],
        [team("vision", 8, cohort=None)],
        [
            job("v/c", "vision", 1, prio=0, created=0),
            job("v/b", "vision", 1, prio=5, created=2),
            job("v/a", "vision", 1, prio=5, created=1),
        ],
    )
    assert [(p.key, p.position) for p in r.pending] == [("v/a", 1), ("v/b", 2), ("v/c", 3)]


# ---- capacity from nodes -------------------------------------------------------------------


def test_capacity_from_nodes() -> None:
    selectors = [
        FlavourSelector("a100", {"gpu": "a100"}),
        FlavourSelector("any-gpu", {"gpu-node": "true"}),
        FlavourSelector("t4", {"gpu": "t4"}),
    ]
    nodes = [
        Node({"gpu": "a100", "gpu-node": "true"}, Resources(8, 96_000, 1024 * GI)),
        Node({"gpu": "a100", "gpu-node": "true"}, Resources(8, 96_000, 1024 * GI)),
        Node({"gpu": "a100"}, Resources(8, 96_000, 1024 * GI), unschedulable=True),
        Node({"gpu": "l4", "gpu-node": "true"}, Resources(4, 48_000, 192 * GI)),
        Node({"role": "cpu"}, Resources(0, 64_000, 256 * GI)),
    ]
    capacity = {f.name: f.capacity for f in capacity_from_nodes(selectors, nodes)}
    assert capacity == {
        "a100": Resources(16, 192_000, 2048 * GI),  # cordoned node left out
        "any-gpu": Resources(4, 48_000, 192 * GI),  # a100 nodes counted once, in a100
        "t4": Resources(0, 0, 0),
    }


def test_creation_and_admission_times_may_be_datetimes() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    r = run(
        [a100(4)],
        [team("vision", 8, cohort=None)],
        [
            replace(job("v/later", "vision", 4), created=t0 + timedelta(minutes=5)),
            replace(job("v/first", "vision", 4), created=t0),
        ],
    )
    assert admitted(r) == ["v/first"]
    r = run(
        [a100(4)],
        [team("vision", 4, cohort=None)],
        [
            replace(job("v/old", "vision", 2, prio=0, admitted=True), admitted_at=t0),
            replace(
                job("v/new", "vision", 2, prio=0, admitted=True),
                admitted_at=t0 + timedelta(hours=1),
            ),
            job("v/urgent", "vision", 2, prio=9),
        ],
    )
    assert [v.key for v in r.victims] == ["v/new"]


def test_the_worked_example_of_docs_architecture_md() -> None:
    def quota(n: int, borrow: int | None = None) -> tuple[FlavourQuota, ...]:
        return (
            FlavourQuota("a100", Limits(gpus=n), None if borrow is None else Limits(gpus=borrow)),
        )

    def gpus(key: str, team: str, n: int, pods: int, prio: int, *, created: float) -> Workload:
        return Workload(
            key, team, "a100", Resources(n, 0, 0), pods=pods, priority=prio, created=created
        )

    teams = (
        Team("vision", quota(8, borrow=8), cohort="research"),
        Team("nlp", quota(8), cohort="research"),
        Team("speech", quota(4), spend=OVER_BUDGET),
    )
    workloads = (
        replace(
            gpus("vision-research/sweep-1", "vision", 4, 1, 100, created=1),
            admitted=True,
            admitted_at=10.0,
        ),
        replace(
            gpus("vision-research/sweep-2", "vision", 4, 2, 100, created=2),
            admitted=True,
            admitted_at=20.0,
        ),
        gpus("vision-research/resnet", "vision", 8, 1, 1000, created=30),
        gpus("nlp/bert-large", "nlp", 4, 2, 100, created=31),
        gpus("vision-research/small", "vision", 2, 1, 100, created=32),
        gpus("speech/whisper", "speech", 1, 1, 100, created=33),
    )
    r = schedule(Snapshot((a100(16),), teams, workloads))
    assert [(a.key, a.usage.gpus, a.borrowed.gpus) for a in r.admitted] == [
        ("vision-research/resnet", 8, 0),
        ("nlp/bert-large", 8, 0),
    ]
    assert [(v.key, v.message) for v in r.victims] == [
        (
            "vision-research/sweep-2",
            "preempted by vision-research/resnet (priority 1000 > 100) to free a100 quota of"
            " team vision",
        ),
        (
            "vision-research/sweep-1",
            "preempted by nlp/bert-large to reclaim a100 quota of team nlp lent to team vision",
        ),
    ]
    assert [(p.key, p.position, p.reason, p.message) for p in r.pending] == [
        (
            "speech/whisper",
            1,
            Reason.BUDGET_EXCEEDED,
            "budget exceeded for this month: 20,140 of 20,000 USD",
        ),
        (
            "vision-research/small",
            1,
            Reason.QUOTA_EXHAUSTED,
            "waiting for 2 a100 GPUs: team vision uses 8/8 nominal, cohort research has 0 idle",
        ),
    ]


def test_a_reclaim_takes_only_what_another_team_borrows_never_its_whole_gang() -> None:
    """Found by test_team_within_nominal_gets_its_nominal_back. Two serving gangs each
    with one extra replica on borrowed quota: the "fewest victims" shortcut used to evict
    nlp's whole gang (8 GPUs within its nominal) for robotics' reclaim of 3, and then nlp
    reclaimed its nominal back from robotics, round after round; the pass ended with nlp
    waiting at 0/8 of its nominal."""
    teams = [
        team("nlp", 8, fair_share_weight=0.0),
        team("infra", 0, fair_share_weight=0.5),
        team("robotics", 9, fair_share_weight=0.0),
    ]

    def serving(key: str, owner: str, gpus: int, pods: int, prio: int) -> Workload:
        return replace(
            job(key, owner, gpus, pods=pods, prio=prio),
            kind=WorkloadKind.MODEL_DEPLOYMENT,
            extra_replicas=1,
        )

    r = run(
        [a100(17)],
        teams,
        [
            serving("r/serve", "robotics", 3, 3, 0),
            job("i/train", "infra", 1, prio=0),
            serving("n/serve", "nlp", 2, 4, 1),
        ],
    )
    assert admitted(r) == ["n/serve", "r/serve"]
    assert "i/train" in r.pending_by_key()


def _serving(key: str, team_name: str, *, pods: int, extra: int = 0, **kw: object) -> Workload:
    return Workload(
        key,
        team_name,
        "a100",
        Resources(1, 0, 0),
        pods=pods,
        kind=WorkloadKind.MODEL_DEPLOYMENT,
        extra_replicas=extra,
        admitted=True,
        admitted_extra=extra,
        admitted_at=0.0,
        **kw,  # type: ignore[arg-type]
    )


def test_training_does_not_preempt_a_protected_serving_floor_but_takes_its_extras() -> None:
    serving = _serving("risk-prod/fraud", "risk", pods=2, extra=2, training_may_preempt=False)
    snap = Snapshot(
        (a100(4),),
        (team("risk", 8, cohort=None),),
        (serving, job("risk-prod/train", "risk", 2, prio=1000)),
    )
    r = schedule(snap)
    (v,) = r.victims
    assert (v.key, v.replicas, v.extra_replicas_left) == ("risk-prod/fraud", 2, 0)
    assert admitted(r) == ["risk-prod/train"]
    # with no extras left, the floor stays and the training job waits
    big = replace(snap, workloads=(serving, job("risk-prod/train", "risk", 4, prio=1000)))
    r = schedule(big)
    assert r.victims == () and pending(r, "risk-prod/train")[0] == Reason.CAPACITY_EXHAUSTED


def test_training_may_preempt_serving_when_the_config_allows() -> None:
    serving = _serving("risk-prod/fraud", "risk", pods=2)
    r = run(
        [a100(2)],
        [team("risk", 8, cohort=None)],
        [serving, job("risk-prod/train", "risk", 2, prio=1000)],
    )
    (v,) = r.victims
    assert (v.key, v.replicas) == ("risk-prod/fraud", 0)


def test_budget_suspend_scales_serving_to_its_floor() -> None:
    suspend = replace(OVER_BUDGET, policy=SpendPolicy.SUSPEND)
    r = run(
        [a100(8)],
        [team("risk", 8, cohort=None, spend=suspend)],
        [
            _serving("risk-prod/fraud", "risk", pods=2, extra=3),
            job("risk-prod/t", "risk", 1, admitted=True),
        ],
    )
    victims = {v.key: v for v in r.victims}
    fraud = victims["risk-prod/fraud"]
    assert (fraud.reason, fraud.replicas, fraud.extra_replicas_left) == (
        Reason.BUDGET_EXCEEDED,
        3,
        0,
    )
    assert victims["risk-prod/t"].replicas == 0


# ---- what a pass costs ----------------------------------------------------------------------


class _CountingPass(AdmissionPass):
    """Counts the units the main loop tries (admits, fails, or fails fast)."""

    def __init__(self, snapshot: Snapshot, *, parking: bool = True) -> None:
        super().__init__(snapshot)
        self.parking = parking
        self.steps = 0

    def _smallest(self, team: TeamState, queued: list[set[tuple[int, int, int]]]) -> Any:
        return super()._smallest(team, queued) if self.parking else None

    def _step(self, team: TeamState, allow_preemption: bool) -> None:
        self.steps += 1
        super()._step(team, allow_preemption)


def test_a_full_team_is_not_tried_unit_by_unit() -> None:
    teams = [team(name, 8, borrow=0) for name in ("nlp", "speech", "vision")]
    workloads = []
    for each in teams:
        name = each.name
        workloads.append(job(f"ns/{name}-running", name, 8, admitted=True, preemptible=False))
        workloads += [
            job(f"ns/{name}-big-{i:03d}", name, 4, prio=200, created=i) for i in range(10)
        ]
        workloads += [job(f"ns/{name}-small-{i:03d}", name, 1, created=i) for i in range(190)]
    snapshot = Snapshot((a100(24),), tuple(teams), tuple(workloads))
    parked, unparked = _CountingPass(snapshot), _CountingPass(snapshot, parking=False)
    result = parked.run()
    assert result == unparked.run()
    assert not result.admitted
    assert sorted(p.position for p in result.pending if p.team == "nlp") == list(range(1, 201))
    # Per team: the first big unit fails, the other nine fail fast, then the first small
    # one fails and the team parks; its other 189 small units are never popped one by one.
    assert parked.steps == 3 * 11
    assert unparked.steps == 3 * 200
