"""The admission core: pure, deterministic scheduling of Cadre's workloads.

The adapter builds a `Snapshot` (flavours with capacity, teams, workloads) and calls
`schedule(snapshot)`; the `PassResult` says what to admit, what to stop and why everything
else waits. No I/O, no Kubernetes, no Kopf: see docs/scheduling.md.
"""

from cadre.core.scheduling.admission_pass import schedule
from cadre.core.scheduling.apply import apply_result
from cadre.core.scheduling.capacity import capacity_from_nodes
from cadre.core.scheduling.types import (
    Admission,
    Flavour,
    FlavourQuota,
    FlavourSelector,
    FlavourUsage,
    Limits,
    Node,
    NodeCapacity,
    PassResult,
    Pending,
    QueueingStrategy,
    Reason,
    Resources,
    Snapshot,
    Spend,
    SpendPolicy,
    SpendState,
    Team,
    TeamUsage,
    Victim,
    Workload,
    WorkloadKind,
)

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
    "apply_result",
    "capacity_from_nodes",
    "schedule",
]
