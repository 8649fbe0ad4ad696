"""The view model of `cadre status`: rows, bars, queues, the oldest waiting job, what was
not readable, exit codes. Pure: objects in, dataclasses out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cadre.tools.status.view import (
    BAR_WIDTH,
    EXIT_COMPLETE,
    EXIT_NOTHING,
    EXIT_PARTIAL,
    Observed,
    Unreadable,
    build_view,
    exit_code,
    spend_bar,
    waiting_job,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _at(minutes_ago: int) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def budget(
    name: str,
    namespaces: list[str],
    *,
    quota: dict[str, int] | None = None,
    usage: dict[str, tuple[int, int]] | None = None,
    limit: str | None = None,
    spent: str = "0.00",
    forecast: str | None = None,
    state: str | None = "Ok",
    queued: int = 0,
    admitted: int = 0,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "namespaces": namespaces,
        "cohort": "research",
        "quota": [{"flavor": f, "gpus": g} for f, g in (quota or {"t4": 4}).items()],
    }
    if limit is not None:
        spec["spend"] = {"limit": limit, "period": "Monthly", "whenExceeded": "Queue"}
    spend: dict[str, Any] = {"currency": "USD", "spent": spent, "state": state}
    if forecast is not None:
        spend["forecast"] = forecast
    return {
        "metadata": {"name": name},
        "spec": spec,
        "status": {
            "namespaces": namespaces,
            "usage": {f: {"gpus": u, "borrowedGpus": b} for f, (u, b) in (usage or {}).items()},
            "spend": spend,
            "queued": queued,
            "admitted": admitted,
        },
    }


def tj(
    namespace: str,
    name: str,
    *,
    phase: str | None = "Queued",
    team: str | None = None,
    created: int = 60,
    waiting_since: int | None = None,
    reason: str | None = "waiting for 8 t4 GPUs",
    position: int | None = 1,
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if team is not None:
        status["team"] = team
    if phase == "Queued":
        status["queue"] = {"reason": reason, "position": position}
        if waiting_since is not None:
            status["conditions"] = [
                {
                    "type": "Admitted",
                    "status": "False",
                    "reason": "CapacityExhausted",
                    "message": "no room",
                    "lastTransitionTime": _at(waiting_since),
                }
            ]
    return {
        "metadata": {"namespace": namespace, "name": name, "creationTimestamp": _at(created)},
        "status": status,
    }


def test_rows_per_flavour_with_borrowed_gpus_and_spend() -> None:
    observed = Observed(
        budgets=(
            budget(
                "vision",
                ["vision"],
                quota={"a100": 16, "t4": 4},
                usage={"a100": (20, 4), "h100": (2, 2)},
                limit="20000",
                spent="5000.50",
                forecast="25000",
            ),
        ),
        workloads={"TrainingJob": (), "ModelDeployment": ()},
        workload_namespaces={"TrainingJob": None, "ModelDeployment": None},
    )
    (team,) = build_view(observed, now=NOW).teams
    assert [(r.flavour, r.quota_gpus, r.used_gpus, r.borrowed_gpus) for r in team.flavours] == [
        ("a100", 16, 20, 4),
        ("t4", 4, 0, 0),
        ("h100", None, 2, 2),  # in use, not in the quota: borrowed only
    ]
    assert team.spend is not None
    assert team.spend.spent == Decimal("5000.50") and team.spend.limit == Decimal(20000)
    assert team.spend.currency == "USD"
    assert team.spend.spent_fraction == Decimal("0.250025")
    assert team.spend.bar is not None
    assert (team.spend.bar.filled, team.spend.bar.marker, team.spend.bar.forecast_over) == (
        BAR_WIDTH // 4,  # 25% spent, rounded down
        BAR_WIDTH - 1,
        True,
    )
    assert team.workloads_complete and team.queued == 0


def test_oldest_waiting_job_is_by_time_waited_across_kinds() -> None:
    md = tj("vision", "scorer", created=500)  # created long ago, still never admitted
    md_obj = {**md, "status": {"phase": "Queued", "queue": {"reason": "quota"}}}
    observed = Observed(
        budgets=(budget("vision", ["vision"], queued=9),),
        workloads={
            "TrainingJob": (
                tj("vision", "preempted", created=900, waiting_since=30),
                tj("vision", "young", created=10),
                tj("vision", "running", phase="Running"),
            ),
            "ModelDeployment": (md_obj,),
        },
        workload_namespaces={"TrainingJob": None, "ModelDeployment": None},
    )
    (team,) = build_view(observed, now=NOW).teams
    # Counted from the workloads (all read), not the operator's older figure.
    assert team.queued == 3
    oldest = team.oldest_waiting
    assert oldest is not None
    assert (oldest.kind, oldest.name, oldest.waited_seconds) == ("ModelDeployment", "scorer", 30000)
    assert oldest.reason == "quota"


def test_a_preempted_job_waits_from_its_preemption() -> None:
    job = waiting_job("TrainingJob", tj("v", "j", created=900, waiting_since=30), NOW)
    assert job is not None and job.waited_seconds == 1800


def test_a_job_without_status_waits_for_the_operator() -> None:
    job = waiting_job("TrainingJob", tj("v", "new", phase=None, created=1), NOW)
    assert job is not None and job.reason == "not yet seen by the operator"
    assert waiting_job("TrainingJob", tj("v", "ok", phase="Succeeded"), NOW) is None


def test_team_of_a_workload_without_status_comes_from_the_budget_namespaces() -> None:
    observed = Observed(
        budgets=(budget("vision", ["vision-a", "vision-b"]),),
        workloads={"TrainingJob": (tj("vision-b", "new", phase=None),)},
        workload_namespaces={"TrainingJob": None, "ModelDeployment": None},
    )
    (team,) = build_view(observed, now=NOW).teams
    assert team.oldest_waiting is not None and team.oldest_waiting.name == "new"


def test_partial_read_uses_the_operator_figure_and_says_what_is_missing() -> None:
    refused = Unreadable("trainingjobs", None, 403, "forbidden")
    observed = Observed(
        budgets=(
            budget("vision", ["vision"], queued=2),
            budget("nlp", ["nlp-a", "nlp-b"], queued=5),
        ),
        workloads={"TrainingJob": (tj("vision", "mine", team="vision"),), "ModelDeployment": ()},
        workload_namespaces={
            "TrainingJob": frozenset({"vision"}),
            "ModelDeployment": frozenset({"vision"}),
        },
        unreadable=(refused,),
    )
    view = build_view(observed, now=NOW)
    teams = {t.name: t for t in view.teams}
    assert teams["vision"].workloads_complete and teams["vision"].queued == 1
    assert not teams["nlp"].workloads_complete
    assert teams["nlp"].queued == 5 and teams["nlp"].unread_namespaces == ("nlp-a", "nlp-b")
    assert view.notes[0] == "could not read trainingjobs cluster-wide: forbidden"
    assert any(n.startswith("team nlp: workloads in nlp-a, nlp-b not readable") for n in view.notes)
    assert exit_code(view) == EXIT_PARTIAL


def test_without_budgets_teams_come_from_the_workloads_read() -> None:
    observed = Observed(
        budgets=(),
        budgets_complete=False,
        workloads={"TrainingJob": (tj("vision", "mine", team="vision"),)},
        workload_namespaces={"TrainingJob": frozenset({"vision"})},
        unreadable=(Unreadable("resourcebudgets", None, 403, "forbidden"),),
    )
    view = build_view(observed, now=NOW)
    (team,) = view.teams
    assert (team.name, team.budget_readable, team.spend, team.admitted) == (
        "vision",
        False,
        None,
        None,
    )
    assert not team.workloads_complete and team.queued is None
    assert "teams without a readable ResourceBudget show workloads only" in view.notes


def test_team_filter_and_exit_codes() -> None:
    observed = Observed(
        budgets=(budget("vision", ["vision"]), budget("nlp", ["nlp"])),
        workload_namespaces={"TrainingJob": None, "ModelDeployment": None},
    )
    view = build_view(observed, now=NOW, team="nlp")
    assert [t.name for t in view.teams] == ["nlp"]
    assert exit_code(view, team="nlp") == EXIT_COMPLETE
    missing = build_view(observed, now=NOW, team="ghost")
    assert missing.teams == () and exit_code(missing, team="ghost") == EXIT_NOTHING
    nothing = build_view(
        Observed(unreadable=(Unreadable("resourcebudgets", None, 403, ""),)), now=NOW
    )
    assert exit_code(nothing) == EXIT_NOTHING


def test_malformed_status_reads_as_unknown_not_an_error() -> None:
    garbage: dict[str, Any] = {
        "metadata": {"name": "odd"},
        "spec": {"quota": "not a list", "spend": {"limit": "-3"}},
        "status": {"usage": {"t4": "x"}, "spend": {"spent": "NaN", "forecast": 7}, "queued": "2"},
    }
    (team,) = build_view(Observed(budgets=(garbage,)), now=NOW).teams
    assert [(r.flavour, r.used_gpus) for r in team.flavours] == [("t4", 0)]
    assert team.spend is not None and team.spend.limit is None and team.spend.bar is None
    assert team.spend.spent == 0 and team.spend.forecast == Decimal(7)


money = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False)


@given(money, st.decimals(min_value="0.01", max_value=10**7, places=2), st.none() | money)
def test_bar_cells_stay_in_the_bar_and_follow_the_fraction(
    spent: Decimal, limit: Decimal, forecast: Decimal | None
) -> None:
    bar = spend_bar(spent, limit, forecast)
    assert 0 <= bar.filled <= bar.width == BAR_WIDTH
    # Full only at or past the limit; empty only below one cell's worth.
    assert (bar.filled == bar.width) == (spent >= limit)
    assert bar.filled == min(BAR_WIDTH, int(spent * BAR_WIDTH // limit))
    if forecast is None:
        assert bar.marker is None and not bar.forecast_over
    else:
        assert bar.marker is not None and 0 <= bar.marker < bar.width
        assert bar.forecast_over == (forecast > limit)
        if forecast >= spent:
            assert bar.marker >= min(bar.filled, bar.width - 1)
