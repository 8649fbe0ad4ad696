"""Go-style durations ("48h", "1h30m", "90s"), the way Kubernetes users write them."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

# Units a user of a training job needs; sub-second units would only invite mistakes.
DURATION_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(h|m|s))+$"
_DURATION_RE: Final = re.compile(DURATION_PATTERN)
_PART_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|m|s)")
_UNIT_SECONDS: Final = {"h": Decimal(3600), "m": Decimal(60), "s": Decimal(1)}


class DurationError(ValueError):
    """A string that is not a duration such as 48h, 30m or 1h30m."""


def parse_duration(text: str) -> Decimal:
    """Seconds denoted by a duration string, exactly."""
    if not _DURATION_RE.match(text):
        raise DurationError(
            f"{text!r} is not a duration: write a number with a unit h, m or s, "
            "for example 48h, 30m, 90s or 1h30m"
        )
    return sum(
        (Decimal(number) * _UNIT_SECONDS[unit] for number, unit in _PART_RE.findall(text)),
        Decimal(0),
    )


def format_duration(seconds: int) -> str:
    """The shortest h/m/s spelling of a whole number of seconds (3600 -> '1h')."""
    if seconds < 0:
        raise DurationError("a duration cannot be negative")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"
