"""Accounting: resource-seconds and cost from durable intervals, budget periods, spend.

Pure and exact (Decimal): no I/O, no clock of its own (`now` is always passed in).
"""

from cadre.core.accounting.ledger import EPOCH_CHARGE_START, Charge, Ledger, Window, charge_within
from cadre.core.accounting.periods import PERIOD_WORDS, Period, period_bounds, previous_period
from cadre.core.accounting.pods import (
    PodCharge,
    container_usages,
    format_figures,
    pod_charge,
    usage_and_cost,
)
from cadre.core.accounting.spend import Forecast, SpendVerdict, forecast, spend_verdict
from cadre.core.accounting.usage import (
    Interval,
    PodUsage,
    Rates,
    ResourceSeconds,
    cost,
    finished_by,
    to_cents,
    usage_within,
)

__all__ = [
    "EPOCH_CHARGE_START",
    "PERIOD_WORDS",
    "Charge",
    "Forecast",
    "Interval",
    "Ledger",
    "Period",
    "PodCharge",
    "PodUsage",
    "Rates",
    "ResourceSeconds",
    "SpendVerdict",
    "Window",
    "charge_within",
    "container_usages",
    "cost",
    "finished_by",
    "forecast",
    "format_figures",
    "period_bounds",
    "pod_charge",
    "previous_period",
    "spend_verdict",
    "to_cents",
    "usage_and_cost",
    "usage_within",
]
