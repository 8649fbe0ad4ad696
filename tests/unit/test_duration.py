from __future__ import annotations

from decimal import Decimal

import pytest

from cadre.core.units.duration import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("48h", 172800), ("30m", 1800), ("90s", 90), ("1h30m", 5400), ("1.5h", 5400), ("0s", 0)],
)
def test_parses_go_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == Decimal(seconds)


@pytest.mark.parametrize("text", ["2d", "", "h", "10", "-1h", "1h 30m", "1w"])
def test_rejects_other_spellings(text: str) -> None:
    with pytest.raises(DurationError, match="not a duration"):
        parse_duration(text)


def test_formats_the_shortest_spelling() -> None:
    assert format_duration(3600) == "1h"
    assert format_duration(5430) == "1h30m30s"
    assert format_duration(0) == "0s"
    assert parse_duration(format_duration(98765)) == 98765
