"""Accounting is exact, restart-safe and splits cleanly at period boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cadre.core.accounting import (
    Interval,
    PodUsage,
    Rates,
    cost,
    forecast,
    period_bounds,
    previous_period,
    spend_verdict,
    to_cents,
    usage_within,
)

GIB = 2**30
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_monthly_daily_weekly_bounds_in_utc() -> None:
    assert period_bounds("Monthly", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("Monthly", datetime(2028, 2, 29, 12, tzinfo=UTC))[1] == datetime(
        2028, 3, 1, tzinfo=UTC
    )
    assert period_bounds("Daily", T0) == (
        datetime(2026, 11, 27, tzinfo=UTC),
        datetime(2026, 11, 28, tzinfo=UTC),
    )
    # 2026-11-27 is a Friday; weeks start on Monday.
    assert period_bounds("Weekly", T0) == (
        datetime(2026, 11, 23, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
    )
    assert previous_period("Monthly", T0) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 11, 1, tzinfo=UTC),
    )


def test_periods_follow_the_configured_timezone_across_dst() -> None:
    # Europe/Berlin leaves summer time on 2026-10-25: October has 745 hours there.
    start, end = period_bounds("Monthly", datetime(2026, 10, 15, tzinfo=UTC), "Europe/Berlin")
    assert start == datetime(2026, 9, 30, 22, tzinfo=UTC)
    assert end == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert end - start == timedelta(hours=745)


def test_a_finished_pod_is_charged_exactly_and_never_again() -> None:
    pod = PodUsage(Interval(at(0), at(2)), gpus=8, cpu_milli=32000, memory_bytes=200 * GIB)
    used = usage_within([pod], at(-100), at(100), now=at(50))
    assert used.gpu == Decimal(8 * 7200)
    assert used.gpu_hours == Decimal(16)
    assert used.cpu_core == Decimal(32 * 7200)
    assert used.gib == Decimal(200 * 7200)
    rates = Rates(Decimal("2.93"), Decimal("0.031"), Decimal("0.004"))
    assert cost(used, rates) == Decimal("16") * Decimal("2.93") + Decimal("64") * Decimal(
        "0.031"
    ) + Decimal("400") * Decimal("0.004")
    # Asked again later, as after an operator restart: the same figure.
    assert usage_within([pod], at(-100), at(100), now=at(99)) == used


def test_running_pod_is_charged_up_to_now() -> None:
    pod = PodUsage(Interval(at(0)), gpus=1)
    assert usage_within([pod], at(-1), at(10), now=at(1)).gpu == 3600
    assert usage_within([pod], at(-1), at(10), now=at(1.5)).gpu == 5400


def test_interval_crossing_a_period_boundary_is_split() -> None:
    start, end = period_bounds("Daily", T0)
    pod = PodUsage(Interval(end - timedelta(hours=1), end + timedelta(hours=3)), gpus=2)
    now = end + timedelta(hours=5)
    today = usage_within([pod], start, end, now)
    tomorrow = usage_within([pod], end, end + timedelta(days=1), now)
    assert today.gpu == 2 * 3600
    assert tomorrow.gpu == 2 * 3 * 3600


def test_overlapping_pods_both_count() -> None:
    pods = [PodUsage(Interval(at(0), at(1)), gpus=8), PodUsage(Interval(at(0.5), at(1)), gpus=8)]
    assert usage_within(pods, at(0), at(2), now=at(3)).gpu == 8 * 3600 + 8 * 1800


def test_microseconds_are_exact() -> None:
    pod = PodUsage(Interval(T0, T0 + timedelta(microseconds=1)), gpus=1)
    assert usage_within([pod], at(-1), at(1), now=at(1)).gpu == Decimal("0.000001")


def test_a_million_small_charges_do_not_drift() -> None:
    rates = Rates(gpu_hour=Decimal("0.0036"))
    one_second = usage_within(
        [PodUsage(Interval(at(0), at(0) + timedelta(seconds=1)), gpus=1)], at(-1), at(1), now=at(1)
    )
    each = cost(one_second, rates)
    assert each == Decimal("0.000001")
    total = Decimal(0)
    float_total = 0.0
    for _ in range(1_000_000):
        total += each
        float_total += float(each)
    assert total == Decimal("1.000000")
    assert float_total != 1.0  # the drift exact decimals avoid


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=10**6),
    length=st.integers(min_value=0, max_value=10**6),
    cut=st.integers(min_value=-(10**6), max_value=3 * 10**6),
    gpus=st.integers(min_value=0, max_value=64),
)
def test_splitting_a_window_anywhere_keeps_the_total(
    start: int, length: int, cut: int, gpus: int
) -> None:
    pod = PodUsage(
        Interval(T0 + timedelta(seconds=start), T0 + timedelta(seconds=start + length)), gpus=gpus
    )
    low, high, split = T0 - timedelta(days=30), T0 + timedelta(days=60), T0 + timedelta(seconds=cut)
    now = high
    whole = usage_within([pod], low, high, now)
    parts = usage_within([pod], low, split, now) + usage_within([pod], split, high, now)
    assert parts == whole
    assert whole.gpu == gpus * length


def test_money_is_shown_to_the_cent_half_even() -> None:
    assert to_cents(Decimal("12873.405")) == Decimal("12873.40")
    assert to_cents(Decimal("12873.415")) == Decimal("12873.42")


def test_spend_verdict_first_limit_to_run_out_counts() -> None:
    verdict = spend_verdict(
        spent=Decimal(9000),
        limit=Decimal(20000),
        gpu_hours=Decimal(900),
        gpu_hours_limit=1000,
        warn_at=[0.5, 0.8],
    )
    assert (verdict.state, verdict.threshold, verdict.limiting) == ("Warning", 0.8, "gpuHours")
    exceeded = spend_verdict(
        spent=Decimal(20140),
        limit=Decimal(20000),
        gpu_hours=Decimal(0),
        gpu_hours_limit=None,
        warn_at=[0.5, 0.8],
    )
    assert exceeded.state == "Exceeded" and exceeded.limiting == "money"
    ok = spend_verdict(
        spent=Decimal(10),
        limit=Decimal(20000),
        gpu_hours=Decimal(0),
        gpu_hours_limit=None,
        warn_at=[0.5, 0.8],
    )
    assert ok.state == "Ok" and ok.threshold is None
    assert (
        spend_verdict(
            spent=Decimal(1), limit=None, gpu_hours=Decimal(1), gpu_hours_limit=None, warn_at=[]
        ).state
        == "Ok"
    )


def test_forecast_uses_the_last_hours_burn_rate() -> None:
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    now = datetime(2026, 11, 16, tzinfo=UTC)  # 15 days in, 15 days (360 h) left
    result = forecast(
        spent=Decimal(3600),
        spent_an_hour_ago=Decimal(3590),
        period_start=start,
        period_end=end,
        now=now,
    )
    assert result.burn_rate_last_hour == Decimal(10)
    assert result.at_period_end == Decimal(3600 + 10 * 360)
    assert result.burn_rate_period == Decimal(10)  # 3600 over 360 h
