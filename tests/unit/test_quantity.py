from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadre.core.units.quantity import QuantityError, parse_quantity, to_bytes, to_millicores


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        (4, Decimal(4)),
        ("200Gi", Decimal(200 * 2**30)),
        ("1.5G", Decimal("1.5e9")),
        ("1Ki", Decimal(1024)),
        ("1E", Decimal("1e18")),
        ("2e3", Decimal(2000)),
        ("2e-3", Decimal("0.002")),
        (".5", Decimal("0.5")),
        ("100n", Decimal("1e-7")),
    ],
)
def test_parses_kubernetes_quantities_exactly(text: str | int, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("8Gb", "write G or Gi"),
        ("256MB", "write M or Mi"),
        ("-1", "sign"),
        ("+1", "sign"),
        ("abc", "not a Kubernetes quantity"),
        ("1.2.3", "not a Kubernetes quantity"),
        ("", "not a Kubernetes quantity"),
        ("1 Gi", "not a Kubernetes quantity"),
    ],
)
def test_rejects_what_kubernetes_rejects_with_a_hint(text: str, hint: str) -> None:
    with pytest.raises(QuantityError, match=hint):
        parse_quantity(text)


def test_rejects_negative_integers_and_booleans() -> None:
    with pytest.raises(QuantityError):
        parse_quantity(-1)
    with pytest.raises(QuantityError):
        parse_quantity(True)  # type: ignore[arg-type]


def test_unit_conversions_round_up() -> None:
    assert to_millicores("1500u") == 2
    assert to_millicores("250m") == 250
    assert to_bytes("1.5Ki") == 1536
    assert to_bytes("0.1") == 1


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "k", "Ki", "m", "Gi", "M"]))
def test_a_written_amount_round_trips(number: int, suffix: str) -> None:
    multiplier = parse_quantity(f"1{suffix}")
    assert parse_quantity(f"{number}{suffix}") == number * multiplier
