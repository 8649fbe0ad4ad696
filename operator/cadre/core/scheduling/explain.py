"""One-line, human reasons: amounts and the sentences a data scientist reads."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from cadre.core.scheduling.quantities import Resource
from cadre.core.scheduling.types import Spend

__all__ = [
    "budget_message",
    "capacity_phrase",
    "format_amount",
    "format_money",
    "idle_phrase",
    "need_phrase",
    "period_word",
    "usage_phrase",
]

_PERIOD_WORDS = {
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
    "day": "day",
    "week": "week",
    "month": "month",
}

_PHRASES_CACHED = 4096
"""Phrases kept per helper: a pass asks for the same few amounts thousands of times."""

_BINARY_UNITS = (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


def _trim(value: Decimal, places: str = "0.01") -> str:
    text = format(value.quantize(Decimal(places)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@lru_cache(maxsize=_PHRASES_CACHED)
def format_amount(resource: Resource, value: int) -> str:
    """8 (GPUs), 1.5 (CPU cores from millicores), 200Gi (memory from bytes)."""
    if resource == Resource.GPUS:
        return str(value)
    if resource == Resource.CPU:
        if value % 1000 == 0:
            return str(value // 1000)
        return _trim(Decimal(value) / 1000, "0.001")
    for suffix, size in _BINARY_UNITS:
        if abs(value) >= size:
            if value % size == 0:
                return f"{value // size}{suffix}"
            return _trim(Decimal(value) / size) + suffix
    return str(value)


@lru_cache(maxsize=_PHRASES_CACHED)
def need_phrase(resource: Resource, value: int, flavour: str) -> str:
    """ "8 a100 GPUs", "1 a100 GPU", "64 CPU of cpu-only", "256Gi memory of cpu-only"."""
    if resource == Resource.GPUS:
        return f"{value} {flavour} GPU{'' if value == 1 else 's'}"
    if resource == Resource.CPU:
        return f"{format_amount(resource, value)} CPU of {flavour}"
    return f"{format_amount(resource, value)} memory of {flavour}"


@lru_cache(maxsize=_PHRASES_CACHED)
def usage_phrase(resource: Resource, used: int, nominal: int) -> str:
    """ "8/8" for GPUs, "60/64 CPU", "200Gi/256Gi memory"."""
    pair = f"{format_amount(resource, used)}/{format_amount(resource, nominal)}"
    if resource == Resource.GPUS:
        return pair
    return f"{pair} {'CPU' if resource == Resource.CPU else 'memory'}"


@lru_cache(maxsize=_PHRASES_CACHED)
def idle_phrase(resource: Resource, idle: int) -> str:
    """ "0" (GPUs), "2 CPU", "16Gi": what a cohort has idle."""
    unit = " CPU" if resource == Resource.CPU else ""
    return f"{format_amount(resource, idle)}{unit}"


@lru_cache(maxsize=_PHRASES_CACHED)
def capacity_phrase(resource: Resource, free: int, capacity: int) -> str:
    """ "4 of 8 GPUs", "2 of 64 CPU", "16Gi of 256Gi memory": what a flavour has free."""
    unit = {Resource.GPUS: "GPUs", Resource.CPU: "CPU", Resource.MEMORY: "memory"}[resource]
    return f"{format_amount(resource, free)} of {format_amount(resource, capacity)} {unit}"


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
