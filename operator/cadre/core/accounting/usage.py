"""Resource-seconds and cost from durable running intervals, in exact decimals.

Accounting never counts ticks in memory: what a workload used comes from the
start and finish timestamps the API server keeps (a pod's container started at /
finished at), so an operator restart changes nothing. Running work is charged up
to `now`; finished work is a closed interval and its charge never changes again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

SECONDS_PER_HOUR: Final = Decimal(3600)
MILLI: Final = Decimal(1000)
GIB: Final = Decimal(2) ** 30
CENT: Final = Decimal("0.01")
_NEVER: Final = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Interval:
    """When one pod ran: [start, end), end None while it still runs."""

    start: datetime
    end: datetime | None = None

    def seconds_within(
        self, window_start: datetime, window_end: datetime, now: datetime
    ) -> Decimal:
        """Seconds of this interval inside [window_start, window_end), counting up to now."""
        end = now if self.end is None else min(self.end, now)
        low = max(self.start, window_start)
        high = min(end, window_end)
        if high <= low:
            return Decimal(0)
        delta = high - low
        # Exact: days, seconds and microseconds are integers.
        return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 10**6


@dataclass(frozen=True, slots=True)
class PodUsage:
    """One pod's running interval and what it held while running."""

    interval: Interval
    gpus: int = 0
    cpu_milli: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True, slots=True)
class ResourceSeconds:
    """GPU-seconds, CPU-core-seconds and GiB-seconds, exactly."""

    gpu: Decimal = Decimal(0)
    cpu_core: Decimal = Decimal(0)
    gib: Decimal = Decimal(0)

    def __add__(self, other: ResourceSeconds) -> ResourceSeconds:
        return ResourceSeconds(
            self.gpu + other.gpu, self.cpu_core + other.cpu_core, self.gib + other.gib
        )

    @property
    def gpu_hours(self) -> Decimal:
        return self.gpu / SECONDS_PER_HOUR


@dataclass(frozen=True, slots=True)
class Rates:
    """Prices per hour of one flavour: per GPU, per CPU core, per GiB of memory."""

    gpu_hour: Decimal = Decimal(0)
    cpu_core_hour: Decimal = Decimal(0)
    gib_hour: Decimal = Decimal(0)


def finished_by(usages: tuple[PodUsage, ...], now: datetime) -> datetime | None:
    """When the last of these intervals ended, if every one has ended by `now` (their
    charge in any window no longer changes); None while one still runs (or ends later).
    A pod that never ran has ended at the start of time."""
    last = _NEVER
    for usage in usages:
        end = usage.interval.end
        if end is None or end > now:
            return None
        last = max(last, end)
    return last


def usage_within(
    pods: list[PodUsage] | tuple[PodUsage, ...],
    window_start: datetime,
    window_end: datetime,
    now: datetime,
) -> ResourceSeconds:
    """Resource-seconds of the pods inside a window (a budget period, say)."""
    gpu = cpu = gib = Decimal(0)
    for pod in pods:
        seconds = pod.interval.seconds_within(window_start, window_end, now)
        if not seconds:
            continue
        gpu += seconds * pod.gpus
        cpu += seconds * pod.cpu_milli / MILLI
        gib += seconds * pod.memory_bytes / GIB
    return ResourceSeconds(gpu, cpu, gib)


def cost(usage: ResourceSeconds, rates: Rates) -> Decimal:
    """Exact cost of resource-seconds at hourly rates (round only for display)."""
    return (
        usage.gpu * rates.gpu_hour
        + usage.cpu_core * rates.cpu_core_hour
        + usage.gib * rates.gib_hour
    ) / SECONDS_PER_HOUR


def to_cents(amount: Decimal) -> Decimal:
    """Money as shown in status and metrics: rounded half-even to the cent."""
    return amount.quantize(CENT)
