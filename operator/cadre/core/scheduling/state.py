"""The state an admission pass works on: built from the snapshot, then changed in place.

- `FlavourState`: a flavour's schedulable capacity and what admitted work uses of it;
- `CohortPool`: one cohort on one flavour, the balance of what its teams lend and borrow;
- `TeamQuota`: one team on one flavour, its limits and usage, the fit rules, and an index of
  its admitted work in preemption order;
- `TeamState`: a team, its queue of pending units and its fair share;
- `WorkloadState`: a workload, what it asks for and what it holds;
- `PassState`: all of them, and the changes the pass and preemption share (admit, evict).

The cohort arithmetic follows Kueue. For a team on a flavour, per resource, with usage U,
nominal N and lendable L = min(lendingLimit, N) (N when unset), the team contributes
min(L, N - U) to its cohort's pool (`contribution`): its idle lendable quota when under
nominal, minus what it borrows when over. A state is valid when, per cohort and resource,
the contributions sum to >= 0 (what is borrowed is covered by what lenders may lend), each
team stays within N + borrowingLimit, and each flavour within its capacity. A team without a
cohort is a cohort of one with nothing to lend, so it is held to N.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import NamedTuple

from cadre.core.scheduling.placement import NodePool, fit_count
from cadre.core.scheduling.quantities import (
    UNLIMITED,
    Amount,
    Vector,
    contribution_change,
    scaled,
)
from cadre.core.scheduling.types import (
    FlavourQuota,
    NodeCapacity,
    QueueingStrategy,
    Reason,
    Resources,
    Snapshot,
    SpendPolicy,
    SpendState,
    Team,
    Workload,
)

__all__ = [
    "ADMITTED",
    "ADMITTED_NOW",
    "EVICTED",
    "EXTRAS_ENTRY",
    "GANG_ENTRY",
    "PENDING",
    "AdmittedEntry",
    "CohortPool",
    "FlavourState",
    "PassState",
    "QueueEntry",
    "TeamQuota",
    "TeamState",
    "WorkloadState",
    "timestamp",
]

# A workload's status in the pass (plain ints: the main loop compares them for every unit).
PENDING = 0
"""Not admitted: waiting, or admitted earlier in this pass and taken back."""
ADMITTED = 1
"""Admitted before the pass and still admitted."""
ADMITTED_NOW = 2
"""Admitted by this pass."""
EVICTED = 3
"""Admitted before the pass and stopped by it: a victim."""

EXTRAS_ENTRY, GANG_ENTRY = 0, 1
"""What an entry of a quota's admitted index stands for: the workload's extra replicas, or
its whole gang. Extras sort first because they are preempted before gangs."""

AdmittedEntry = tuple[int, int, int, str, int]
"""(priority, EXTRAS_ENTRY or GANG_ENTRY, -admit order, key, workload index). Sorted, this is
the order in which admitted work is preempted: lowest priority first, extra replicas before
gangs, most recently admitted first."""

QueueEntry = tuple[int, int, float, str, int]
"""A unit in a team's queue (a heap): (-priority, 1 for one more extra replica else 0,
creation time, key, workload index): highest priority first, gangs before extra replicas,
oldest first."""


def timestamp(value: float | datetime | None) -> float:
    """Seconds since the epoch; None (never) sorts first."""
    if value is None:
        return float("-inf")
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


class FlavourState:
    """A flavour: its schedulable capacity and what admitted work uses of it."""

    __slots__ = ("capacity", "name", "nodes", "release_epoch", "used")

    def __init__(self, name: str, capacity: Resources, nodes: NodePool | None = None) -> None:
        self.name = name
        self.capacity = Vector(capacity.gpus, capacity.cpu, capacity.memory)
        self.used = Vector()
        self.nodes = nodes
        """Its nodes, when the snapshot has them: a unit is admitted only with a plan."""
        self.release_epoch = 0
        """Bumped when a preemption left more of the flavour free than the preemptor took:
        requests that failed on it before may fit now."""


class CohortPool:
    """One cohort on one flavour: the sum of its teams' contributions, per resource (what
    lenders may still lend, net of what borrowers take); it must stay >= 0. A team without a
    cohort gets a private pool of its own, with nothing to lend or borrow."""

    __slots__ = (
        "available",
        "borrow_epoch",
        "borrowers",
        "cohort",
        "failed",
        "lendable",
        "members",
        "private",
        "release_epoch",
    )

    def __init__(self, cohort: str | None) -> None:
        self.cohort = cohort
        self.private = cohort is None
        self.lendable = Vector()
        """What the members may lend in all (with nothing used)."""
        self.available = Vector()
        """The balance: the sum of the members' contributions now."""
        self.borrowers: set[int] = set()
        """Indices of the member quotas that use more than their nominal quota now."""
        self.members: list[TeamQuota] = []
        self.release_epoch = 0
        """Bumped when a preemption left the pool with more to lend than before."""
        self.borrow_epoch = 0
        """Bumped by each admission in this pass that leaves its team borrowing: the team's
        work became (or stays) reclaimable, and there is more of it."""
        self.failed: dict[int, int] = {}
        """Member quotas with failed units on record for the next round: quota index -> the
        borrow epoch at its first failure (another team that borrowed since may have work
        to reclaim that was not there when the units failed)."""


def _resource_terms(
    nominal: int | None, borrowing_limit: int | None, lending_limit: int | None, private: bool
) -> tuple[int, int, int, float]:
    """(nominal, limit, lendable, share per unit) of one resource of a quota spec."""
    if nominal is None:  # not governed by quota: only the flavour's capacity limits it
        return UNLIMITED, UNLIMITED, 0, 0.0
    nominal = max(0, nominal)
    share_per_unit = 1.0 / nominal if nominal > 0 else 1.0
    if private:
        return nominal, nominal, 0, share_per_unit
    limit = UNLIMITED if borrowing_limit is None else nominal + max(0, borrowing_limit)
    lendable = nominal if lending_limit is None else min(nominal, max(0, lending_limit))
    return nominal, limit, lendable, share_per_unit


def _ceiling(nominal: int, limit: int, lent_by_others: int, private: bool) -> int:
    """The most a team may ever hold of one resource: its nominal quota plus all the other
    members of its cohort may lend, within its own limit."""
    if nominal == UNLIMITED or private:
        return nominal
    return min(limit, nominal + lent_by_others)


class TeamQuota:
    """One team on one flavour: its limits and usage, the rules for what fits, and its
    admitted, preemptible work in preemption order."""

    __slots__ = (
        "admitted",
        "fit_max",
        "flavour",
        "index",
        "lendable",
        "limit",
        "max_usable",
        "nominal",
        "pool",
        "release_epoch",
        "round_failures",
        "share_per_unit",
        "skip_shapes",
        "skip_stamp",
        "stale_entries",
        "team",
        "usage",
        "usage_at_failure",
    )

    def __init__(
        self,
        index: int,
        team: TeamState,
        flavour: FlavourState,
        pool: CohortPool,
        spec: FlavourQuota,
    ) -> None:
        self.index = index
        self.team = team
        self.flavour = flavour
        self.pool = pool
        unset = (None, None, None)
        borrowing = spec.borrowing_limit.as_tuple() if spec.borrowing_limit is not None else unset
        lending = spec.lending_limit.as_tuple() if spec.lending_limit is not None else unset
        terms = [  # one (nominal, limit, lendable, share per unit) per resource
            _resource_terms(nominal, borrowing_limit, lending_limit, pool.private)
            for nominal, borrowing_limit, lending_limit in zip(
                spec.nominal.as_tuple(), borrowing, lending, strict=True
            )
        ]
        nominal, limit, lendable, share_per_unit = zip(*terms, strict=True)
        self.nominal = Vector(*nominal)
        """Guaranteed quota; UNLIMITED where the resource is not governed by quota."""
        self.limit = Vector(*limit)
        """Nominal + borrowing limit: the most the team may hold (nominal without a cohort)."""
        self.lendable = Vector(*lendable)
        """The part of nominal the team lends to its cohort while idle."""
        self.share_per_unit: tuple[float, float, float] = share_per_unit
        """What one unit of use adds to the team's dominant share (gpus, cpu, memory): 1/N,
        1 when N is 0, nothing when the resource is not governed by quota."""
        self.max_usable = Vector()
        """The most the team could ever hold, everything lendable lent to it (`set_ceiling`)."""
        self.fit_max = Vector()
        """`max_usable` capped by the flavour's capacity: a larger request never fits."""
        self.usage = Vector()
        self.admitted: list[AdmittedEntry] = []
        """Admitted, preemptible work, sorted; an evicted workload's entries stay until
        compaction (they no longer match its admit order)."""
        self.stale_entries = 0
        self.release_epoch = 0
        """Bumped when a preemption lowered this team's usage: its failed requests may fit
        now."""
        # Fail fast: the request shapes that failed (fit and preemption) since resources were
        # last released on this flavour, in this pool or by this team (the three epochs in
        # `skip_stamp`); a request covering one of them fails too without a check.
        self.skip_shapes: list[Amount] = []
        self.skip_stamp = (-1, -1, -1)
        # For the next round: the smallest shapes that failed in this round (an antichain;
        # None once too many to keep) and the highest own usage at a failure. If none of
        # the shapes fits at the end of the round and the team's usage did not drop, none of
        # its failed units would fit if tried again.
        self.round_failures: list[Amount] | None = []
        self.usage_at_failure = Vector()

    def set_ceiling(self) -> None:
        """Once every quota of the pool exists: `max_usable` and `fit_max`."""
        nominal, limit, lendable = self.nominal, self.limit, self.lendable
        in_pool, private = self.pool.lendable, self.pool.private
        self.max_usable = max_usable = Vector(
            _ceiling(nominal.gpus, limit.gpus, in_pool.gpus - lendable.gpus, private),
            _ceiling(nominal.cpu, limit.cpu, in_pool.cpu - lendable.cpu, private),
            _ceiling(nominal.memory, limit.memory, in_pool.memory - lendable.memory, private),
        )
        capacity = self.flavour.capacity
        self.fit_max = Vector(
            min(max_usable.gpus, capacity.gpus),
            min(max_usable.cpu, capacity.cpu),
            min(max_usable.memory, capacity.memory),
        )

    # ---- usage -----------------------------------------------------------------------------

    def add_usage(self, amount: Amount) -> None:
        gpus, cpu, memory = amount
        self._move_usage(gpus, cpu, memory)

    def remove_usage(self, amount: Amount) -> None:
        gpus, cpu, memory = amount
        self._move_usage(-gpus, -cpu, -memory)

    def _move_usage(self, gpus: int, cpu: int, memory: int) -> None:
        """Usage moves by the given amounts; the flavour's use and the pool's balance follow."""
        used, usage, nominal, lendable = self.flavour.used, self.usage, self.nominal, self.lendable
        available = self.pool.available
        if gpus:
            used.gpus += gpus
            available.gpus += contribution_change(lendable.gpus, nominal.gpus, usage.gpus, gpus)
            usage.gpus += gpus
        if cpu:
            used.cpu += cpu
            available.cpu += contribution_change(lendable.cpu, nominal.cpu, usage.cpu, cpu)
            usage.cpu += cpu
        if memory:
            used.memory += memory
            available.memory += contribution_change(
                lendable.memory, nominal.memory, usage.memory, memory
            )
            usage.memory += memory
        if usage.gpus > nominal.gpus or usage.cpu > nominal.cpu or usage.memory > nominal.memory:
            self.pool.borrowers.add(self.index)
        else:
            self.pool.borrowers.discard(self.index)

    def borrows_after(self, released: Vector | None) -> bool:
        """Would the team still use more than nominal if it gave back `released`?"""
        usage, nominal = self.usage, self.nominal
        if released is None:
            return (
                usage.gpus > nominal.gpus
                or usage.cpu > nominal.cpu
                or usage.memory > nominal.memory
            )
        return (
            usage.gpus - released.gpus > nominal.gpus
            or usage.cpu - released.cpu > nominal.cpu
            or usage.memory - released.memory > nominal.memory
        )

    def borrowed(self) -> Vector:
        """What the team uses above its nominal quota now."""
        return Vector(
            *(
                max(0, usage - nominal)
                for usage, nominal in zip(self.usage, self.nominal, strict=True)
            )
        )

    def within_nominal_with(self, request: Amount) -> bool:
        """Would the team stay within its nominal quota with `request` added (a reclaim)?"""
        usage, nominal = self.usage, self.nominal
        gpus, cpu, memory = request
        return (
            usage.gpus + gpus <= nominal.gpus
            and usage.cpu + cpu <= nominal.cpu
            and usage.memory + memory <= nominal.memory
        )

    def shortfall(self, request: Amount) -> Amount:
        """What the flavour's free capacity or the cohort's pool lacks for `request`, per
        resource: the larger of the two (<= 0 where nothing lacks)."""
        gpus, cpu, memory = request
        used, capacity = self.flavour.used, self.flavour.capacity
        usage, nominal, lendable = self.usage, self.nominal, self.lendable
        available = self.pool.available
        return (
            max(
                gpus - (capacity.gpus - used.gpus),
                -available.gpus
                - contribution_change(lendable.gpus, nominal.gpus, usage.gpus, gpus),
            ),
            max(
                cpu - (capacity.cpu - used.cpu),
                -available.cpu - contribution_change(lendable.cpu, nominal.cpu, usage.cpu, cpu),
            ),
            max(
                memory - (capacity.memory - used.memory),
                -available.memory
                - contribution_change(lendable.memory, nominal.memory, usage.memory, memory),
            ),
        )

    def over_limit(self, request: Amount) -> Amount:
        """How far `request` would take the team above its limit, per resource (<= 0: not)."""
        gpus, cpu, memory = request
        usage, limit = self.usage, self.limit
        return (
            usage.gpus + gpus - limit.gpus,
            usage.cpu + cpu - limit.cpu,
            usage.memory + memory - limit.memory,
        )

    def others_borrow(self) -> bool:
        """Does another team of the cohort borrow on this flavour (someone to reclaim from)?"""
        pool = self.pool
        borrowers = pool.borrowers
        return not pool.private and len(borrowers) > (1 if self.index in borrowers else 0)

    def dominant_share(self) -> float:
        """The largest fraction of nominal the team uses of any resource (borrowed use counts)."""
        usage = self.usage
        gpus_share, cpu_share, memory_share = self.share_per_unit
        return max(usage.gpus * gpus_share, usage.cpu * cpu_share, usage.memory * memory_share)

    # ---- fit -------------------------------------------------------------------------------

    def fits(self, request: Amount) -> bool:
        """Does `request` fit now: within the flavour's capacity, within the team's limit, and
        with the cohort's pool still >= 0? Spelt out per resource: the innermost check."""
        gpus, cpu, memory = request
        flavour = self.flavour
        used, capacity = flavour.used, flavour.capacity
        usage, limit, nominal, lendable = self.usage, self.limit, self.nominal, self.lendable
        available = self.pool.available
        if gpus:
            if used.gpus + gpus > capacity.gpus or usage.gpus + gpus > limit.gpus:
                return False
            change = contribution_change(lendable.gpus, nominal.gpus, usage.gpus, gpus)
            if change < 0 and available.gpus + change < 0:
                return False
        if cpu:
            if used.cpu + cpu > capacity.cpu or usage.cpu + cpu > limit.cpu:
                return False
            change = contribution_change(lendable.cpu, nominal.cpu, usage.cpu, cpu)
            if change < 0 and available.cpu + change < 0:
                return False
        if memory:
            if used.memory + memory > capacity.memory or usage.memory + memory > limit.memory:
                return False
            change = contribution_change(lendable.memory, nominal.memory, usage.memory, memory)
            if change < 0 and available.memory + change < 0:
                return False
        return True

    def fits_after_release(self, request: Amount, released: Mapping[TeamQuota, Vector]) -> bool:
        """Would `request` fit if the usage in `released` were given back? `released` maps
        quotas on this flavour (this one, or other members of its pool) to what they would
        give back. The rules of `fits` on the state after the release, where the pool's
        balance moves by the other teams' releases and by this team's own change of usage
        (its release, then the request). Spelt out per resource as in `fits`: preemption
        calls it for every set of victims it considers."""
        freed = Vector()  # what the flavour gets back
        others_change = Vector()  # how the pool's balance moves with the others' releases
        own_release = Vector()
        for quota, release in released.items():
            freed.add_vector(release)
            if quota is self:
                own_release = release
            else:
                quota._add_change_if_released(release, others_change)
        gpus, cpu, memory = request
        flavour = self.flavour
        used, capacity = flavour.used, flavour.capacity
        usage, limit, nominal, lendable = self.usage, self.limit, self.nominal, self.lendable
        available = self.pool.available
        if gpus:
            after = usage.gpus - own_release.gpus + gpus
            if used.gpus - freed.gpus + gpus > capacity.gpus or after > limit.gpus:
                return False
            own_change = contribution_change(
                lendable.gpus, nominal.gpus, usage.gpus, after - usage.gpus
            )
            change = others_change.gpus + own_change
            if change < 0 and available.gpus + change < 0:
                return False
        if cpu:
            after = usage.cpu - own_release.cpu + cpu
            if used.cpu - freed.cpu + cpu > capacity.cpu or after > limit.cpu:
                return False
            own_change = contribution_change(
                lendable.cpu, nominal.cpu, usage.cpu, after - usage.cpu
            )
            change = others_change.cpu + own_change
            if change < 0 and available.cpu + change < 0:
                return False
        if memory:
            after = usage.memory - own_release.memory + memory
            if used.memory - freed.memory + memory > capacity.memory or after > limit.memory:
                return False
            own_change = contribution_change(
                lendable.memory, nominal.memory, usage.memory, after - usage.memory
            )
            change = others_change.memory + own_change
            if change < 0 and available.memory + change < 0:
                return False
        return True

    def _add_change_if_released(self, release: Vector, into: Vector) -> None:
        """Add to `into` how the pool's balance would move if this team gave back `release`."""
        usage, nominal, lendable = self.usage, self.nominal, self.lendable
        into.gpus += contribution_change(lendable.gpus, nominal.gpus, usage.gpus, -release.gpus)
        into.cpu += contribution_change(lendable.cpu, nominal.cpu, usage.cpu, -release.cpu)
        into.memory += contribution_change(
            lendable.memory, nominal.memory, usage.memory, -release.memory
        )


class TeamState:
    """A team: its queue of pending units, its fair share, whether it may admit."""

    __slots__ = (
        "blocked",
        "budget_blocked",
        "index",
        "name",
        "park_mark",
        "park_shapes",
        "parked_share",
        "queue",
        "quotas",
        "share",
        "spec",
        "strict",
        "version",
        "weight",
        "zero_weight",
    )

    def __init__(self, index: int, spec: Team) -> None:
        self.index = index
        self.spec = spec
        self.name = spec.name
        self.quotas: dict[str, TeamQuota] = {}
        """Per flavour name."""
        self.queue: list[QueueEntry] = []
        self.strict = spec.queueing == QueueingStrategy.STRICT_FIFO
        exceeded = spec.spend.state == SpendState.EXCEEDED
        self.budget_blocked = exceeded and spec.spend.policy != SpendPolicy.WARN
        """Over budget (Queue or Suspend): admits nothing."""
        self.blocked = False
        """StrictFIFO: the head of the queue failed in this round, so the rest waits."""
        self.version = 0
        """Bumped whenever the team's place in the heap of team heads changes: an entry with
        an older version is stale."""
        self.weight = float(spec.fair_share_weight)
        self.zero_weight = 0 if self.weight > 0 else 1
        """1 for a team of weight 0: it goes after every weighted team."""
        self.share = 0.0
        """Dominant share divided by weight (undivided for weight 0)."""
        self.park_shapes: list[tuple[TeamQuota, Amount]] | None = None
        """The smallest requests in this round's queue, with their quota (None: too many
        kinds to track): once each fails fast, so does everything left in the queue."""
        self.parked_share: float | None = None
        """Parked (out of the heap until something is released): the share its queued units
        had in the heap."""
        self.park_mark = 0
        """Where the pass's trail of processed heap entries stood when the team parked."""

    def update_share(self) -> None:
        share = 0.0
        for quota in self.quotas.values():
            share = max(share, quota.dominant_share())
        self.share = share / self.weight if self.zero_weight == 0 else share


class WorkloadState:
    """A workload in the pass: what it asks for, what it holds, what happened to it."""

    __slots__ = (
        "admit_order",
        "bound_at",
        "created",
        "eviction",
        "extras_admitted",
        "extras_admitted_now",
        "extras_indexed",
        "extras_stopped",
        "extras_wanted",
        "fixed_reason",
        "gang",
        "index",
        "per_pod",
        "pods",
        "priority",
        "quota",
        "requeue",
        "reserved_at",
        "restore",
        "spec",
        "status",
        "stopped_pods",
        "taken_back_by",
        "team",
        "unplaced",
    )

    def __init__(self, index: int, spec: Workload) -> None:
        self.index = index
        """Position in PassState.works (key order)."""
        self.spec = spec
        self.priority = spec.priority
        created = spec.created
        self.created = created if created.__class__ is float else timestamp(created)
        per_pod = spec.per_pod
        gpus, cpu, memory = per_pod.gpus, per_pod.cpu, per_pod.memory
        self.per_pod: Amount = (gpus, cpu, memory)
        """One pod: the request of one extra replica."""
        self.pods = pods = spec.pods
        self.gang: Amount = (gpus * pods, cpu * pods, memory * pods)
        """All workers (or the min replicas) at once: the request of the gang."""
        self.extras_wanted = extras = spec.extra_replicas if spec.extra_replicas > 0 else 0
        if spec.admitted:
            self.status = ADMITTED
            self.extras_admitted = min(spec.admitted_extra, extras)
        else:
            self.status = PENDING
            self.extras_admitted = 0
        """Extra replicas held (in all, after what the pass did so far)."""
        self.extras_admitted_now = 0
        """Extra replicas admitted by this pass."""
        self.extras_stopped = 0
        """Extra replicas, admitted before the pass, that it stopped (a scale-down victim)."""
        self.extras_indexed = False
        """An EXTRAS_ENTRY for it is in its quota's admitted index."""
        self.eviction: tuple[Reason, str, str | None] | None = None
        """(reason, message, preemptor) once it is a victim."""
        self.restore: Restore | None = None
        """What it held and where, right before it was preempted whole (to keep it running
        after all if its preemptor is taken back later in the pass)."""
        self.taken_back_by: str | None = None
        """Who preempted it after this pass had admitted it (it is pending again)."""
        self.admit_order = 0
        """Rank among admissions (the snapshot's, oldest first, then this pass's); 0 when not
        admitted. An admitted-index entry with another order is stale."""
        self.requeue = False
        """Queue it again in the next round whatever its quota's failures say."""
        self.team: TeamState | None = None
        self.quota: TeamQuota | None = None
        self.fixed_reason: tuple[Reason, str] | None = None
        """Why it can never be admitted in this pass (unknown team or flavour, no quota for
        the flavour, larger than the team or the flavour could ever hold): it is not queued."""
        self.bound_at: dict[int, int] | None = None
        """Node index -> its pods bound there (from the snapshot), when the flavour has nodes."""
        self.reserved_at: dict[int, int] | None = None
        """Node index -> its pods the pass plans there (not bound yet)."""
        self.unplaced = 0
        """Admitted pods, not bound, for which no node had room at the start of the pass."""
        self.stopped_pods: list[tuple[int, bool]] | None = None
        """Where the replicas it held before the pass and the pass stopped were: (node index,
        or -1 for none; bound there?). One that comes back in the same pass was never
        stopped at all, so it comes back there or not at all."""

    def reserve(self, plan: Iterable[tuple[int, int]]) -> None:
        reserved = self.reserved_at
        if reserved is None:
            reserved = self.reserved_at = {}
        for node, pods in plan:
            reserved[node] = reserved.get(node, 0) + pods

    def released_nodes(self, start: int, count: int | None) -> list[int]:
        """The nodes given back by stopping its pods number `start` to `start + count` in
        release order (None: to the last); pods with no node go first and free no node."""
        order = [-1] * self.unplaced + self.release_order()
        part = order[start:] if count is None else order[start : start + count]
        return [node for node in part if node >= 0]

    def release_order(self) -> list[int]:
        """The node of each of its placed pods, in the order stopping replicas gives them
        back: planned pods first (the ReplicaSet deletes unscheduled pods first), then bound
        ones; the highest node index first within each."""
        return [node for node, _ in self.release_order_bound()]

    def release_order_bound(self) -> list[tuple[int, bool]]:
        """`release_order`, each node with whether the pod is bound there."""
        order: list[tuple[int, bool]] = []
        for placed, bound in ((self.reserved_at, False), (self.bound_at, True)):
            if placed:
                for node in sorted(placed, reverse=True):
                    order.extend([(node, bound)] * placed[node])
        return order

    def come_back(self, free: list[list[int]]) -> tuple[int, bool] | None:
        """A replica stopped earlier in the pass that can come back where it was: the last
        one without a node, or whose node still has room for it (taken off the list)."""
        stopped = self.stopped_pods
        if not stopped:
            return None
        for position in range(len(stopped) - 1, -1, -1):
            node, _ = stopped[position]
            if node < 0 or fit_count(free[node][0], free[node][1], free[node][2], self.per_pod):
                return stopped.pop(position)
        return None

    def restore_pod(self, node: int, bound: bool) -> None:
        """A stopped replica comes back where it was."""
        if node < 0:
            self.unplaced += 1
            return
        if bound:
            placed = self.bound_at
            if placed is None:
                placed = self.bound_at = {}
        else:
            placed = self.reserved_at
            if placed is None:
                placed = self.reserved_at = {}
        placed[node] = placed.get(node, 0) + 1

    def held(self) -> Amount:
        """What it holds while admitted: the gang and its admitted extra replicas."""
        return scaled(self.per_pod, self.pods + self.extras_admitted)


class PassState:
    """Every piece of state of one pass, and the changes shared by the main loop and
    preemption. Everything is sorted by name or key on the way in, so that the pass does not
    depend on the order of the snapshot's lists."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.flavours: dict[str, FlavourState] = {}
        nodes_of: dict[str, list[NodeCapacity]] | None = None
        if snapshot.nodes is not None:
            nodes_of = {}
            for node in snapshot.nodes:
                nodes_of.setdefault(node.flavour, []).append(node)
        for flavour_spec in sorted(snapshot.flavours, key=lambda f: f.name):
            if flavour_spec.name in self.flavours:
                raise ValueError(f"duplicate flavour {flavour_spec.name!r}")
            pool = None if nodes_of is None else NodePool(nodes_of.get(flavour_spec.name, ()))
            self.flavours[flavour_spec.name] = FlavourState(
                flavour_spec.name, flavour_spec.capacity, pool
            )
        self.teams: dict[str, TeamState] = {}
        self.quotas: list[TeamQuota] = []
        self._add_teams(snapshot.teams)
        workload_specs = sorted(snapshot.workloads, key=lambda w: w.key)
        self.works: list[WorkloadState] = []
        for index, workload_spec in enumerate(workload_specs):
            if index and workload_specs[index - 1].key == workload_spec.key:
                raise ValueError(f"duplicate workload key {workload_spec.key!r}")
            self.works.append(WorkloadState(index, workload_spec))
        self.victim_log: list[int] = []
        """Indices of the workloads that became victims, in order."""
        self.admit_log: list[int] = []
        """Indices of the workloads admitted (gang or extras), in order; with repeats."""
        self.released = False
        """Something was released after some units had failed in this round: another round
        may admit them."""
        self.borrowed_after_failure = False
        """A team borrowed in a cohort where another team has failed units on record: those
        units may reclaim in another round."""
        self.admissions = 0
        """Admissions so far: the next admit order."""

    def _add_teams(self, specs: Iterable[Team]) -> None:
        """Teams, their quotas on known flavours (the first entry per flavour counts) and the
        cohort pools they share."""
        pools: dict[tuple[str, str], CohortPool] = {}
        for spec in sorted(specs, key=lambda t: t.name):
            if spec.name in self.teams:
                raise ValueError(f"duplicate team {spec.name!r}")
            team = TeamState(len(self.teams), spec)
            self.teams[spec.name] = team
            for quota_spec in spec.quotas:
                flavour = self.flavours.get(quota_spec.flavour)
                if flavour is None or quota_spec.flavour in team.quotas:
                    continue
                if spec.cohort is None:
                    pool = CohortPool(None)
                else:
                    key = (spec.cohort, quota_spec.flavour)
                    if key not in pools:
                        pools[key] = CohortPool(spec.cohort)
                    pool = pools[key]
                quota = TeamQuota(len(self.quotas), team, flavour, pool, quota_spec)
                pool.members.append(quota)
                team.quotas[quota_spec.flavour] = quota
                self.quotas.append(quota)
        for pool in pools.values():
            for member in pool.members:
                pool.lendable.add_vector(member.lendable)
            pool.available = pool.lendable.copy()  # nothing is used yet
        for quota in self.quotas:
            quota.set_ceiling()

    # ---- holding -----------------------------------------------------------------------------

    def hold(self, work: WorkloadState) -> None:
        """Count what a workload admitted before the pass holds (setup)."""
        quota = work.quota
        if quota is not None:
            quota.add_usage(work.held())
        else:  # admitted without quota (team or quota entry gone): it still uses the flavour
            flavour = self.flavours.get(work.spec.flavour)
            if flavour is not None:
                flavour.used.add(work.held())

    def admit(self, work: WorkloadState, quota: TeamQuota, request: Amount) -> None:
        """Add a unit's usage; the caller updates the workload's status and counts."""
        quota.add_usage(request)
        pool = quota.pool
        if quota.index in pool.borrowers:
            pool.borrow_epoch += 1
            failed = pool.failed
            if failed and (len(failed) > 1 or quota.index not in failed):
                self.borrowed_after_failure = True
        if not work.extras_admitted_now and work.status != ADMITTED_NOW:
            self.admit_log.append(work.index)

    def index_admitted(self, work: WorkloadState, quota: TeamQuota) -> None:
        """Give the workload its admit order and, if preemptible, its admitted-index entries."""
        self.admissions += 1
        work.admit_order = self.admissions
        if work.spec.preemptible:
            insort(
                quota.admitted,
                (work.priority, GANG_ENTRY, -work.admit_order, work.spec.key, work.index),
            )
            if work.extras_admitted:
                self.index_extras(work, quota)

    @staticmethod
    def index_extras(work: WorkloadState, quota: TeamQuota) -> None:
        """Give a preemptible workload that holds extra replicas its EXTRAS_ENTRY (once)."""
        if not work.extras_indexed and work.spec.preemptible:
            work.extras_indexed = True
            insort(
                quota.admitted,
                (work.priority, EXTRAS_ENTRY, -work.admit_order, work.spec.key, work.index),
            )

    def live_entries(self, quota: TeamQuota) -> Iterator[AdmittedEntry]:
        """The quota's admitted index without stale entries (and without the extras entry of
        a workload that holds no extra replica now), in preemption order."""
        works = self.works
        for entry in quota.admitted:
            _, part, negative_order, _, index = entry
            work = works[index]
            if (
                work.admit_order == -negative_order
                and work.status in (ADMITTED, ADMITTED_NOW)
                and (part == GANG_ENTRY or work.extras_admitted)
            ):
                yield entry

    def lowest_priority(self, quota: TeamQuota) -> int | None:
        """The lowest priority among the quota's preemptible admitted work (None if none)."""
        first = next(self.live_entries(quota), None)
        if first is None:
            return None
        priority, _, _, _, _ = first
        return priority

    # ---- eviction ----------------------------------------------------------------------------

    def evict(
        self, work: WorkloadState, reason: Reason, message: str, preemptor: str | None
    ) -> None:
        """Stop an admitted workload, gang and extra replicas."""
        quota = work.quota
        held = work.held()
        if quota is not None:
            quota.remove_usage(held)
        else:
            flavour = self.flavours.get(work.spec.flavour)
            if flavour is not None:
                flavour.used.subtract(held)
        if work.status == ADMITTED and preemptor is not None and not work.extras_stopped:
            work.restore = Restore(
                work.extras_admitted,
                dict(work.bound_at) if work.bound_at else None,
                dict(work.reserved_at) if work.reserved_at else None,
                work.unplaced,
                work.admit_order,
            )
        self._unplace(work, None)
        if work.status == ADMITTED:
            work.status = EVICTED
            if work.eviction is None:
                self.victim_log.append(work.index)
            work.eviction = (reason, message, preemptor)
        else:  # admitted earlier in this pass: simply not admitted after all
            work.status = PENDING
            work.taken_back_by = preemptor
            work.requeue = True  # and it goes round again (it may reclaim, or fit elsewhere)
            self.released = True
        work.extras_admitted = 0
        work.extras_admitted_now = 0
        work.extras_indexed = False
        work.admit_order = 0
        if quota is not None:  # drop the stale entries of the quota's index now and then
            quota.stale_entries += 1
            if quota.stale_entries > 32 and quota.stale_entries * 2 > len(quota.admitted):
                self._compact(quota)

    def _unplace(self, work: WorkloadState, count: int | None) -> list[tuple[int, bool]]:
        """Give back the nodes of all its pods (None), or of `count` replicas in release
        order (pods with no node are the first to go); for `count`, where each stopped pod
        was (node index, or -1 for none; bound there?), in that order. Nothing without
        nodes."""
        flavour = self.flavours.get(work.spec.flavour)
        nodes = flavour.nodes if flavour is not None else None
        if nodes is None:
            return []
        if count is None:
            for placed in (work.reserved_at, work.bound_at):
                if placed:
                    nodes.give_back(work.per_pod, placed.items())
            work.reserved_at = work.bound_at = None
            work.unplaced = 0
            return []
        from_unplaced = min(count, work.unplaced)
        work.unplaced -= from_unplaced
        stopped = work.release_order_bound()[: count - from_unplaced]
        released: dict[int, int] = {}
        for node, _ in stopped:
            released[node] = released.get(node, 0) + 1
        for node, pods in released.items():
            left = pods
            for placed in (work.reserved_at, work.bound_at):
                if placed and node in placed:
                    taken = min(left, placed[node])
                    placed[node] -= taken
                    left -= taken
                    if not placed[node]:
                        del placed[node]
        nodes.give_back(work.per_pod, released.items())
        return [(-1, False)] * from_unplaced + stopped

    def keep_needless_victims(self) -> None:
        """A workload admitted by preempting others and taken back later in the pass (a
        team of its cohort reclaimed its nominal quota from it) stopped its victims for
        nothing: they keep running after all, each where it still fits (its team's quota,
        and room on the nodes its pods are on). One whose room was taken since stays
        stopped, preempted by whoever took the room's first holder's place. Runs once the
        rounds are over, so that no decision counted on the room."""
        if not self.victim_log:
            return
        by_key = {work.spec.key: work for work in self.works}
        kept: list[int] = []
        for index in self.victim_log:
            work = self.works[index]
            assert work.eviction is not None
            reason, _, preemptor_key = work.eviction
            preemptor = by_key.get(preemptor_key or "")
            if preemptor is None or admitted_in_pass(preemptor):
                kept.append(index)
                continue
            if work.status == EVICTED and self._reinstate(work):
                continue
            # Its room went to whoever took the preemptor's place: the victim is theirs.
            taker, seen = preemptor, {preemptor.index}
            while not admitted_in_pass(taker) and taker.taken_back_by is not None:
                taker = by_key[taker.taken_back_by]
                if taker.index in seen:
                    break
                seen.add(taker.index)
            if admitted_in_pass(taker):
                message = (
                    f"preempted by {taker.spec.key} (first for {preemptor.spec.key},"
                    f" which {preemptor.taken_back_by} preempted in turn)"
                )
                work.eviction = (reason, message, taker.spec.key)
            kept.append(index)
        self.victim_log = kept

    def _reinstate(self, work: WorkloadState) -> bool:
        """Undo a whole eviction if what it held still fits; False if not (nothing changed)."""
        restore, quota = work.restore, work.quota
        if restore is None or quota is None:
            return False
        held = scaled(work.per_pod, work.pods + restore.extras_admitted)
        if not quota.fits(held):
            return False
        placed: dict[int, int] = {}
        for at in (restore.bound_at, restore.reserved_at):
            for node, pods in (at or {}).items():
                placed[node] = placed.get(node, 0) + pods
        nodes = quota.flavour.nodes
        if nodes is not None:
            for node, pods in placed.items():
                free = nodes.free[node]
                if fit_count(free[0], free[1], free[2], work.per_pod) < pods:
                    return False
            nodes.take(work.per_pod, list(placed.items()))
        quota.add_usage(held)
        work.status = ADMITTED
        work.extras_admitted = restore.extras_admitted
        work.bound_at, work.reserved_at = restore.bound_at, restore.reserved_at
        work.unplaced = restore.unplaced
        work.admit_order = restore.admit_order
        work.eviction = work.restore = None
        quota.team.update_share()
        return True

    def _compact(self, quota: TeamQuota) -> None:
        """Drop the entries of workloads no longer admitted under that admit order."""
        works = self.works
        kept: list[AdmittedEntry] = []
        for entry in quota.admitted:
            _, _, negative_order, _, index = entry
            work = works[index]
            if work.admit_order == -negative_order and work.status in (ADMITTED, ADMITTED_NOW):
                kept.append(entry)
        quota.admitted = kept
        quota.stale_entries = 0

    def evict_extras(
        self,
        work: WorkloadState,
        count: int,
        message: str,
        preemptor: str | None,
        reason: Reason = Reason.PREEMPTED,
    ) -> None:
        """Stop `count` extra replicas of a ModelDeployment: this pass's first, then older
        ones (those make it a scale-down victim)."""
        quota = work.quota
        assert quota is not None
        quota.remove_usage(scaled(work.per_pod, count))
        from_this_pass = min(count, work.extras_admitted_now)
        older = self._unplace(work, count)[from_this_pass:]  # pods it held before the pass
        if older:
            if work.stopped_pods is None:
                work.stopped_pods = []
            work.stopped_pods.extend(older)
        work.extras_admitted_now -= from_this_pass
        work.extras_admitted -= count
        if count > from_this_pass:
            work.extras_stopped += count - from_this_pass
            if work.eviction is None:
                self.victim_log.append(work.index)
                work.eviction = (reason, message, preemptor)
        work.requeue = True  # its replicas go round again (they may reclaim, within nominal)
        self.released = True


class Restore(NamedTuple):
    """A workload's holding right before a whole eviction."""

    extras_admitted: int
    bound_at: dict[int, int] | None
    reserved_at: dict[int, int] | None
    unplaced: int
    admit_order: int


def admitted_in_pass(work: WorkloadState) -> bool:
    """Admitted by this pass: its gang, or at least one extra replica."""
    return work.status == ADMITTED_NOW or (work.status == ADMITTED and work.extras_admitted_now > 0)
