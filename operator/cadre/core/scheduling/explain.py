"""One-line, human reasons: amounts and the sentences a data scientist reads."""

from __future__ import annotations

from decimal import Decimal

from cadre.core.scheduling.types import Spend

__all__ = [
    "budget_message",
    "format_amount",
    "format_money",
    "need_phrase",
]

GPU, CPU, MEMORY = 0, 1, 2

_PERIOD_WORDS = {
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
    "day": "day",
    "week": "week",
    "month": "month",
}

_BINARY_UNITS = (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


def _trim(value: Decimal, places: str = "0.01") -> str:
    text = format(value.quantize(Decimal(places)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_amount(resource: int, value: int) -> str:
    """8 (GPUs), 1.5 (CPU cores from millicores), 200Gi (memory from bytes)."""
    if resource == GPU:
        return str(value)
    if resource == CPU:
        if value % 1000 == 0:
            return str(value // 1000)
        return _trim(Decimal(value) / 1000, "0.001")
    for suffix, size in _BINARY_UNITS:
        if abs(value) >= size:
            if value % size == 0:
                return f"{value // size}{suffix}"
            return _trim(Decimal(value) / size) + suffix
    return str(value)


def need_phrase(resource: int, value: int, flavour: str) -> str:
    """ "8 a100 GPUs", "1 a100 GPU", "64 CPU of cpu-only", "256Gi memory of cpu-only"."""
    if resource == GPU:
        return f"{value} {flavour} GPU{'' if value == 1 else 's'}"
    if resource == CPU:
        return f"{format_amount(CPU, value)} CPU of {flavour}"
    return f"{format_amount(MEMORY, value)} memory of {flavour}"


def usage_phrase(resource: int, used: int, nominal: int) -> str:
    """ "8/8" for GPUs, "60/64 CPU", "200Gi/256Gi memory"."""
    pair = f"{format_amount(resource, used)}/{format_amount(resource, nominal)}"
    if resource == GPU:
        return pair
    return f"{pair} {'CPU' if resource == CPU else 'memory'}"


def format_money(value: Decimal) -> str:
    """20,140 or 12,873.40: thousands separators, the figure's own decimals."""
    return format(value, ",f")


def period_word(period: str) -> str:
    return _PERIOD_WORDS.get(period.lower(), period)


def budget_message(spend: Spend) -> str:
    """ "budget exceeded for this month: 20,140 of 20,000 USD"."""
    return (
        f"budget exceeded for this {period_word(spend.period)}: "
        f"{format_money(spend.spent)} of {format_money(spend.limit)} {spend.currency}"
    )
