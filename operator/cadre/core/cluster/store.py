"""The admission loop's in-memory view of the cluster. Pure: no I/O, plain values.

Handlers feed it from watch events (and the startup listing); the snapshot adapter reads
it. Records are slim (what admission needs), not whole objects, except TrainingJobs,
whose spec and status the adapter and the status writers need.

Every `upsert_*`/`delete_*` returns True when the change can alter an admission decision,
so the handler knows whether to wake the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cadre.core.accounting import Ledger, PodCharge, PodUsage
from cadre.core.api.names import LABEL_TRAININGJOB
from cadre.core.objects import key_of
from cadre.core.scheduling import Spend
from cadre.core.training.job import JobRecord, job_record

__all__ = ["NodeRecord", "Store", "node_record"]


@dataclass(frozen=True, slots=True)
class NodeRecord:
    labels: Mapping[str, str]
    allocatable: Mapping[str, str]
    unschedulable: bool


def _resource_version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _newer(old: str, new: str) -> bool:
    """True unless `new` is known to be older than `old` (resource versions are opaque
    strings; etcd's are integers, which is all this relies on, and only to drop stale
    events after a write whose answer is already stored)."""
    if old.isdigit() and new.isdigit():
        return int(new) >= int(old)
    return True


def node_record(node: Mapping[str, Any]) -> NodeRecord:
    metadata = node.get("metadata") or {}
    return NodeRecord(
        labels=dict(metadata.get("labels") or {}),
        allocatable=dict((node.get("status") or {}).get("allocatable") or {}),
        unschedulable=bool((node.get("spec") or {}).get("unschedulable", False)),
    )


@dataclass
class Store:
    """Everything the admission pass reads. Keys of workloads are "namespace/name"."""

    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    trainingjobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    """The Job of TrainingJob key (same namespace and name)."""
    admitted_at: dict[str, float] = field(default_factory=dict)
    """When this process admitted a workload (epoch seconds), for preemption order."""
    retired_jobs: set[str] = field(default_factory=set)
    """UIDs of Jobs deleted to restart a gang: late watch events of them are ignored."""
    pod_usage: dict[str, dict[str, tuple[PodUsage, ...]]] = field(default_factory=dict)
    """TrainingJob key -> pod uid -> its containers' running intervals, kept after the
    pod is deleted (a preempted or restarted gang's pods ran and are charged)."""
    closed_pods: set[str] = field(default_factory=set)
    """UIDs of pods seen deleted: their intervals are final, late events are ignored."""
    pods: dict[str, PodCharge] = field(default_factory=dict)
    """Pod uid -> what budget accounting needs of it, for every pod of a Cadre Job (also
    of TrainingJobs already deleted), until its charge is settled and it is gone."""
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    """Budget -> its ledger. Read from the budget's status once; afterwards this copy is
    the truth (the operator is its only writer) and the status follows it."""
    spend: dict[str, Spend] = field(default_factory=dict)
    """Team -> its spend state for the admission core (from the budget writer)."""

    # -- Pods (budget accounting) -------------------------------------------------------
    def upsert_pod(self, charge: PodCharge) -> None:
        old = self.pods.get(charge.uid)
        if old is not None and old.gone:
            return  # a late event of a pod seen deleted
        self.pods[charge.uid] = charge

    def drop_pod(self, uid: str) -> None:
        self.pods.pop(uid, None)

    # -- Pods (accounting only) --------------------------------------------------------
    def upsert_pod_usage(
        self, key: str, uid: str, usages: tuple[PodUsage, ...], *, final: bool = False
    ) -> None:
        if uid in self.closed_pods:
            return
        self.pod_usage.setdefault(key, {})[uid] = usages
        if final:
            self.closed_pods.add(uid)

    def usages_of(self, key: str) -> tuple[PodUsage, ...]:
        return tuple(u for pod in (self.pod_usage.get(key) or {}).values() for u in pod)

    def pods_open(self, key: str) -> bool:
        """True if a container of the job is still counted as running."""
        return any(u.interval.end is None for u in self.usages_of(key))

    # -- ResourceBudgets -------------------------------------------------------------
    def upsert_budget(self, budget: Mapping[str, Any]) -> bool:
        name = str(budget["metadata"]["name"])
        old = self.budgets.get(name)
        if old is not None and not _newer(_resource_version(old), _resource_version(budget)):
            return False
        self.budgets[name] = dict(budget)
        uid = (budget.get("metadata") or {}).get("uid")
        if old is None or (old.get("metadata") or {}).get("uid") != uid:
            self.ledgers[name] = Ledger.from_status((budget.get("status") or {}).get("ledger"))
        return old is None or old.get("spec") != budget.get("spec")

    def delete_budget(self, name: str) -> bool:
        self.ledgers.pop(name, None)
        self.spend.pop(name, None)
        return self.budgets.pop(name, None) is not None

    # -- Nodes -----------------------------------------------------------------------
    def upsert_node(self, node: Mapping[str, Any]) -> bool:
        name = str(node["metadata"]["name"])
        record = node_record(node)
        old = self.nodes.get(name)
        self.nodes[name] = record
        return old != record

    def delete_node(self, name: str) -> bool:
        return self.nodes.pop(name, None) is not None

    # -- Namespaces ------------------------------------------------------------------
    def upsert_namespace(self, namespace: Mapping[str, Any]) -> bool:
        name = str(namespace["metadata"]["name"])
        labels = dict((namespace.get("metadata") or {}).get("labels") or {})
        old = self.namespaces.get(name)
        self.namespaces[name] = labels
        return old != labels

    def delete_namespace(self, name: str) -> bool:
        return self.namespaces.pop(name, None) is not None

    # -- TrainingJobs ----------------------------------------------------------------
    def upsert_trainingjob(self, tj: Mapping[str, Any]) -> bool:
        """Store the newer of the known and the given object; True when its spec,
        generation or deletion changed (a status-only change never wakes the loop)."""
        key = key_of(tj)
        old = self.trainingjobs.get(key)
        if old is not None and not _newer(_resource_version(old), _resource_version(tj)):
            return False
        stored = dict(tj)
        metadata = stored.get("metadata")
        if isinstance(metadata, dict) and "managedFields" in metadata:
            # Often larger than the rest of the object; nothing here reads it.
            stored["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
        self.trainingjobs[key] = stored
        if old is None:
            return True
        om, nm = old.get("metadata") or {}, tj.get("metadata") or {}
        return (
            om.get("generation") != nm.get("generation")
            or om.get("deletionTimestamp") != nm.get("deletionTimestamp")
            or old.get("spec") != tj.get("spec")
        )

    def delete_trainingjob(self, key: str) -> bool:
        self.admitted_at.pop(key, None)
        for uid in self.pod_usage.pop(key, None) or ():
            self.closed_pods.discard(uid)
        gone = self.trainingjobs.pop(key, None) is not None
        job = self.jobs.pop(key, None)
        return gone or job is not None

    # -- Jobs ------------------------------------------------------------------------
    def upsert_job(self, job: Mapping[str, Any]) -> bool:
        """True when the Job's admission state changed (suspended, finished)."""
        metadata = job.get("metadata") or {}
        tj_name = (metadata.get("labels") or {}).get(LABEL_TRAININGJOB) or metadata.get("name")
        key = f"{metadata.get('namespace', '')}/{tj_name}"
        record = job_record(job)
        if record.uid in self.retired_jobs:
            return False
        old = self.jobs.get(key)
        if old is not None and not _newer(old.resource_version, record.resource_version):
            return False
        self.jobs[key] = record
        return old is None or old.running != record.running or old.uid != record.uid

    def retire_job(self, key: str, uid: str) -> None:
        """Forget the Job `uid` of `key` for good (deleted to restart the gang)."""
        self.retired_jobs.add(uid)
        self.delete_job(key, uid)

    def delete_job(self, key: str, uid: str | None = None) -> bool:
        old = self.jobs.get(key)
        if old is None or (uid is not None and old.uid != uid):
            return False
        del self.jobs[key]
        return True
