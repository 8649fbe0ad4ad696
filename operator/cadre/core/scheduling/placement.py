"""Where a unit's pods would go: the nodes of one flavour and what is free on each.

The pass plans; it never binds (kube-scheduler does). The pods of one unit (a gang's
workers, or one replica) are identical, so the plan is exact about whether they fit: they
do when the per-node counts sum to enough. Which nodes it picks is best fit: the nodes
with the fewest free GPUs that still take a pod come first, and a node takes as many of
the unit's pods as fit on it, so whole nodes stay free for large gangs (first-fit
decreasing across units: the pass reserves the pods of admitted work largest first).

Nodes sit in buckets by their free GPUs, so a plan looks only at nodes with enough GPUs.
A request that failed is kept (pod shape and count) until something is given back on the
flavour: a request at least as large in both fails at once (fail-fast, as the pass does
for quota).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from cadre.core.scheduling.quantities import Amount
from cadre.core.scheduling.types import NodeCapacity

__all__ = ["MAX_FAILED_SHAPES", "NodePool", "Plan", "fit_count"]

MAX_FAILED_SHAPES = 8

Plan = list[tuple[int, int]]
"""(node index, pods) in the order the nodes were chosen."""

_UNLIMITED = 1 << 62


def fit_count(free_gpus: int, free_cpu: int, free_memory: int, per_pod: Amount) -> int:
    """How many pods of `per_pod` fit in what is free (a pod that asks for nothing: any)."""
    gpus, cpu, memory = per_pod
    count = _UNLIMITED
    if gpus:
        count = free_gpus // gpus
    if cpu:
        count = min(count, free_cpu // cpu)
    if memory:
        count = min(count, free_memory // memory)
    return max(0, count)


class NodePool:
    """The nodes of one flavour, sorted by name; `free` changes as the pass places and
    gives back pods."""

    __slots__ = (
        "allocatable",
        "buckets",
        "empty_fit",
        "failed",
        "failed_epoch",
        "free",
        "index",
        "names",
        "open",
        "release_epoch",
    )

    def __init__(self, nodes: Iterable[NodeCapacity]) -> None:
        ordered = sorted(nodes, key=lambda n: n.name)
        self.names = [node.name for node in ordered]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.allocatable: list[Amount] = [
            (n.allocatable.gpus, n.allocatable.cpu, n.allocatable.memory) for n in ordered
        ]
        self.free: list[list[int]] = [
            [
                n.allocatable.gpus - n.used.gpus,
                n.allocatable.cpu - n.used.cpu,
                n.allocatable.memory - n.used.memory,
            ]
            for n in ordered
        ]
        self.open = [n.schedulable for n in ordered]
        """False: no new pod goes there (cordoned, or a taint the flavour does not tolerate)."""
        self.buckets: dict[int, dict[int, None]] = {}
        """Free GPUs (0 for none or less) -> the open nodes with that many, as an ordered set."""
        for i, is_open in enumerate(self.open):
            if is_open:
                self.buckets.setdefault(max(0, self.free[i][0]), {})[i] = None
        self.release_epoch = 0
        """Bumped whenever pods are given back: failed requests may fit now."""
        self.failed: list[tuple[Amount, int]] = []
        self.failed_epoch = -1
        self.empty_fit: dict[Amount, int] = {}

    # ---- looking ---------------------------------------------------------------------------

    def _candidates(self, gpus: int) -> Iterator[int]:
        """Open nodes with at least `gpus` free, fewest free GPUs first (best fit)."""
        buckets = self.buckets
        for key in sorted(k for k in buckets if k >= gpus):
            yield from buckets[key]

    def _known_to_fail(self, per_pod: Amount, count: int) -> bool:
        if self.failed_epoch != self.release_epoch:
            return False
        gpus, cpu, memory = per_pod
        return any(
            count >= failed_count and gpus >= fg and cpu >= fc and memory >= fm
            for (fg, fc, fm), failed_count in self.failed
        )

    def _remember_failure(self, per_pod: Amount, count: int) -> None:
        if self.failed_epoch != self.release_epoch:
            self.failed = []
            self.failed_epoch = self.release_epoch
        if len(self.failed) < MAX_FAILED_SHAPES:
            self.failed.append((per_pod, count))

    def plan(self, per_pod: Amount, count: int, *, partial: bool = False) -> Plan | None:
        """Nodes for `count` pods of `per_pod`, best fit; None when they do not all fit
        (with `partial`: the plan for as many as fit, maybe empty)."""
        if not partial and self._known_to_fail(per_pod, count):
            return None
        free = self.free
        left = count
        chosen: Plan = []
        for i in self._candidates(per_pod[0]):
            node_free = free[i]
            fitting = fit_count(node_free[0], node_free[1], node_free[2], per_pod)
            if fitting:
                taken = min(fitting, left)
                chosen.append((i, taken))
                left -= taken
                if not left:
                    return chosen
        if partial:
            return chosen
        self._remember_failure(per_pod, count)
        return None

    def room(
        self, per_pod: Amount, limit: int, freed: Mapping[int, list[int]] | None = None
    ) -> int:
        """How many pods of `per_pod` fit on the open nodes, counted up to `limit`, if
        `freed` (node index -> [gpus, cpu, memory]) were given back first."""
        free, is_open = self.free, self.open
        found = 0
        freed = freed or {}
        for i, extra in freed.items():
            if is_open[i]:
                node_free = free[i]
                found += fit_count(
                    node_free[0] + extra[0],
                    node_free[1] + extra[1],
                    node_free[2] + extra[2],
                    per_pod,
                )
                if found >= limit:
                    return limit
        for i in self._candidates(per_pod[0]):
            if i in freed:
                continue
            node_free = free[i]
            found += fit_count(node_free[0], node_free[1], node_free[2], per_pod)
            if found >= limit:
                return limit
        return found

    def fits_with(self, per_pod: Amount, count: int, freed: Mapping[int, list[int]]) -> bool:
        """Would `count` pods of `per_pod` fit if `freed` were given back first?
        (Preemption asks this of its candidate victims.)"""
        return self.room(per_pod, count, freed) >= count

    def most_on_empty(self, per_pod: Amount) -> int:
        """How many pods of `per_pod` the open nodes could take with nothing on them."""
        known = self.empty_fit.get(per_pod)
        if known is not None:
            return known
        total = 0
        for i, (gpus, cpu, memory) in enumerate(self.allocatable):
            if self.open[i]:
                total += fit_count(gpus, cpu, memory, per_pod)
                if total >= _UNLIMITED:
                    break
        self.empty_fit[per_pod] = total
        return total

    def free_total(self) -> tuple[Amount, int]:
        """What is free on the open nodes in all (negatives count as 0), and the most free
        GPUs on one of them."""
        gpus = cpu = memory = most = 0
        for i, (node_gpus, node_cpu, node_memory) in enumerate(self.free):
            if self.open[i]:
                gpus += max(0, node_gpus)
                cpu += max(0, node_cpu)
                memory += max(0, node_memory)
                most = max(most, node_gpus)
        return (gpus, cpu, memory), most

    # ---- changing --------------------------------------------------------------------------

    def _move(self, i: int, per_pod: Amount, pods: int) -> None:
        """Node i gets `pods` more of `per_pod` (negative: gives them back)."""
        node_free = self.free[i]
        before = max(0, node_free[0])
        gpus, cpu, memory = per_pod
        node_free[0] -= gpus * pods
        node_free[1] -= cpu * pods
        node_free[2] -= memory * pods
        after = max(0, node_free[0])
        if before != after and self.open[i]:
            bucket = self.buckets[before]
            del bucket[i]
            if not bucket:
                del self.buckets[before]
            self.buckets.setdefault(after, {})[i] = None

    def take(self, per_pod: Amount, plan: Sequence[tuple[int, int]]) -> None:
        for i, pods in plan:
            self._move(i, per_pod, pods)

    def give_back(self, per_pod: Amount, placement: Iterable[tuple[int, int]]) -> None:
        released = False
        for i, pods in placement:
            if pods:
                self._move(i, per_pod, -pods)
                released = True
        if released:
            self.release_epoch += 1
