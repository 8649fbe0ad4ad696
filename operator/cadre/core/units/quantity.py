"""Kubernetes resource quantities ("500m", "200Gi", "1e3") as exact numbers.

Parsing follows k8s.io/apimachinery's resource.Quantity grammar, restricted to
non-negative values: a request of "-1" CPU is a mistake, never a valid ask.
Numbers are kept as `Decimal` so money and resource sums never drift.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Final

# The grammar of resource.Quantity without the sign. Used as the CRD's `pattern`
# too, so the API server and `cadre validate` reject the same strings.
QUANTITY_PATTERN: Final = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$"
)
_QUANTITY_RE: Final = re.compile(QUANTITY_PATTERN)

_BINARY_SUFFIXES: Final = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_DECIMAL_SUFFIXES: Final = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}

GIB: Final = Decimal(2) ** 30

MAX_QUANTITY_LENGTH: Final = 64
"""Longer strings are refused (the CRD's maxLength too): no real request needs more."""
MAX_QUANTITY: Final = Decimal(2) ** 63 - 1
"""The largest amount in base units (an int64, as Kubernetes keeps a quantity's value):
about 9.2e18 cores or 8 EiB. Larger ones are refused, so that no sum or price of them
can overflow the Decimal arithmetic of scheduling and accounting."""
_MAX_EXPONENT: Final = 30


class QuantityError(ValueError):
    """A string that is not a non-negative Kubernetes quantity."""


def _explain(text: str) -> str:
    if text.startswith(("-", "+")):
        return (
            f"{text!r} has a sign; a quantity must be a plain non-negative amount such as 500m or 2"
        )
    lowered = text.lower()
    for wrong, right in (
        ("gb", "G or Gi"),
        ("mb", "M or Mi"),
        ("kb", "k or Ki"),
        ("tb", "T or Ti"),
    ):
        if lowered.endswith(wrong):
            return (
                f"{text!r} is not Kubernetes syntax: write {right} (for example 200Gi), "
                f"not {text[-2:]}"
            )
    return (
        f"{text!r} is not a Kubernetes quantity: use a number with an optional suffix, "
        "such as 500m, 4, 200Gi or 1.5G"
    )


# Memoised: a pass over a burst of new jobs parses the same few strings ("4", "32Gi")
# hundreds of thousands of times (S2, docs/benchmarks.md); a Decimal is immutable, and
# typed keeps True apart from 1 (a bool is refused, an int is not).
@lru_cache(maxsize=4096, typed=True)
def parse_quantity(value: str | int) -> Decimal:
    """Return the exact amount a quantity denotes, in base units (cores, bytes)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        if value < 0:
            raise QuantityError(_explain(str(value)))
        return _bounded(Decimal(value), str(value))
    text = value.strip()
    if len(text) > MAX_QUANTITY_LENGTH:
        raise QuantityError(
            f"a quantity of {len(text)} characters is too long (at most {MAX_QUANTITY_LENGTH})"
        )
    if not _QUANTITY_RE.match(text):
        raise QuantityError(_explain(text))
    number, suffix = _split_suffix(text)
    try:
        amount = Decimal(number)
    except InvalidOperation as err:  # pragma: no cover - the regex already guards this
        raise QuantityError(_explain(text)) from err
    if suffix in _BINARY_SUFFIXES:
        return _bounded(amount * _BINARY_SUFFIXES[suffix], text)
    if suffix in _DECIMAL_SUFFIXES:  # checked before the exponent: "1E" is one exa
        return _bounded(amount * _DECIMAL_SUFFIXES[suffix], text)
    exponent = int(suffix[1:])
    if exponent > _MAX_EXPONENT:  # checked before computing: 1e999999 overflows Decimal
        raise QuantityError(_too_large(text))
    # Far below a nano-unit either way (Kubernetes rounds it up to 1n): clamped, so that
    # 1e-999999999 neither underflows Decimal nor loses "more than zero".
    floor = -(_MAX_EXPONENT + MAX_QUANTITY_LENGTH)
    return _bounded(amount.scaleb(max(exponent, floor)), text)


def _too_large(text: str) -> str:
    return f"{text!r} is too large for a quantity (at most {MAX_QUANTITY:.3e} base units)"


def _bounded(amount: Decimal, text: str) -> Decimal:
    if amount > MAX_QUANTITY:
        raise QuantityError(_too_large(text))
    return amount


def _split_suffix(text: str) -> tuple[str, str]:
    for index, char in enumerate(text):
        if char in "eE" and index > 0:
            return text[:index], text[index:]
        if char.isalpha():
            return text[:index], text[index:]
    return text, ""


def to_millicores(value: str | int) -> int:
    """CPU quantity as whole millicores, rounding up like the scheduler does."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def to_bytes(value: str | int) -> int:
    """Memory quantity as whole bytes, rounding up."""
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))
