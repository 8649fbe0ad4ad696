"""The controller's in-memory view of the cluster (its cache). Pure: no I/O, plain values,
time from an injected monotonic clock.

Watch events (Kopf's streams), the answers of Cadre's own writes and periodic relists
feed it; the snapshot adapter and the reconcilers read it. Records are slim (what
admission and accounting need), except TrainingJobs and ResourceBudgets, whose spec and
status the writers need.

Three sources of one object can disagree in order (a watch that lags, the answer of a
write, a relist), and resourceVersions may not be compared for order (the API contract
says they are opaque). What keeps the view safe without that:

- **Relists merge by time, not by version.** Every record remembers when it was last
  updated (`seen_at`). A relist is a consistent read taken after it was sent, so it is at
  least as new as any record updated before it was sent: those are replaced by the
  listed object, or dropped when the list no longer has them (a ghost). Records updated
  after the list was sent are left alone. (`merge_listing`)
- **A write's answer supersedes its base.** A status written with a resourceVersion
  precondition replaces exactly that version; a late watch event carrying that very
  version is older, and is ignored (an equality check, no ordering). Any other stale
  event can only cost a write a 409, which re-reads (`conflict-safe writes`).
- **A write's or read's answer never brings an object back.** The writers write, and
  re-read, only what the cache holds; if the object is gone from the cache when the
  answer comes (its DELETED event, or a relist without it, arrived first), the answer
  is older than its deletion and is dropped. Stored, it would be a ghost until the next
  resync: an admitted TrainingJob whose Job the loop makes again and again, each one
  deleted by the garbage collector as an orphan (`_answer_of_gone`).
- **Admissions are expectations until observed.** When the loop creates (or unsuspends)
  a Job, or a relist shows one running, the Job counts as admitted until the watch
  shows it (or it finishes, or goes), so no stale event can make its quota look free
  (`expect_admitted`, as Kubernetes' own controllers keep expectations). An admission
  in a TrainingJob's status holds its quota before its Job exists.

Every `upsert_*` / `delete_*` returns True when the change can alter an admission
decision, so the caller knows whether to wake the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from cadre.core.accounting import PodCharge, PodUsage
from cadre.core.api.names import LABEL_TRAININGJOB
from cadre.core.budget.teams import BudgetScope, TeamResolution, budget_scope, resolve_team
from cadre.core.cluster.nodes import BoundPod
from cadre.core.objects import key_of, owner_uids, uid_of
from cadre.core.scheduling import Spend
from cadre.core.serving.observed import (
    AutoscalerRecord,
    DeploymentRecord,
    ServingPod,
    autoscaler_record,
    deployment_record,
)
from cadre.core.training.job import JobRecord, job_record
from cadre.core.training.lifecycle import holds_admission, pending_admission
from cadre.core.workloads.scheduling import UnscheduledPod

__all__ = [
    "Expectation",
    "Kind",
    "NodeRecord",
    "Store",
    "is_serving",
    "job_key",
    "node_record",
    "serving_key",
    "stored_key",
]

Kind = Literal[
    "budget",
    "node",
    "namespace",
    "trainingjob",
    "job",
    "modeldeployment",
    "deployment",
    "autoscaler",
]

SERVING_PREFIX: Final = "md:"
"""Workload keys of ModelDeployments ("md:namespace/name") are told from TrainingJobs'
("namespace/name") by this prefix (a namespace name has no colon)."""


def serving_key(key: str) -> str:
    """The workload key of the ModelDeployment stored under "namespace/name"."""
    return SERVING_PREFIX + key


def is_serving(key: str) -> bool:
    return key.startswith(SERVING_PREFIX)


def stored_key(key: str) -> str:
    """The store's key ("namespace/name") of a workload key of either kind."""
    return key[len(SERVING_PREFIX) :] if key.startswith(SERVING_PREFIX) else key


EXPECTATION_SECONDS: Final = 300.0
"""How long an admission not yet seen by the watch counts without it (Kubernetes'
controllers use 5 minutes for their expectations too)."""
FORGET_AFTER_SECONDS: Final = 600.0
"""Retired Jobs and deleted TrainingJobs are remembered this long at most."""


@dataclass(frozen=True, slots=True)
class NodeRecord:
    labels: Mapping[str, str]
    allocatable: Mapping[str, str]
    unschedulable: bool
    taints: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Expectation:
    """The Job `uid` is admitted (unsuspended by this replica, or listed running), even
    if the watch has not shown it yet; until `until` (monotonic seconds)."""

    uid: str
    until: float


def node_record(node: Mapping[str, Any]) -> NodeRecord:
    metadata = node.get("metadata") or {}
    return NodeRecord(
        labels=dict(metadata.get("labels") or {}),
        allocatable=dict((node.get("status") or {}).get("allocatable") or {}),
        unschedulable=bool((node.get("spec") or {}).get("unschedulable", False)),
        taints=tuple(
            {k: t.get(k) for k in ("key", "value", "effect")}
            for t in (node.get("spec") or {}).get("taints") or ()
        ),
    )


def job_key(job: Mapping[str, Any]) -> str:
    """The key of the TrainingJob a Job belongs to (its label; its own name otherwise)."""
    metadata = job.get("metadata") or {}
    tj_name = (metadata.get("labels") or {}).get(LABEL_TRAININGJOB) or metadata.get("name")
    return f"{metadata.get('namespace', '')}/{tj_name}"


def _resource_version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def holds(table: Mapping[str, Mapping[str, Any]], key: str, obj: Mapping[str, Any]) -> bool:
    """Does the cache's `table` hold this very object under `key` (same uid), not a
    deletion since, nor a new object of its name?"""
    current = table.get(key)
    return current is not None and uid_of(current) == uid_of(obj)


def _answer_of_gone(
    table: Mapping[str, Mapping[str, Any]],
    key: str,
    obj: Mapping[str, Any],
    written_from: str | None,
    read: bool,
) -> bool:
    """Is `obj` the answer of a write or read about an object the cache no longer holds
    (deleted, or replaced by a new one of the same name, since it was sent)?"""
    if written_from is None and not read:
        return False  # a watch event or a relist: they decide what exists
    return not holds(table, key, obj)


def _slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without managedFields (often larger than the rest; nothing reads it)."""
    stored = dict(obj)
    metadata = stored.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        stored["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return stored


def _never() -> float:
    return 0.0


@dataclass
class Store:
    """Everything the controller reads. Keys of workloads are "namespace/name"."""

    clock: Callable[[], float] = _never
    """Monotonic seconds (the controller passes time.monotonic)."""
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    bound_pods: dict[str, BoundPod] = field(default_factory=dict)
    """Pod uid -> every pod bound to a node and not finished, cluster-wide (placement)."""
    bound_pods_listed: bool = False
    """The bound pods were listed at least once: the pass may place on nodes."""
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    trainingjobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    """The Job of TrainingJob key (same namespace and name)."""
    expectations: dict[str, Expectation] = field(default_factory=dict)
    """TrainingJob key -> its Job admitted but not yet seen running (see the module)."""
    stopping: dict[str, str] = field(default_factory=dict)
    """TrainingJob key -> UID of its Job whose admission this replica revoked, until it
    is seen suspended (see stopping_by_cadre)."""
    admitted_at: dict[str, float] = field(default_factory=dict)
    """When this process admitted a workload (epoch seconds), for preemption order."""
    retired_jobs: dict[str, float] = field(default_factory=dict)
    """UID -> when: Jobs deleted by Cadre (a gang restart, a shape change); late watch
    events of them are ignored. Pruned when their deletion is seen, or after a while."""
    deleted_trainingjobs: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Key -> (uid, when) of TrainingJobs seen deleted, until their Job is gone: a Job of
    theirs still running is stopped at once, rather than after the garbage collector."""
    pod_usage: dict[str, dict[str, tuple[PodUsage, ...]]] = field(default_factory=dict)
    """TrainingJob key -> pod uid -> its containers' running intervals, kept after the
    pod is deleted (a preempted or restarted gang's pods ran and are charged)."""
    closed_pods: set[str] = field(default_factory=set)
    """UIDs of pods seen deleted: their intervals are final, late events are ignored."""
    pods: dict[str, PodCharge] = field(default_factory=dict)
    """Pod uid -> what budget accounting needs of it, for every pod of a Cadre Job (also
    of TrainingJobs already deleted), until its charge is settled and it is gone."""
    unscheduled: dict[str, dict[str, UnscheduledPod]] = field(default_factory=dict)
    """TrainingJob key -> pod uid -> its pods the scheduler could not place, and why."""
    unselected_pods: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """Pod uid -> (namespace, name, TrainingJob key) of pods that lost the label the pod
    watch selects on (someone removed it) but still exist: read by name until they are
    gone, so they stay charged and their finalizer is still released."""
    spend: dict[str, Spend] = field(default_factory=dict)
    modeldeployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)
    """Deployments of ModelDeployments, by "namespace/name" of the Deployment."""
    autoscalers: dict[str, AutoscalerRecord] = field(default_factory=dict)
    serving_pods: dict[str, dict[str, ServingPod]] = field(default_factory=dict)
    """ModelDeployment key -> pod uid -> what the pod says of its model; pods that exist."""
    """Team -> its spend state for the admission core (from the budget writer)."""
    seen_at: dict[tuple[Kind, str], float] = field(default_factory=dict)
    """When each record was last updated (for relists)."""
    pod_seen_at: dict[str, float] = field(default_factory=dict)
    superseded: dict[tuple[Kind, str], str] = field(default_factory=dict)
    """The resourceVersion each record's last own write replaced (see the module)."""
    _teams: dict[str, TeamResolution] = field(default_factory=dict, repr=False, compare=False)
    """Namespace -> its team, as resolved since the budgets' scopes or the namespaces'
    labels last changed (asked per reconcile, status write and pass: at 1,000 budgets a
    resolution against every scope took a millisecond, and 50,000 of them after a resync
    held the event loop for 25 s)."""
    _scopes: list[BudgetScope] | None = field(default=None, repr=False, compare=False)
    """Every budget's scope, since the budgets last changed (None: to compute)."""

    def _touch(self, kind: Kind, key: str) -> None:
        self.seen_at[(kind, key)] = self.clock()

    def _stale(self, kind: Kind, key: str, obj: Mapping[str, Any]) -> bool:
        """True for a watch event older than this replica's own write (see the module)."""
        version = _resource_version(obj)
        return bool(version) and self.superseded.get((kind, key)) == version

    def _forget(self, kind: Kind, key: str) -> None:
        self.seen_at.pop((kind, key), None)
        self.superseded.pop((kind, key), None)

    # -- Pods (budget accounting) -------------------------------------------------------
    def upsert_pod(self, charge: PodCharge) -> None:
        old = self.pods.get(charge.uid)
        if old is not None and old.gone:
            return  # a late event of a pod seen deleted
        self.pods[charge.uid] = charge
        self.pod_seen_at[charge.uid] = self.clock()

    def set_unscheduled(self, key: str, uid: str, pod: UnscheduledPod | None) -> bool:
        """Record what the scheduler says of pod `uid` of workload `key` (None: placed,
        gone, or not tried yet); True when that changed."""
        pods = self.unscheduled.get(key) or {}
        if pods.get(uid) == pod:
            return False
        if pod is None:
            pods.pop(uid, None)
        else:
            pods[uid] = pod
        if pods:
            self.unscheduled[key] = pods
        else:
            self.unscheduled.pop(key, None)
        return True

    def drop_unscheduled(self, uid: str) -> str | None:
        """Forget pod `uid` (found gone without a watch event); the workload key it waited
        for, if it did."""
        for key, pods in self.unscheduled.items():
            if uid in pods:
                self.set_unscheduled(key, uid, None)
                return key
        return None

    def unscheduled_of(self, key: str) -> tuple[UnscheduledPod, ...]:
        return tuple((self.unscheduled.get(key) or {}).values())

    def drop_pod(self, uid: str) -> None:
        self.pods.pop(uid, None)
        self.pod_seen_at.pop(uid, None)
        self.unselected_pods.pop(uid, None)

    def pods_missing_from(self, listed: Iterable[str], listed_at: float) -> list[PodCharge]:
        """Pods the store holds that a list sent at `listed_at` no longer has (deleted
        while a watch was cut): they are gone; their charge is still to be settled."""
        present = set(listed)
        return [
            pod
            for uid, pod in self.pods.items()
            if uid not in present
            and not pod.gone
            and self.pod_seen_at.get(uid, float("-inf")) < listed_at
        ]

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
        """True if a container of the job is still counted as running. (Asked of every
        TrainingJob in every pass, most of which have no pod: no tuple is built.)"""
        pods = self.pod_usage.get(key)
        if not pods:
            return False
        return any(u.interval.end is None for usages in pods.values() for u in usages)

    def pods_present(self, key: str) -> bool:
        """True while a pod of the job still exists (stopped or not, held by a finalizer):
        the Job controller fails a resumed Job at once if any pod it owns is Failed with
        an exit code its podFailurePolicy matches (`getFailJobMessage` reads every pod,
        not only those it still tracks), so a suspended gang's stopped pods must be gone
        before the Job runs again."""
        pods = self.pods
        return any(
            (charge := pods.get(uid)) is not None and not charge.gone
            for uid in self.pod_usage.get(key) or ()
        )

    # -- ResourceBudgets -------------------------------------------------------------
    def upsert_budget(
        self, budget: Mapping[str, Any], *, written_from: str | None = None, read: bool = False
    ) -> bool:
        """True when the spec changed. `written_from`: the resourceVersion this replica's
        write (whose answer `budget` is) replaced. `read`: the answer of a GET (as new as
        it gets), never stale."""
        name = str(budget["metadata"]["name"])
        if written_from is None and not read and self._stale("budget", name, budget):
            return False
        if _answer_of_gone(self.budgets, name, budget, written_from, read):
            return False
        old = self.budgets.get(name)
        self.budgets[name] = _slim(budget)
        self._touch("budget", name)
        if written_from is not None:
            self.superseded[("budget", name)] = written_from
        changed = old is None or old.get("spec") != budget.get("spec")
        if changed:
            self._teams_changed(scopes=True)
        return changed

    def delete_budget(self, name: str) -> bool:
        self.spend.pop(name, None)
        self._forget("budget", name)
        self._teams_changed(scopes=True)
        return self.budgets.pop(name, None) is not None

    def team_of(self, namespace: str) -> str | None:
        """The team (ResourceBudget) of a namespace, as the store knows the budgets and
        the namespace's labels."""
        return self.team_resolution(namespace).team

    def team_resolution(self, namespace: str) -> TeamResolution:
        """The team of a namespace and the other budgets that claim it (kept until a
        budget's scope or a namespace's labels change)."""
        found = self._teams.get(namespace)
        if found is None:
            if self._scopes is None:
                self._scopes = [budget_scope(b) for b in self.budgets.values()]
            found = resolve_team(namespace, self.namespaces.get(namespace), self._scopes)
            self._teams[namespace] = found
        return found

    def _teams_changed(self, *, scopes: bool) -> None:
        """Forget every namespace's team; with `scopes`, the budgets' scopes too."""
        self._teams.clear()
        if scopes:
            self._scopes = None

    # -- Nodes -----------------------------------------------------------------------
    def upsert_node(self, node: Mapping[str, Any]) -> bool:
        name = str(node["metadata"]["name"])
        record = node_record(node)
        old = self.nodes.get(name)
        self.nodes[name] = record
        self._touch("node", name)
        return old != record

    def set_bound_pod(self, uid: str, pod: BoundPod | None) -> bool:
        """A pod bound (or changed), or gone or finished (None); True when it changes what
        a node has free."""
        if pod is None:
            return self.bound_pods.pop(uid, None) is not None
        old = self.bound_pods.get(uid)
        self.bound_pods[uid] = pod
        return old != pod

    def delete_node(self, name: str) -> bool:
        self._forget("node", name)
        return self.nodes.pop(name, None) is not None

    # -- Namespaces ------------------------------------------------------------------
    def upsert_namespace(self, namespace: Mapping[str, Any]) -> bool:
        name = str(namespace["metadata"]["name"])
        labels = dict((namespace.get("metadata") or {}).get("labels") or {})
        old = self.namespaces.get(name)
        self.namespaces[name] = labels
        self._touch("namespace", name)
        if old != labels:
            self._teams_changed(scopes=False)
        return old != labels

    def delete_namespace(self, name: str) -> bool:
        self._forget("namespace", name)
        self._teams_changed(scopes=False)
        return self.namespaces.pop(name, None) is not None

    # -- TrainingJobs ----------------------------------------------------------------
    def upsert_trainingjob(
        self, tj: Mapping[str, Any], *, written_from: str | None = None, read: bool = False
    ) -> bool:
        """Store the object; True when its spec, generation, uid or deletion changed (a
        status-only change never wakes the loop). `written_from`, `read`: see
        upsert_budget."""
        key = key_of(tj)
        if written_from is None and not read and self._stale("trainingjob", key, tj):
            return False
        if _answer_of_gone(self.trainingjobs, key, tj, written_from, read):
            return False
        old = self.trainingjobs.get(key)
        self.trainingjobs[key] = _slim(tj)
        self._touch("trainingjob", key)
        if written_from is not None:
            self.superseded[("trainingjob", key)] = written_from
        self.deleted_trainingjobs.pop(key, None)
        uid = (tj.get("metadata") or {}).get("uid")
        job = self.jobs.get(key)
        if job is not None and job.owner_uid is not None and job.owner_uid != uid:
            # A new TrainingJob of the same name: the Job of the earlier one is not its.
            self.jobs.pop(key)
            self.expectations.pop(key, None)
        if old is None:
            return True
        om, nm = old.get("metadata") or {}, tj.get("metadata") or {}
        return (
            om.get("uid") != nm.get("uid")
            or om.get("generation") != nm.get("generation")
            or om.get("deletionTimestamp") != nm.get("deletionTimestamp")
            or old.get("spec") != tj.get("spec")
        )

    def delete_trainingjob(self, key: str, uid: str | None = None) -> bool:
        """The TrainingJob is gone: its quota is free at once (the snapshot takes
        TrainingJobs only). Its Job stays in the store until its own deletion is seen, so
        the reconciler can stop it now rather than after the garbage collector's round."""
        current = self.trainingjobs.get(key)
        if (
            uid is not None
            and current is not None
            and (current.get("metadata") or {}).get("uid") != uid
        ):
            return False  # the DELETED event of an earlier object of the same name
        self.admitted_at.pop(key, None)
        self.unscheduled.pop(key, None)
        for pod_uid in self.pod_usage.pop(key, None) or ():
            self.closed_pods.discard(pod_uid)
        self._forget("trainingjob", key)
        gone = self.trainingjobs.pop(key, None)
        if gone is not None:
            gone_uid = str((gone.get("metadata") or {}).get("uid") or "")
            job = self.jobs.get(key)
            if job is not None and job.owner_uid == gone_uid:  # its Job may still run
                self.deleted_trainingjobs[key] = (gone_uid, self.clock())
        return gone is not None

    # -- Jobs ------------------------------------------------------------------------
    def upsert_job(self, job: Mapping[str, Any]) -> bool:
        """True when the Job's admission state changed (suspended, finished, replaced).
        A Job of an earlier TrainingJob of the same name, or one Cadre retired, is
        ignored."""
        key = job_key(job)
        record = job_record(job)
        if record.uid in self.retired_jobs:
            return False
        tj = self.trainingjobs.get(key)
        if tj is not None and (tj.get("metadata") or {}).get("uid") not in owner_uids(job):
            return False
        was_admitted = self.admitted(key)
        old = self.jobs.get(key)
        self.jobs[key] = record
        self._touch("job", key)
        expected = self.expectations.get(key)
        if expected is not None and (
            expected.uid != record.uid or record.running or record.finished
        ):
            del self.expectations[key]  # seen (or replaced): the watch has caught up
        stopping = self.stopping.get(key)
        if stopping is not None and (stopping != record.uid or not record.running):
            del self.stopping[key]  # stopped (or replaced)
        return (
            old is None
            or old.uid != record.uid
            or old.finished != record.finished
            or old.stopping != record.stopping
            or was_admitted != self.admitted(key)
        )

    def job_seen_since(self, key: str, uid: str, since: float) -> bool:
        """The watch has shown the Job `uid` of `key` since `since` (the store's clock):
        the answer of a write sent at `since` is no newer than that, and must not replace
        it. (A create's answer handled after the watch had shown the Job finished once
        made a finished Job look running again, holding its quota and its TrainingJob
        short of Succeeded until a resync: S1, with Cadre's own watches.)"""
        record = self.jobs.get(key)
        return (
            record is not None
            and record.uid == uid
            and self.seen_at.get(("job", key), float("-inf")) >= since
        )

    def retire_job(self, key: str, uid: str) -> None:
        """Forget the Job `uid` of `key` for good (Cadre deleted it): late events of it
        are ignored until its deletion is seen."""
        self._drop_job(key, uid)
        self.retired_jobs[uid] = self.clock()

    def delete_job(self, key: str, uid: str | None = None) -> bool:
        """The Job was seen deleted (a DELETED event)."""
        if uid is not None:
            self.retired_jobs.pop(uid, None)  # nothing late can come of it any more
        return self._drop_job(key, uid)

    def _drop_job(self, key: str, uid: str | None) -> bool:
        expected = self.expectations.get(key)
        if expected is not None and (uid is None or expected.uid == uid):
            del self.expectations[key]
        if uid is None or self.stopping.get(key) == uid:
            self.stopping.pop(key, None)
        old = self.jobs.get(key)
        if old is None or (uid is not None and old.uid != uid):
            return False
        del self.jobs[key]
        self._forget("job", key)
        tombstone = self.deleted_trainingjobs.get(key)
        if tombstone is not None and key not in self.trainingjobs:
            del self.deleted_trainingjobs[key]
        return True

    # -- Admission ---------------------------------------------------------------------
    def expect_admitted(self, key: str, uid: str) -> None:
        """The Job `uid` of `key` was unsuspended (or listed running): count it admitted
        until the watch shows it (see the module)."""
        self.expectations[key] = Expectation(uid, self.clock() + EXPECTATION_SECONDS)

    def unexpect(self, key: str) -> None:
        """This replica suspended the Job of `key`: no admission to expect any more."""
        self.expectations.pop(key, None)
        self.stopping.pop(key, None)

    def mark_stopping(self, key: str, uid: str) -> None:
        """This replica is revoking the admission of the Job `uid` (see stopping_by_cadre)."""
        self.stopping[key] = uid

    def admitted(self, key: str) -> bool:
        """The TrainingJob `key` holds its quota: its status holds an admission (whose Job
        Cadre creates, or created and it has not finished), or its Job runs as observed
        or expected (a Job running without an admission holds what it uses until it is
        stopped: never over-admit)."""
        job = self.jobs.get(key)
        if job is not None and not job.finished and self.has_admission(key):
            return True
        tj = self.trainingjobs.get(key)
        if (
            tj is not None
            and pending_admission(tj.get("status")) is not None
            and (job is None or not (job.finished and self.has_admission(key)))
        ):
            return True  # its Job is on its way (or someone else's is in its place)
        expected = self.expectations.get(key)
        if expected is not None and self.clock() < expected.until:
            return True
        return job is not None and job.running

    def awaits_job(self, key: str) -> bool:
        """Admitted, and its Job is to be created (or was deleted since): the status holds
        an admission and no Job of the TrainingJob is in the store."""
        tj = self.trainingjobs.get(key)
        return (
            key not in self.jobs
            and tj is not None
            and not (tj.get("metadata") or {}).get("deletionTimestamp")
            and pending_admission(tj.get("status")) is not None
        )

    def has_admission(self, key: str) -> bool:
        """The TrainingJob's status admits its current Job (`holds_admission`)."""
        job = self.jobs.get(key)
        tj = self.trainingjobs.get(key)
        if job is None or tj is None:
            return False
        return holds_admission(tj.get("status"), job)

    def runs_unadmitted(self, key: str) -> bool:
        """The Job of `key` runs (or is expected to) without its TrainingJob's admission:
        someone made or unsuspended it, or this replica's own stop of it is on its way."""
        job = self.jobs.get(key)
        if job is None or job.finished or key not in self.trainingjobs:
            return False
        expected = self.expectations.get(key)
        expected_running = expected is not None and self.clock() < expected.until
        return (job.running or expected_running) and not self.has_admission(key)

    def reconciler_has_work(self, key: str) -> bool:
        """Whether the TrainingJob reconciler has anything to do for `key`: not for one
        that waits (no Job, no admission, not suspended, not finished), whose status the
        loop and the queue writer write. At 10,000 waiting, each of their status writes
        comes back as a watch event, and reconciling each for nothing kept the workers
        from the jobs that finished (S1)."""
        tj = self.trainingjobs.get(key)
        if tj is None or key in self.jobs:
            return True
        status = tj.get("status") or {}
        return bool(
            status.get("admission")
            or status.get("phase") in ("Suspended", "Succeeded", "Failed")
            or (tj.get("spec") or {}).get("suspend")
            or (tj.get("metadata") or {}).get("deletionTimestamp")
        )

    def stray(self, key: str) -> bool:
        """The TrainingJob has a Job, not finished and not being deleted, that no admission
        names: Cadre creates Jobs only at admission, so it is one left from an earlier
        Cadre (which created them suspended, to wait), one whose admission was revoked
        and whose deletion failed, or one someone else made. It is deleted."""
        job = self.jobs.get(key)
        if job is None or job.finished or job.deleting or key not in self.trainingjobs:
            return False
        return not self.has_admission(key)

    def stopping_by_cadre(self, key: str) -> bool:
        """This replica revoked the admission of `key` and is stopping its Job (a
        preemption or spec.suspend): a Job still running then is no user's doing."""
        job = self.jobs.get(key)
        return job is not None and self.stopping.get(key) == job.uid

    # -- ModelDeployments and their children ---------------------------------------------
    def upsert_modeldeployment(
        self, md: Mapping[str, Any], *, written_from: str | None = None, read: bool = False
    ) -> bool:
        """Store the object; True when its spec, generation, uid, deletion or admission
        changed. `written_from`, `read`: see upsert_budget."""
        key = key_of(md)
        if written_from is None and not read and self._stale("modeldeployment", key, md):
            return False
        if _answer_of_gone(self.modeldeployments, key, md, written_from, read):
            return False
        old = self.modeldeployments.get(key)
        self.modeldeployments[key] = _slim(md)
        self._touch("modeldeployment", key)
        if written_from is not None:
            self.superseded[("modeldeployment", key)] = written_from
        if old is None:
            return True
        om, nm = old.get("metadata") or {}, md.get("metadata") or {}
        return (
            om.get("uid") != nm.get("uid")
            or om.get("generation") != nm.get("generation")
            or om.get("deletionTimestamp") != nm.get("deletionTimestamp")
            or old.get("spec") != md.get("spec")
            # Its admission is its status (no Job carries it): a change of it, seen late
            # or after an older event, changes what it holds.
            or (old.get("status") or {}).get("admission")
            != (md.get("status") or {}).get("admission")
        )

    def delete_modeldeployment(self, key: str, uid: str | None = None) -> bool:
        """Gone: its admission goes with it; pods that still run are still counted
        (`serving_running`) until they are gone."""
        current = self.modeldeployments.get(key)
        if (
            uid is not None
            and current is not None
            and (current.get("metadata") or {}).get("uid") != uid
        ):
            return False
        self._forget("modeldeployment", key)
        self.admitted_at.pop(serving_key(key), None)
        return self.modeldeployments.pop(key, None) is not None

    def upsert_deployment(self, obj: Mapping[str, Any]) -> bool:
        """True when what it runs changed (replicas, pods, readiness, template)."""
        key = key_of(obj)
        record = deployment_record(obj)
        old = self.deployments.get(key)
        self.deployments[key] = record
        self._touch("deployment", key)
        return old != record

    def delete_deployment(self, key: str) -> bool:
        self._forget("deployment", key)
        return self.deployments.pop(key, None) is not None

    def upsert_autoscaler(self, obj: Mapping[str, Any]) -> bool:
        key = key_of(obj)
        record = autoscaler_record(obj)
        old = self.autoscalers.get(key)
        self.autoscalers[key] = record
        self._touch("autoscaler", key)
        return old != record

    def delete_autoscaler(self, key: str) -> bool:
        self._forget("autoscaler", key)
        return self.autoscalers.pop(key, None) is not None

    def upsert_serving_pod(self, key: str, pod: ServingPod) -> bool:
        """A pod of ModelDeployment `key`; True when whether it runs or is ready changed."""
        pods = self.serving_pods.setdefault(key, {})
        old = pods.get(pod.uid)
        pods[pod.uid] = pod
        return old is None or old.ready != pod.ready or old.gone != pod.gone

    def drop_serving_pod(self, uid: str) -> str | None:
        """The pod is gone; returns the key of its ModelDeployment (None if unknown)."""
        for key, pods in self.serving_pods.items():
            if pods.pop(uid, None) is not None:
                if not pods:
                    del self.serving_pods[key]
                return key
        return None

    def serving_running(self, key: str) -> int:
        """Pods of ModelDeployment `key` that exist (terminating ones included: they hold
        their GPUs until they are gone)."""
        return len(self.serving_pods.get(key) or {})

    def deployment_of(self, namespace: str, name: str, owner_uid: str) -> DeploymentRecord | None:
        """The Deployment `name` if the ModelDeployment `owner_uid` controls it."""
        record = self.deployments.get(f"{namespace}/{name}")
        return record if record is not None and record.owner_uid == owner_uid else None

    def autoscaler_of(self, namespace: str, name: str, owner_uid: str) -> AutoscalerRecord | None:
        """The HorizontalPodAutoscaler `name` if the ModelDeployment `owner_uid` controls it."""
        record = self.autoscalers.get(f"{namespace}/{name}")
        return record if record is not None and record.owner_uid == owner_uid else None

    # -- Relists -----------------------------------------------------------------------
    def merge_listing(
        self, kind: Kind, items: Iterable[Mapping[str, Any]], listed_at: float
    ) -> bool:
        """Merge a consistent list of every object of `kind`, sent at `listed_at` (this
        store's clock): records not updated since are replaced by the listed object, or
        dropped when it is no longer listed. True when an admission decision may change.
        (A Job listed running counts as admitted until the watch agrees.) A list read in
        pages is merged page by page (`merge_listed`), then `drop_unlisted`."""
        listed: set[str] = set()
        changed = self.merge_listed(kind, items, listed_at, listed)
        return self.drop_unlisted(kind, listed, listed_at) or changed

    def merge_listed(
        self,
        kind: Kind,
        items: Iterable[Mapping[str, Any]],
        listed_at: float,
        listed: set[str],
    ) -> bool:
        """Merge one page of a list (see merge_listing); adds its keys to `listed`."""
        changed = False
        for obj in items:
            key = self._key(kind, obj)
            if kind == "job":
                if job_record(obj).uid in self.retired_jobs:
                    continue
                tj = self.trainingjobs.get(key)
                if tj is not None and (tj.get("metadata") or {}).get("uid") not in owner_uids(obj):
                    continue  # a Job of an earlier TrainingJob of the same name
            listed.add(key)
            if self.seen_at.get((kind, key), float("-inf")) >= listed_at:
                continue  # updated after the list was sent: as new or newer
            changed |= self.upsert(kind, obj)
            if kind == "job":
                record = job_record(obj)
                if record.running:  # until the watch agrees (a lagging event may not)
                    self.expect_admitted(key, record.uid)
        return changed

    def drop_unlisted(self, kind: Kind, listed: set[str], listed_at: float) -> bool:
        """The end of a list: drop what it no longer has (see merge_listing)."""
        changed = False
        for key in self.keys(kind) - listed:
            if self.seen_at.get((kind, key), float("-inf")) < listed_at:
                changed |= self.delete(kind, key)
        if kind == "job":
            now = self.clock()
            for uid, when in list(self.retired_jobs.items()):
                if now - when > FORGET_AFTER_SECONDS:
                    del self.retired_jobs[uid]
            for key, (_, when) in list(self.deleted_trainingjobs.items()):
                if key not in self.jobs or now - when > FORGET_AFTER_SECONDS:
                    del self.deleted_trainingjobs[key]
        return changed

    def _key(self, kind: Kind, obj: Mapping[str, Any]) -> str:
        if kind in ("trainingjob", "modeldeployment", "deployment", "autoscaler"):
            return key_of(obj)
        if kind == "job":
            return job_key(obj)
        return str((obj.get("metadata") or {}).get("name", ""))

    def keys(self, kind: Kind) -> set[str]:
        """The keys of the records of `kind`."""
        if kind == "budget":
            return set(self.budgets)
        if kind == "node":
            return set(self.nodes)
        if kind == "namespace":
            return set(self.namespaces)
        if kind == "trainingjob":
            return set(self.trainingjobs)
        if kind == "modeldeployment":
            return set(self.modeldeployments)
        if kind == "deployment":
            return set(self.deployments)
        if kind == "autoscaler":
            return set(self.autoscalers)
        return set(self.jobs)

    def upsert(self, kind: Kind, obj: Mapping[str, Any]) -> bool:
        """Store an object of `kind` (see the upsert_* methods)."""
        if kind == "budget":
            return self.upsert_budget(obj)
        if kind == "node":
            return self.upsert_node(obj)
        if kind == "namespace":
            return self.upsert_namespace(obj)
        if kind == "trainingjob":
            return self.upsert_trainingjob(obj)
        if kind == "modeldeployment":
            return self.upsert_modeldeployment(obj)
        if kind == "deployment":
            return self.upsert_deployment(obj)
        if kind == "autoscaler":
            return self.upsert_autoscaler(obj)
        return self.upsert_job(obj)

    def delete(self, kind: Kind, key: str) -> bool:
        """An object of `kind` is gone (see the delete_* methods)."""
        if kind == "budget":
            return self.delete_budget(key)
        if kind == "node":
            return self.delete_node(key)
        if kind == "namespace":
            return self.delete_namespace(key)
        if kind == "trainingjob":
            return self.delete_trainingjob(key)
        if kind == "modeldeployment":
            return self.delete_modeldeployment(key)
        if kind == "deployment":
            return self.delete_deployment(key)
        if kind == "autoscaler":
            return self.delete_autoscaler(key)
        return self.delete_job(key)

    # -- Bounded memory ------------------------------------------------------------------
    def sizes(self) -> dict[str, int]:
        """How many entries each table holds (a leak shows here first)."""
        return {
            "budgets": len(self.budgets),
            "nodes": len(self.nodes),
            "bound_pods": len(self.bound_pods),
            "namespaces": len(self.namespaces),
            "trainingjobs": len(self.trainingjobs),
            "jobs": len(self.jobs),
            "expectations": len(self.expectations),
            "stopping": len(self.stopping),
            "admitted_at": len(self.admitted_at),
            "retired_jobs": len(self.retired_jobs),
            "deleted_trainingjobs": len(self.deleted_trainingjobs),
            "pod_usage": len(self.pod_usage),
            "closed_pods": len(self.closed_pods),
            "pods": len(self.pods),
            "unselected_pods": len(self.unselected_pods),
            "spend": len(self.spend),
            "modeldeployments": len(self.modeldeployments),
            "deployments": len(self.deployments),
            "autoscalers": len(self.autoscalers),
            "serving_pods": len(self.serving_pods),
            "seen_at": len(self.seen_at),
            "superseded": len(self.superseded),
        }
