"""Budget periods (Daily, Weekly, Monthly) as half-open [start, end) windows.

Periods follow the wall clock of the operator config's timezone (UTC by default):
a Monthly budget in Europe/Berlin starts at local midnight on the 1st. Weekly
periods start on Monday, as ISO weeks do.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["Daily", "Weekly", "Monthly"]

PERIOD_WORDS: dict[str, str] = {"Daily": "day", "Weekly": "week", "Monthly": "month"}


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError("times must carry a timezone (UTC from the API server)")


def period_bounds(period: Period, moment: datetime, tz: str = "UTC") -> tuple[datetime, datetime]:
    """The [start, end) of the period containing moment, as UTC datetimes."""
    _require_aware(moment)
    zone = ZoneInfo(tz)
    local = moment.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "Daily":
        start = midnight
        end = _local_midnight(zone, (midnight + timedelta(days=1)).date())
    elif period == "Weekly":
        start = _local_midnight(zone, (midnight - timedelta(days=midnight.weekday())).date())
        end = _local_midnight(zone, (start + timedelta(days=7)).date())
    else:
        start = midnight.replace(day=1)
        next_month = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        end = _local_midnight(zone, next_month.date())
    start = _local_midnight(zone, start.date())
    return start.astimezone(UTC), end.astimezone(UTC)


def _local_midnight(zone: ZoneInfo, day: date) -> datetime:
    # Built from the date, so a DST change inside the period does not shift midnight.
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def previous_period(period: Period, moment: datetime, tz: str = "UTC") -> tuple[datetime, datetime]:
    """The period right before the one containing moment."""
    start, _ = period_bounds(period, moment, tz)
    return period_bounds(period, start - timedelta(microseconds=1), tz)
