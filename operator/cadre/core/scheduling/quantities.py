"""GPUs, CPU and memory as named amounts, and the cohort rule for one resource.

Units are the snapshot's integers: GPUs as a count, CPU in millicores, memory in bytes.
An `Amount` is an immutable (gpus, cpu, memory) tuple (a pod's or a gang's request, a
shape that failed to fit); a `Vector` is the mutable triple the pass updates in place (a
team's usage, what a flavour has in use, a cohort pool's balance). Both iterate in that
order, so `zip(RESOURCES, amount, vector)` walks the resources by name where speed does not
matter; the hot checks spell out gpus, cpu and memory instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import StrEnum

from cadre.core.scheduling.types import Resources

__all__ = [
    "RESOURCES",
    "UNLIMITED",
    "Amount",
    "Resource",
    "Vector",
    "amount_from",
    "contribution",
    "contribution_change",
    "covers",
    "scaled",
    "to_resources",
]

UNLIMITED = 1 << 62
"""Stands for "unlimited" in integer arithmetic; far above any real quantity."""


class Resource(StrEnum):
    """One of a flavour's resources; the value is the field's name in Amount and Vector."""

    GPUS = "gpus"
    CPU = "cpu"
    MEMORY = "memory"


RESOURCES = (Resource.GPUS, Resource.CPU, Resource.MEMORY)
"""In field order, so that zip(RESOURCES, amount) pairs each value with its resource."""


Amount = tuple[int, int, int]
"""An immutable (gpus, cpu, memory): a pod's or a gang's request, a shape that failed.

A plain tuple, read by unpacking (`gpus, cpu, memory = amount`), on purpose: the pass holds
two per workload, and a NamedTuple costs twice as much to build and, unlike a tuple of
ints, stays tracked by the garbage collector (that made the setup nearly 2x slower at 50,000
workloads)."""


def scaled(amount: Amount, count: int) -> Amount:
    gpus, cpu, memory = amount
    return (gpus * count, cpu * count, memory * count)


def covers(amount: Amount, other: Amount) -> bool:
    """`amount` is at least `other` in every resource."""
    gpus, cpu, memory = amount
    other_gpus, other_cpu, other_memory = other
    return gpus >= other_gpus and cpu >= other_cpu and memory >= other_memory


def amount_from(values: Iterable[int]) -> Amount:
    """The Amount of three values in resource order (e.g. a generator over the resources)."""
    gpus, cpu, memory = values
    return (gpus, cpu, memory)


def to_resources(amount: Amount | Vector) -> Resources:
    gpus, cpu, memory = amount
    return Resources(gpus, cpu, memory)


class Vector:
    """A mutable amount of one flavour (slots: the fastest attribute reads CPython has)."""

    __slots__ = ("cpu", "gpus", "memory")

    def __init__(self, gpus: int = 0, cpu: int = 0, memory: int = 0) -> None:
        self.gpus = gpus
        self.cpu = cpu
        self.memory = memory

    def __iter__(self) -> Iterator[int]:
        return iter((self.gpus, self.cpu, self.memory))

    def __repr__(self) -> str:
        return f"Vector(gpus={self.gpus}, cpu={self.cpu}, memory={self.memory})"

    def copy(self) -> Vector:
        return Vector(self.gpus, self.cpu, self.memory)

    def amount(self) -> Amount:
        return (self.gpus, self.cpu, self.memory)

    def add(self, amount: Amount) -> None:
        gpus, cpu, memory = amount
        self.gpus += gpus
        self.cpu += cpu
        self.memory += memory

    def subtract(self, amount: Amount) -> None:
        gpus, cpu, memory = amount
        self.gpus -= gpus
        self.cpu -= cpu
        self.memory -= memory

    def add_vector(self, other: Vector) -> None:
        self.gpus += other.gpus
        self.cpu += other.cpu
        self.memory += other.memory

    def raise_to(self, other: Vector) -> None:
        """Each resource becomes the larger of its own and `other`'s (a running maximum)."""
        self.gpus = max(self.gpus, other.gpus)
        self.cpu = max(self.cpu, other.cpu)
        self.memory = max(self.memory, other.memory)

    def covers(self, other: Amount) -> bool:
        """At least `other` in every resource."""
        gpus, cpu, memory = other
        return self.gpus >= gpus and self.cpu >= cpu and self.memory >= memory

    def any_below(self, other: Vector) -> bool:
        """Less than `other` in some resource."""
        return self.gpus < other.gpus or self.cpu < other.cpu or self.memory < other.memory

    def is_zero(self) -> bool:
        return not (self.gpus or self.cpu or self.memory)


def contribution(lendable: int, nominal: int, usage: int) -> int:
    """What a team adds to its cohort's pool for one resource (Kueue's rule): its idle
    nominal quota, at most `lendable`, while under nominal; minus what it borrows once over
    (then negative)."""
    idle = nominal - usage
    return lendable if idle > lendable else idle


def contribution_change(lendable: int, nominal: int, usage: int, change: int) -> int:
    """How the cohort pool's balance moves when the team's usage of one resource moves from
    `usage` by `change`; negative when the pool loses (the team lends less or borrows more)."""
    idle_before = nominal - usage
    idle_after = idle_before - change
    return (lendable if idle_after > lendable else idle_after) - (
        lendable if idle_before > lendable else idle_before
    )
