"""ResourceBudget status: the ledger, spend figures, crossings and team inputs (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cadre.core.accounting import Charge, Interval, Ledger, PodCharge, PodUsage, Rates, Window
from cadre.core.api.resourcebudget import ResourceBudgetSpec
from cadre.core.budget.status import budget_figures, budget_status, team_inputs
from cadre.core.scheduling import (
    FlavourQuota,
    Limits,
    PassResult,
    Resources,
    Snapshot,
    Team,
    Workload,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NOVEMBER = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
OCTOBER = Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
A100 = Rates(gpu_hour=Decimal("3600"))  # one unit of money per GPU-second: easy sums
RATES = {"a100": A100}


def pod(
    uid: str, start: datetime, end: datetime | None = None, gpus: int = 1, team: str = "vision"
) -> PodCharge:
    return PodCharge(
        uid=uid,
        name=uid,
        namespace="ns",
        team=team,
        flavor="a100",
        usages=(PodUsage(Interval(start, end), gpus=gpus),),
    )


def spec(**spend: Any) -> ResourceBudgetSpec:
    body: dict[str, Any] = {"namespaces": ["ns"], "quota": [{"flavor": "a100", "gpus": 8}]}
    if spend:
        body["spend"] = spend
    return ResourceBudgetSpec.model_validate(body)


def budget(status: dict[str, Any] | None = None, **spend: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"namespaces": ["ns"], "quota": [{"flavor": "a100", "gpus": 8}]}
    if spend:
        body["spend"] = spend
    return {"metadata": {"name": "vision", "generation": 2}, "spec": body, "status": status}


# -- the ledger --------------------------------------------------------------------------


def test_a_pod_is_settled_once_and_split_between_periods() -> None:
    start = NOVEMBER.start - timedelta(seconds=10)
    usage = (PodUsage(Interval(start, NOVEMBER.start + timedelta(seconds=30)), gpus=2),)
    ledger = Ledger().settle("p1", usage, A100, current=NOVEMBER, previous=OCTOBER, now=NOW)
    assert ledger.settled == Charge(Decimal(60), Decimal(60))
    assert ledger.previous_settled == Charge(Decimal(20), Decimal(20))
    again = ledger.settle("p1", usage, A100, current=NOVEMBER, previous=OCTOBER, now=NOW)
    assert again == ledger  # the restart case: recorded, not yet released


def test_ledger_round_trips_through_the_status_exactly() -> None:
    usage = (PodUsage(Interval(NOW - timedelta(microseconds=7), NOW), gpus=1),)
    ledger = Ledger().settle(
        "p", usage, Rates(gpu_hour=Decimal("1.23")), current=NOVEMBER, previous=OCTOBER, now=NOW
    )
    wire = ledger.to_status()
    assert "E" not in wire["settled"]["cost"]  # positional, as the schema wants
    assert Ledger.from_status(wire) == ledger


def test_a_new_period_starts_a_new_sum_and_keeps_the_previous_total() -> None:
    ledger = Ledger(period_start=OCTOBER.start, settled=Charge(Decimal(5), Decimal(5)))
    rolled = ledger.rolled(NOVEMBER, OCTOBER)
    assert rolled.settled == Charge()
    assert rolled.previous_settled == Charge(Decimal(5), Decimal(5))
    december = Window(NOVEMBER.end, datetime(2027, 1, 1, tzinfo=UTC))
    assert rolled.rolled(december, NOVEMBER).previous_settled == Charge()
    long_ago = Ledger(period_start=datetime(2026, 1, 1, tzinfo=UTC), settled=Charge(Decimal(9)))
    assert long_ago.rolled(NOVEMBER, OCTOBER).previous_settled == Charge()


def test_forgetting_gone_pods_keeps_their_charge() -> None:
    ledger = Ledger(settled=Charge(Decimal(3)), settled_pods=("a", "b"))
    assert ledger.forget_pods({"a", "zzz"}) == Ledger(
        settled=Charge(Decimal(3)), settled_pods=("b",)
    )


# -- figures -----------------------------------------------------------------------------


def test_spent_is_the_ledger_plus_live_pods_not_settled() -> None:
    ledger = Ledger(
        period_start=NOVEMBER.start,
        settled=Charge(Decimal(100), Decimal(100)),
        settled_pods=("gone",),
    )
    pods = [
        pod("running", NOW - timedelta(seconds=40)),
        pod("done", NOW - timedelta(seconds=90), NOW - timedelta(seconds=80), gpus=2),
        pod("gone", NOW - timedelta(seconds=500), NOW - timedelta(seconds=400)),  # settled
    ]
    figures = budget_figures(spec(limit="1000"), ledger, pods, rates=RATES, now=NOW)
    assert figures.spent == Charge(Decimal(160), Decimal(160))
    assert figures.state == "Ok"
    assert figures.spent_an_hour_ago == Decimal(100)


def test_period_rollover_shows_the_previous_total() -> None:
    first = NOVEMBER.end - timedelta(seconds=30)
    ledger = Ledger(period_start=NOVEMBER.start, settled=Charge(Decimal(7), Decimal(7)))
    figures = budget_figures(
        spec(limit="1000"),
        ledger,
        [pod("p", first)],
        rates=RATES,
        now=NOVEMBER.end + timedelta(seconds=10),
    )
    assert figures.current.start == NOVEMBER.end
    assert figures.spent.cost == Decimal(10)
    assert figures.previous_spent.cost == Decimal(37)


def test_gpu_hours_limit_counts_when_it_runs_out_first() -> None:
    pods = [pod("p", NOW - timedelta(hours=2), NOW - timedelta(hours=1), gpus=3)]
    figures = budget_figures(
        spec(limit="1000000", gpuHours=2), Ledger(), pods, rates=RATES, now=NOW
    )
    assert (figures.state, figures.limiting) == ("Exceeded", "gpuHours")
    s = figures.scheduling_spend("USD")
    assert (s.spent, s.limit, s.currency) == (Decimal("3.00"), Decimal(2), "GPU-hours")


# -- status and crossings ----------------------------------------------------------------


def status_after(
    spent_seconds: int, previous: dict[str, Any] | None, **spend: Any
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    b = budget(previous, **spend)
    figures = budget_figures(
        ResourceBudgetSpec.model_validate(b["spec"]),
        Ledger(),
        [pod("p", NOW - timedelta(seconds=spent_seconds), NOW)],
        rates=RATES,
        now=NOW,
    )
    return budget_status(b, team_inputs_none(), figures, currency="USD", now=NOW)


def team_inputs_none() -> Any:
    from cadre.core.budget.status import BudgetInputs  # noqa: PLC0415

    return BudgetInputs(namespaces=("ns",))


def test_each_crossing_posts_one_event_and_sets_the_conditions() -> None:
    limit = {"limit": "100", "warnAt": [0.5, 0.8]}
    status, events = status_after(10, None, **limit)
    assert status["spend"]["state"] == "Ok" and events == []
    status, events = status_after(55, status, **limit)
    assert [(t, r) for t, r, _ in events] == [("Warning", "BudgetWarning")]
    assert "50% of the budget spent this month: 55.00 of 100 USD" in events[0][2]
    assert status["spend"]["threshold"] == 0.5
    status, events = status_after(60, status, **limit)
    assert events == []  # no new crossing, no event
    status, events = status_after(85, status, **limit)
    assert [r for _, r, _ in events] == ["BudgetWarning"]
    status, events = status_after(101, status, **limit)
    assert [(t, r) for t, r, _ in events] == [("Warning", "BudgetExceeded")]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["BudgetExceeded"]["status"] == "True"
    assert conditions["BudgetExceeded"]["reason"] == "NewWorkHeld"
    assert conditions["BudgetWarning"]["reason"] == "Reached100Percent"
    # The limit is lifted: one Event back to Ok.
    status, events = status_after(101, status, limit="1000", warnAt=[0.5, 0.8])
    assert [(t, r) for t, r, _ in events] == [("Normal", "BudgetOk")]
    assert {c["type"]: c["status"] for c in status["conditions"]}["BudgetExceeded"] == "False"


def test_without_limits_spend_is_shown_without_a_state() -> None:
    status, events = status_after(30, None)
    assert status["spend"]["spent"] == "30.00"
    assert "state" not in status["spend"] and events == []
    assert {c["type"] for c in status["conditions"]} == {"NamespaceConflict"}


# -- team inputs -------------------------------------------------------------------------


def test_team_inputs_count_usage_borrowing_and_conflicts_on_both_budgets() -> None:
    teams = (
        Team("vision", quotas=(FlavourQuota("a100", Limits(8, 64000, None)),), cohort="c"),
        Team("nlp", quotas=(FlavourQuota("a100", Limits(8, None, None)),), cohort="c"),
    )
    per_pod = Resources(4, 16000, 2**35)
    workloads = (
        Workload("v/a", "vision", "a100", per_pod, pods=2, admitted=True),
        Workload("v/b", "vision", "a100", per_pod, pods=1),
        Workload("v/c", "vision", "a100", per_pod, pods=1, admitted=True),
    )
    snapshot = Snapshot(flavours=(), teams=teams, workloads=workloads)
    from cadre.core.scheduling import schedule  # noqa: PLC0415

    result = schedule(snapshot)
    inputs = team_inputs(
        snapshot,
        PassResult(admitted=result.admitted, victims=(), pending=result.pending, teams=()),
        namespaces={"v": ("vision",), "shared": ("nlp", "vision")},
        waiting={"nlp": 2},
    )
    vision, nlp = inputs["vision"], inputs["nlp"]
    assert vision.usage == {"a100": Resources(12, 48000, 3 * 2**35)}
    assert vision.admitted == 2
    assert nlp.queued == 2 and nlp.namespaces == ("shared",)
    assert vision.conflicts == {"shared": ("nlp",)}
    assert nlp.conflicts == {"shared": ("vision",)}
    b = budget(None, limit="100")
    figures = budget_figures(spec(limit="100"), Ledger(), [], rates=RATES, now=NOW)
    status, events = budget_status(b, vision, figures, currency="USD", now=NOW)
    assert status["usage"]["a100"] == {
        "gpus": 12,
        "cpu": "48",
        "memory": "96Gi",
        "borrowedGpus": 4,
        "borrowedCpu": "0",
        "borrowedMemory": "0",
    }
    conflict = next(c for c in status["conditions"] if c["type"] == "NamespaceConflict")
    assert conflict["status"] == "True" and "shared" in conflict["message"]
    assert [r for _, r, _ in events] == ["NamespaceConflict"]


# -- property: settling moves a charge, never changes the total -------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-40 * 86400, 20 * 86400),  # start, seconds from the 1st of November
            st.integers(1, 5 * 86400),  # length
            st.integers(0, 8),  # GPUs
            st.booleans(),  # settled (gone) or live
        ),
        max_size=12,
    ),
    st.integers(0, 29 * 86400),
)
def test_settled_plus_live_is_every_pods_charge_in_the_period(
    pods_spec: list[tuple[int, int, int, bool]], now_offset: int
) -> None:
    now = NOVEMBER.start + timedelta(seconds=now_offset)
    pods = [
        pod(
            f"p{i}",
            NOVEMBER.start + timedelta(seconds=s),
            NOVEMBER.start + timedelta(seconds=s + n),
            gpus=g,
        )
        for i, (s, n, g, _) in enumerate(pods_spec)
    ]
    ledger = Ledger()
    for p, (_, _, _, gone) in zip(pods, pods_spec, strict=True):
        if gone:
            ledger = ledger.settle(
                p.uid, p.usages, A100, current=NOVEMBER, previous=OCTOBER, now=now
            )
    live = [p for p, (*_, gone) in zip(pods, pods_spec, strict=True) if not gone]
    figures = budget_figures(
        spec(),
        ledger,
        live + [p for p in pods if p.uid in ledger.settled_pods],
        rates=RATES,
        now=now,
    )
    expected = sum(
        (
            min(u.interval.end or now, now, NOVEMBER.end) - max(u.interval.start, NOVEMBER.start)
        ).total_seconds()
        * u.gpus
        for p in pods
        for u in p.usages
        if min(u.interval.end or now, now, NOVEMBER.end) > max(u.interval.start, NOVEMBER.start)
    )
    assert figures.spent.cost == Decimal(str(expected))


@given(
    st.lists(
        st.tuples(
            st.integers(-40 * 86400, 30 * 86400),  # start, seconds from the 1st of November
            st.one_of(st.none(), st.integers(0, 3 * 86400)),  # length; None: still running
            st.integers(0, 8),  # GPUs
        ),
        max_size=10,
    ),
    st.lists(st.integers(0, 20 * 86400), min_size=1, max_size=6),  # clock steps forward
    st.sampled_from(["Daily", "Weekly", "Monthly"]),
)
@settings(max_examples=200)
def test_finished_pods_kept_between_calls_change_no_figure(
    pods_spec: list[tuple[int, int | None, int]], steps: list[int], period: str
) -> None:
    """The memo of finished pods' charges (a budget writer keeps it across rounds while
    the clock moves, periods roll over and the last hour slides) gives exactly the figures
    computed afresh: not a cent lost or counted twice."""
    pods = [
        pod(
            f"p{i}",
            NOVEMBER.start + timedelta(seconds=s),
            None if n is None else NOVEMBER.start + timedelta(seconds=s + n),
            gpus=g,
        )
        for i, (s, n, g) in enumerate(pods_spec)
    ]
    budget_spec = spec(period=period, limit="1000000")
    finished: dict[str, Any] = {}
    now = NOVEMBER.start
    for step in steps:
        now += timedelta(seconds=step)
        kept = budget_figures(budget_spec, Ledger(), pods, rates=RATES, now=now, finished=finished)
        fresh = budget_figures(budget_spec, Ledger(), pods, rates=RATES, now=now)
        assert kept == fresh
    # Only pods that had ended by then are kept.
    assert set(finished) <= {p.uid for p in pods if p.usages[0].interval.end is not None}
