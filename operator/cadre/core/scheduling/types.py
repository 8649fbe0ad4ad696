"""Input snapshot and pass result of the admission core.

Everything here is immutable, plain values (frozen, slotted dataclasses; `Pending`, made
once per waiting workload in every pass, a NamedTuple): the adapter builds a
`Snapshot` from the API objects, `schedule()` returns a `PassResult`, nothing else moves.
Units are integers so that the pass never touches floats on the hot path: GPUs as a count,
CPU in millicores, memory in bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "Admission",
    "Flavour",
    "FlavourQuota",
    "FlavourSelector",
    "FlavourUsage",
    "Limits",
    "Node",
    "NodeCapacity",
    "PassResult",
    "Pending",
    "QueueingStrategy",
    "Reason",
    "Resources",
    "Snapshot",
    "Spend",
    "SpendPolicy",
    "SpendState",
    "Team",
    "TeamUsage",
    "Victim",
    "Workload",
    "WorkloadKind",
]


class QueueingStrategy(StrEnum):
    """How a team's queue treats a workload that does not fit (Kueue's two strategies)."""

    BEST_EFFORT_FIFO = "BestEffortFIFO"
    """A workload that does not fit does not hold back the ones behind it."""
    STRICT_FIFO = "StrictFIFO"
    """The head of the team's queue holds back everything behind it until it fits."""


class SpendState(StrEnum):
    OK = "Ok"
    WARNING = "Warning"
    EXCEEDED = "Exceeded"


class SpendPolicy(StrEnum):
    """What happens to a team whose spend state is Exceeded."""

    QUEUE = "Queue"
    """No new admissions; running work continues."""
    WARN = "Warn"
    """Admissions continue; the state is only reported."""
    SUSPEND = "Suspend"
    """No new admissions, and running work is returned as victims."""


class WorkloadKind(StrEnum):
    TRAINING_JOB = "TrainingJob"
    MODEL_DEPLOYMENT = "ModelDeployment"


class Reason(StrEnum):
    """Stable, machine-readable reason codes (CamelCase, for conditions and metrics)."""

    QUOTA_EXHAUSTED = "QuotaExhausted"
    """The team's nominal quota, its borrowing limit or the cohort's idle quota is short."""
    CAPACITY_EXHAUSTED = "CapacityExhausted"
    """Quota would allow it, but the flavour's schedulable nodes are full."""
    BUDGET_EXCEEDED = "BudgetExceeded"
    """The team's money budget is exceeded (policy Queue or Suspend)."""
    STRICT_FIFO_BLOCKED = "StrictFIFOBlocked"
    """Held behind a workload ahead of it in a StrictFIFO team queue that does not fit."""
    PREEMPTED = "Preempted"
    """Evicted so that a workload of higher priority, or a lender reclaiming quota, fits."""
    EXCEEDS_QUOTA = "ExceedsQuota"
    """Larger than anything the team may ever use of the flavour (nominal + borrowable)."""
    EXCEEDS_CAPACITY = "ExceedsCapacity"
    """Larger than the whole schedulable capacity of the flavour."""
    FLAVOUR_NOT_IN_QUOTA = "FlavourNotInQuota"
    """The team's ResourceBudget has no quota entry for the flavour."""
    UNKNOWN_FLAVOUR = "UnknownFlavour"
    """No flavour of that name exists in the cluster snapshot."""
    UNKNOWN_TEAM = "UnknownTeam"
    """No team (ResourceBudget) of that name exists in the snapshot."""
    NODES_FRAGMENTED = "NodesFragmented"
    """Quota and the flavour's free total would allow it, but its pods fit on no set of
    nodes as they are (free resources are spread over nodes, or taken by other pods)."""
    WAITING_FOR_NEXT_PASS = "WaitingForNextPass"
    """Fits now but was not reached in this pass (only after in-pass reclaims); rare."""


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of one flavour: GPUs (count), CPU (millicores), memory (bytes)."""

    gpus: int = 0
    cpu: int = 0
    memory: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.gpus + other.gpus, self.cpu + other.cpu, self.memory + other.memory)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.gpus - other.gpus, self.cpu - other.cpu, self.memory - other.memory)

    def __mul__(self, n: int) -> Resources:
        return Resources(self.gpus * n, self.cpu * n, self.memory * n)

    __rmul__ = __mul__

    def fits_in(self, other: Resources) -> bool:
        """True when every component is at most the other's."""
        return self.gpus <= other.gpus and self.cpu <= other.cpu and self.memory <= other.memory

    def is_zero(self) -> bool:
        return self.gpus == 0 and self.cpu == 0 and self.memory == 0

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.gpus, self.cpu, self.memory)


ZERO = Resources()


@dataclass(frozen=True, slots=True)
class Limits:
    """A per-resource amount where None has a meaning given by the field that holds it."""

    gpus: int | None = None
    cpu: int | None = None
    memory: int | None = None

    def as_tuple(self) -> tuple[int | None, int | None, int | None]:
        return (self.gpus, self.cpu, self.memory)


@dataclass(frozen=True, slots=True)
class Flavour:
    """A GPU flavour and its schedulable capacity (see `capacity_from_nodes`)."""

    name: str
    capacity: Resources


@dataclass(frozen=True, slots=True)
class FlavourQuota:
    """A team's quota for one flavour.

    `nominal`: the guaranteed amount; a None field means that resource is not governed by
    quota on this flavour (only the flavour's capacity limits it), e.g. a100 quota given in
    GPUs only.
    `borrowing_limit`: how much more than nominal the team may borrow from its cohort's idle
    quota; None (or a None field) is unlimited. Ignored for a team without a cohort.
    `lending_limit`: how much of its idle nominal quota the team lends to its cohort; None (or
    a None field) lends all of it. The rest (nominal - lending_limit) is kept for the team.
    """

    flavour: str
    nominal: Limits
    borrowing_limit: Limits | None = None
    lending_limit: Limits | None = None


@dataclass(frozen=True, slots=True)
class Spend:
    """A team's money state, as computed by accounting; figures are only for the reason."""

    state: SpendState = SpendState.OK
    policy: SpendPolicy = SpendPolicy.QUEUE
    spent: Decimal = Decimal(0)
    limit: Decimal = Decimal(0)
    currency: str = "USD"
    period: str = "month"
    """The period word for "this month": day, week, month (Daily/Weekly/Monthly accepted)."""


@dataclass(frozen=True, slots=True)
class Team:
    """A team, from one ResourceBudget."""

    name: str
    quotas: tuple[FlavourQuota, ...] = ()
    cohort: str | None = None
    fair_share_weight: float = 1.0
    """> 0; 0 is allowed and means the team's pending work goes after every weighted team's."""
    queueing: QueueingStrategy = QueueingStrategy.BEST_EFFORT_FIFO
    spend: Spend = field(default_factory=Spend)


@dataclass(frozen=True, slots=True)
class Workload:
    """A TrainingJob (a gang of `pods` workers) or a ModelDeployment (a gang of its min
    replicas, plus `extra_replicas` wanted beyond the gang, admitted one at a time)."""

    key: str
    """Stable and unique, e.g. "namespace/name"; the final tie-break everywhere."""
    team: str
    flavour: str
    per_pod: Resources
    pods: int = 1
    kind: WorkloadKind = WorkloadKind.TRAINING_JOB
    priority: int = 0
    created: float | datetime = 0.0
    extra_replicas: int = 0
    """ModelDeployment only: replicas wanted beyond the min gang (target - min)."""
    admitted: bool = False
    admitted_extra: int = 0
    """ModelDeployment only: extra replicas already admitted (when `admitted`)."""
    admitted_at: float | datetime | None = None
    """When the gang was admitted; the most recently admitted are preempted first."""
    preemptible: bool = True
    training_may_preempt: bool = True
    """ModelDeployment only: False keeps its min replicas from being preempted to make
    room for a TrainingJob (its extra replicas still may be): serving keeps its floor."""
    bound: tuple[tuple[str, int], ...] = ()
    """Admitted only: (node name, pods) of its pods bound to nodes and not finished; they
    are in those nodes' `used` already. Its other pods are placed by the pass."""


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """One node of a flavour, as the pass places pods on it (placement, not binding)."""

    name: str
    flavour: str
    allocatable: Resources
    used: Resources = Resources()
    """Requests of every pod bound to it and not finished, Cadre's or not."""
    schedulable: bool = True
    """False when no new pod may go there: cordoned, or tainted in a way the flavour's
    pods do not tolerate. What is bound there stays counted."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    flavours: tuple[Flavour, ...]
    teams: tuple[Team, ...]
    workloads: tuple[Workload, ...]
    nodes: tuple[NodeCapacity, ...] | None = None
    """The nodes of every flavour, when known: a gang is admitted only with a placement of
    all its pods on them. None: only the flavours' capacity sums count."""


@dataclass(frozen=True, slots=True)
class Admission:
    """A workload (or more replicas of one) admitted by this pass."""

    key: str
    team: str
    flavour: str
    gang: bool
    """True when the whole gang (all workers, or the min replicas) was admitted now; False
    when only extra replicas of an already admitted ModelDeployment were."""
    extra_replicas: int
    """Extra ModelDeployment replicas admitted by this pass."""
    total_extra_replicas: int
    """Extra replicas admitted in all after this pass (run min + this many)."""
    usage: Resources
    """What this pass added to the team's usage for this workload."""
    borrowed: Resources
    """The part of `usage` above the team's nominal quota after the pass, borrowed from the
    cohort (a team's borrowing is attributed to its latest admissions)."""
    placement: tuple[tuple[str, int], ...] = ()
    """With nodes in the snapshot: (node name, pods) where the pass plans the workload's
    pods that are not bound yet (the new gang or replicas among them), by node name. A
    plan that proves the pods fit; kube-scheduler binds them."""


@dataclass(frozen=True, slots=True)
class Victim:
    """An admitted workload that must stop, or (ModelDeployment) some extra replicas of it."""

    key: str
    team: str
    flavour: str
    reason: Reason
    """PREEMPTED or BUDGET_EXCEEDED."""
    message: str
    preemptor: str | None = None
    replicas: int = 0
    """0: the whole workload stops. > 0: only this many extra replicas of a ModelDeployment
    stop (a scale-down); it keeps its min replicas and `extra_replicas_left` extras (also
    for BUDGET_EXCEEDED: a ModelDeployment keeps its floor under `Suspend`)."""
    extra_replicas_left: int = 0


class Pending(NamedTuple):
    """A workload still waiting after the pass, with its place in the team's queue. A
    NamedTuple: a pass makes one per waiting workload, and a frozen dataclass takes about
    three times as long to build."""

    key: str
    team: str
    flavour: str
    position: int
    """1-based position among the team's pending work, in the team's queue order."""
    reason: Reason
    message: str
    replicas: int
    """Pods waiting: the gang size, or the extra replicas still wanted."""


@dataclass(frozen=True, slots=True)
class FlavourUsage:
    flavour: str
    usage: Resources
    borrowed: Resources


@dataclass(frozen=True, slots=True)
class TeamUsage:
    """A team's state after the pass (for ResourceBudget status)."""

    team: str
    flavours: tuple[FlavourUsage, ...]
    admitted: int
    pending: int


@dataclass(frozen=True, slots=True)
class PassResult:
    admitted: tuple[Admission, ...]
    victims: tuple[Victim, ...]
    pending: tuple[Pending, ...]
    teams: tuple[TeamUsage, ...]

    def pending_by_key(self) -> dict[str, Pending]:
        return {p.key: p for p in self.pending}

    def admitted_by_key(self) -> dict[str, Admission]:
        return {a.key: a for a in self.admitted}

    def victims_by_key(self) -> dict[str, Victim]:
        return {v.key: v for v in self.victims}


@dataclass(frozen=True, slots=True)
class FlavourSelector:
    """A flavour as the operator configuration declares it: its node labels."""

    name: str
    node_labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Node:
    labels: Mapping[str, str]
    allocatable: Resources
    unschedulable: bool = False
