"""Spend state of a budget period: Ok, Warning or Exceeded, and the forecast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

SpendState = Literal["Ok", "Warning", "Exceeded"]


@dataclass(frozen=True, slots=True)
class SpendVerdict:
    """Where a period's spend stands against its limits."""

    state: SpendState
    fraction: Decimal
    """The larger of spent/limit and gpuHours/gpuHoursLimit: the first to run out counts."""
    threshold: float | None
    """The highest warnAt threshold reached (None below all of them)."""
    limiting: Literal["money", "gpuHours"] | None


def spend_verdict(
    *,
    spent: Decimal,
    limit: Decimal | None,
    gpu_hours: Decimal,
    gpu_hours_limit: int | None,
    warn_at: list[float] | tuple[float, ...],
) -> SpendVerdict:
    candidates: list[tuple[Decimal, Literal["money", "gpuHours"]]] = []
    if limit is not None:
        candidates.append((spent / limit if limit > 0 else Decimal("Infinity"), "money"))
    if gpu_hours_limit is not None:
        candidates.append((gpu_hours / Decimal(gpu_hours_limit), "gpuHours"))
    if not candidates:
        return SpendVerdict("Ok", Decimal(0), None, None)
    fraction, limiting = max(candidates, key=lambda c: c[0])
    if fraction >= 1:
        return SpendVerdict("Exceeded", fraction, None, limiting)
    reached = [t for t in warn_at if fraction >= Decimal(str(t))]
    if reached:
        return SpendVerdict("Warning", fraction, max(reached), limiting)
    return SpendVerdict("Ok", fraction, None, limiting)


@dataclass(frozen=True, slots=True)
class Forecast:
    """Expected spend at the end of the period."""

    at_period_end: Decimal
    burn_rate_last_hour: Decimal
    burn_rate_period: Decimal


def forecast(
    *,
    spent: Decimal,
    spent_an_hour_ago: Decimal,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
) -> Forecast:
    """Spend so far plus the last hour's burn rate over the rest of the period.

    The last hour's rate follows what runs now (a big job that just started); the
    period's average rate is reported beside it for context.
    """
    hour = Decimal(3600)
    elapsed = Decimal(str(max((now - period_start).total_seconds(), 0.0)))
    remaining = Decimal(str(max((period_end - now).total_seconds(), 0.0)))
    last_hour = max(spent - spent_an_hour_ago, Decimal(0))
    per_period = spent / elapsed * hour if elapsed > 0 else Decimal(0)
    return Forecast(
        at_period_end=spent + last_hour * remaining / hour,
        burn_rate_last_hour=last_hour,
        burn_rate_period=per_period,
    )
