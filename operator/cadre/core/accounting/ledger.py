"""A budget's ledger: the charges of pods that are gone, kept in the budget's status.

While a pod exists, its charge is computed from its containers' timestamps (live). Before
a pod may disappear (Cadre's accounting finalizer holds it), its charge is moved into the
ledger of its team's ResourceBudget: the current period's part into `settled`, the
previous period's part into `previous_settled`. `settled_pods` remembers the pods whose
charge is in the ledger until they are seen gone, so a pod is never charged twice even
if the operator stops between recording the charge and releasing the pod.

Pure and exact (Decimal): the ledger round-trips through the status as strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from cadre.core.accounting.usage import PodUsage, Rates, cost, usage_within
from cadre.core.objects.times import parse_api_time

__all__ = ["EPOCH_CHARGE_START", "Charge", "Ledger", "Window", "charge_within"]

EPOCH_CHARGE_START: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""A window start before any charge: [EPOCH_CHARGE_START, now) is "all of it"."""


@dataclass(frozen=True, slots=True)
class Window:
    """A budget period [start, end)."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Charge:
    """Money and GPU-seconds, exactly."""

    cost: Decimal = Decimal(0)
    gpu_seconds: Decimal = Decimal(0)

    def __add__(self, other: Charge) -> Charge:
        return Charge(self.cost + other.cost, self.gpu_seconds + other.gpu_seconds)

    @property
    def gpu_hours(self) -> Decimal:
        return self.gpu_seconds / 3600

    def to_status(self) -> dict[str, str]:
        # Positional notation always ("1E-7" would not round-trip through the schema).
        return {"cost": format(self.cost, "f"), "gpuSeconds": format(self.gpu_seconds, "f")}

    @staticmethod
    def from_status(value: object) -> Charge:
        if not isinstance(value, Mapping):
            return Charge()
        return Charge(_decimal(value.get("cost")), _decimal(value.get("gpuSeconds")))


def charge_within(
    usages: Iterable[PodUsage],
    rates: Rates,
    window_start: datetime,
    window_end: datetime,
    now: datetime,
) -> Charge:
    """The charge of running intervals inside [window_start, window_end), up to now."""
    used = usage_within(tuple(usages), window_start, window_end, now)
    return Charge(cost(used, rates), used.gpu)


def _decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Ledger:
    period_start: datetime | None = None
    settled: Charge = Charge()
    previous_start: datetime | None = None
    previous_settled: Charge = Charge()
    settled_pods: tuple[str, ...] = ()

    # -- wire form (status.ledger) -----------------------------------------------------
    @staticmethod
    def from_status(value: object) -> Ledger:
        if not isinstance(value, Mapping):
            return Ledger()
        pods = value.get("settledPods") or ()
        return Ledger(
            period_start=parse_api_time(value.get("periodStart")),
            settled=Charge.from_status(value.get("settled")),
            previous_start=parse_api_time(value.get("previousPeriodStart")),
            previous_settled=Charge.from_status(value.get("previousSettled")),
            settled_pods=tuple(str(p) for p in pods) if isinstance(pods, list) else (),
        )

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "settled": self.settled.to_status(),
            "previousSettled": self.previous_settled.to_status(),
            "settledPods": list(self.settled_pods),
        }
        if self.period_start is not None:
            out["periodStart"] = _stamp(self.period_start)
        if self.previous_start is not None:
            out["previousPeriodStart"] = _stamp(self.previous_start)
        return out

    # -- changes -------------------------------------------------------------------------
    def rolled(self, current: Window, previous: Window) -> Ledger:
        """The ledger for the period `current` (the one before it is `previous`): a new
        period starts a new sum; the period before keeps its total."""
        if self.period_start == current.start:
            return self
        if self.period_start == previous.start:
            prior = self.settled
        elif self.previous_start == previous.start:
            prior = self.previous_settled  # a ledger rolled back? keep what it knew
        else:
            prior = Charge()  # older than the previous period: history
        return replace(
            self,
            period_start=current.start,
            settled=Charge(),
            previous_start=previous.start,
            previous_settled=prior,
        )

    def settle(
        self,
        pod_uid: str,
        usages: Iterable[PodUsage],
        rates: Rates,
        *,
        current: Window,
        previous: Window,
        now: datetime,
    ) -> Ledger:
        """Record a pod's charge (once: a pod already settled changes nothing)."""
        if pod_uid in self.settled_pods:
            return self
        ledger = self.rolled(current, previous)
        pieces = tuple(usages)
        return replace(
            ledger,
            settled=ledger.settled + charge_within(pieces, rates, current.start, current.end, now),
            previous_settled=ledger.previous_settled
            + charge_within(pieces, rates, previous.start, previous.end, now),
            settled_pods=(*ledger.settled_pods, pod_uid),
        )

    def forget_pods(self, gone: Iterable[str]) -> Ledger:
        """Drop pods seen gone from `settled_pods` (their charge stays in the sums)."""
        drop = set(gone) & set(self.settled_pods)
        if not drop:
            return self
        return replace(self, settled_pods=tuple(p for p in self.settled_pods if p not in drop))
