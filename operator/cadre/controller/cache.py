"""The cache: the store (`cadre.core.cluster.store`) fed by watch events and relists.

- `apply_*`: one watch event into the store (Kopf's handlers and Cadre's own watches of
  TrainingJobs, Jobs and pods call these and nothing else);
- `fill()`: the first listing of everything, before any replica decides anything;
- `resync()`: a relist, merged by time (see the store), that drops what is gone:
  objects deleted while a watch was cut, pods included (they are settled as gone). Kopf
  relists a kind after its watch expired (410 Gone) and then sends no DELETED events for
  what went meanwhile: its listing shows here as events without a type, and 2 s after
  the last of them Cadre relists that kind itself. Every replica also relists everything
  every `controller.resyncSeconds` (or, when a relist is long, nine times its length
  after it: RESYNC_DUTY), and relists the kinds Kopf watches (KOPF_KINDS) at once when
  the API server is reachable again after an outage (the client says so) and when the
  process itself stalled for more than 5 s (stopped, starved: Kopf's watches may have
  expired meanwhile, and an empty relist of Kopf's shows no events at all). Cadre's own
  watches (TrainingJobs, Jobs, pods) need no such relist: a cut stream goes on from its
  resourceVersion and an expired one lists again (`watches.py`). Relisting them too
  after every failed request fed an overloaded API server a relist of 16,000 pods each
  time it recovered: S3 relisted back to back for its last ten minutes;
- `sync_for_takeover()`: what a new leader reads before its first decision: a consistent
  list of TrainingJobs (their admissions), Jobs, nodes, budgets and ModelDeployments, so
  that nothing the old leader admitted in its last seconds is unseen (a lagging watch
  could otherwise make quota look free). A kind already listed whole by a list sent
  after the Lease was taken (the first fill, when the Lease came at once) is not listed
  again: that list saw everything the old leader wrote.

After each merge, a change that can alter a decision wakes the admission loop, and every
TrainingJob is handed to the reconciler (level-based: it brings each to what is observed).
After each resync the writers drop what they still keep for workloads the cache no
longer holds (`resynced`: a deletion whose forgetting was missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

import structlog
from prometheus_client import Counter, Gauge

from cadre.controller.bound_pods import BoundPodWatch
from cadre.controller.client import ApiClient, ApiError, NotLeaderError, job_path
from cadre.controller.tasks import BackgroundTask, wait_at_most
from cadre.controller.watches import ListWatch
from cadre.core.accounting import PodCharge, PodUsage, pod_charge
from cadre.core.api.config import OperatorConfig
from cadre.core.api.names import (
    LABEL_MANAGED_BY,
    LABEL_MODELDEPLOYMENT,
    LABEL_TRAININGJOB,
    MANAGED_BY,
    MANAGED_SELECTOR,
)
from cadre.core.cluster.billing import payer_of
from cadre.core.cluster.store import Kind, Store, job_key, serving_key
from cadre.core.objects import key_of, parse_api_time
from cadre.core.serving.observed import serving_pod
from cadre.core.workloads.scheduling import UnscheduledPod, unbound, unscheduled_message

log = structlog.get_logger("cadre.cache")

RESYNCS = Counter("cadre_resyncs_total", "Relists of the cluster merged into the cache.")
RESYNC_DROPPED = Counter(
    "cadre_resync_dropped_total",
    "Objects a relist found gone while the cache still had them (missed DELETED events).",
    ["kind"],
)
UNSELECTED_JOBS = Counter(
    "cadre_jobs_unlabelled_total",
    "Cadre Jobs that lost their cadre.dev/trainingjob label (deleted and made anew; they "
    "hold their quota until gone).",
)
UNSELECTED = Counter(
    "cadre_pods_unlabelled_total",
    "Pods of Cadre workloads that lost their labels (cadre.dev/trainingjob or "
    "cadre.dev/modeldeployment, or app.kubernetes.io/managed-by, which the pod watch "
    "selects on): still charged, read by name until they are gone.",
)
CACHE_OBJECTS = Gauge(
    "cadre_cache_objects", "Entries in each table of the operator's cache.", ["table"]
)

BUDGETS: Final = "/apis/cadre.dev/v1alpha1/resourcebudgets"
TRAININGJOBS: Final = "/apis/cadre.dev/v1alpha1/trainingjobs"
NODES: Final = "/api/v1/nodes"
NAMESPACES: Final = "/api/v1/namespaces"
JOBS: Final = "/apis/batch/v1/jobs"
MODELDEPLOYMENTS: Final = "/apis/cadre.dev/v1alpha1/modeldeployments"
DEPLOYMENTS: Final = "/apis/apps/v1/deployments"
AUTOSCALERS: Final = "/apis/autoscaling/v2/horizontalpodautoscalers"
PODS: Final = "/api/v1/pods"
PODS_IN: Final = "/api/v1/namespaces/{namespace}/pods"

LISTING_SETTLE_SECONDS: Final = 2.0
"""Relist a kind this long after the last event of a listing of Kopf's (its relist)."""
STALL_SECONDS: Final = 5.0
"""A tick of the resync task this late means the process did not run meanwhile."""
_TICK_SECONDS: Final = 1.0
RESYNC_DUTY: Final = 0.1
"""The periodic relists take at most this share of the time: the next one starts
`resyncSeconds` after the last ended, or nine times its length if that is longer (at
50,000 TrainingJobs on a busy API server a relist took 93 s, and one every 300 s took a
third of what the API server could serve; the watches keep the cache current meanwhile)."""
UNSELECTED_POLL_SECONDS: Final = 5.0
"""Pods and Jobs that left their watch's selection are read by name this often (at most
`accounting.refreshSeconds` apart): they are few, and one deleted is released soon."""

Listed = Kind | Literal["pod"]
"""What a resync lists: the store's kinds, and pods (their own table, `_merge_pods`)."""

_LISTS: Final[tuple[tuple[Kind, str, str | None], ...]] = (
    ("budget", BUDGETS, None),
    ("node", NODES, None),
    ("namespace", NAMESPACES, None),
    ("trainingjob", TRAININGJOBS, None),
    ("job", JOBS, LABEL_TRAININGJOB),
    ("modeldeployment", MODELDEPLOYMENTS, None),
    ("deployment", DEPLOYMENTS, LABEL_MODELDEPLOYMENT),
    ("autoscaler", AUTOSCALERS, LABEL_MODELDEPLOYMENT),
)
SERVING_KINDS: Final = frozenset({"modeldeployment", "deployment", "autoscaler"})
KOPF_KINDS: Final[frozenset[Kind]] = frozenset(
    {"budget", "node", "namespace", "modeldeployment", "deployment", "autoscaler"}
)
"""The kinds Kopf watches (handlers/): relisted after an outage or a stall (see above)."""
_TAKEOVER_KINDS: Final = frozenset({"trainingjob", "job", "node", "budget", "modeldeployment"})
"""What decides admission, read afresh by a new leader (`sync_for_takeover`)."""


def _selected(labels: Mapping[str, Any]) -> bool:
    """The pod watch's selection (MANAGED_SELECTOR): a pod of a Cadre workload."""
    return labels.get(LABEL_MANAGED_BY) == MANAGED_BY


def _open(usages: tuple[PodUsage, ...]) -> bool:
    """A container of the pod is still counted as running."""
    return any(u.interval.end is None for u in usages)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Cache(BackgroundTask):
    task_name = "cadre resync"

    def __init__(
        self,
        client: ApiClient,
        store: Store,
        config: OperatorConfig,
        *,
        changed: Callable[[], None],
        reconcile: Callable[[str], None],
        pod_changed: Callable[[PodCharge], None],
        forget: Callable[[str], None] = lambda key: None,
        resynced: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__()
        self.client = client
        self.store = store
        self.config = config
        self._changed = changed
        self._reconcile = reconcile
        self._pod_changed = pod_changed
        self._forget = forget
        """Called with the key of a TrainingJob that is gone (the writers forget it)."""
        self._resynced = resynced
        """Called after each resync: the writers drop what they keep for workloads the
        cache no longer holds (a forgetting missed is repaired here, level-based)."""
        self._gpu_resources = tuple(
            sorted({f.gpu_resource for f in config.flavors if f.gpu_resource})
        )
        self._trigger = asyncio.Event()
        self._wake = asyncio.Event()
        self._relisted: set[Kind] = set()
        """Kinds Kopf listed (again) since the last resync of them."""
        self._relisted_due = 0.0
        self._poll_soon = False
        self._counted_unselected: set[str] = set()
        """Pods and Jobs counted in cadre_*_unlabelled_total (once each)."""
        self._jobs_to_check: dict[str, str] = {}
        """TrainingJob key -> UID of its Job that left the Job watch's selection, to read
        by name until it is gone (see apply_job)."""
        self.filled = False
        self.last_resync: float | None = None
        self.bound_pods = (
            BoundPodWatch(client, store, changed=changed)
            if config.admission.node_placement
            else None
        )
        """Every bound pod of the cluster, for placement (admission.nodePlacement)."""
        self.versions: dict[Listed, str] = {}
        """The resourceVersion of the last listing of each kind (a watch starts there)."""
        self._listed_since: dict[Kind, float] = {}
        """Kind -> when its last complete listing was sent (monotonic; `sync_for_takeover`)."""
        self.watches = (
            self._list_watch("trainingjob", TRAININGJOBS, None, self.apply_trainingjob),
            self._list_watch("job", JOBS, LABEL_TRAININGJOB, self.apply_job),
            ListWatch(
                client,
                kind="pod",
                path=PODS,
                label_selector=MANAGED_SELECTOR,
                apply=self._apply_pod_event,
                relist=self._relist_pods,
                version=lambda: self.versions.get("pod"),
            ),
        )
        """TrainingJobs, their Jobs and the pods of Cadre's workloads, the busiest kinds,
        come through Cadre's own list-and-watch (`watches.py`), not Kopf's per-object
        workers: Kopf deep-copied every pod event to diff it, which took a sixth of the
        event loop in S3 (docs/benchmarks.md)."""

    def _list_watch(
        self,
        kind: Kind,
        path: str,
        selector: str | None,
        apply: Callable[[str | None, Mapping[str, Any]], None],
    ) -> ListWatch:
        """A watch of `kind` that starts from this cache's listing and lists through it."""

        async def relist() -> str:
            return await self.relist_for_watch(kind)

        return ListWatch(
            self.client,
            kind=kind,
            path=path,
            label_selector=selector,
            apply=apply,
            relist=relist,
            version=lambda: self.versions.get(kind),
        )

    # -- watch events --------------------------------------------------------------------
    def _listing(self, kind: Kind, event_type: str | None) -> None:
        """An event without a type is one of a listing of Kopf's: at its start, and after
        a watch expired (410), when it sends no DELETED events for what went meanwhile.
        Relist that kind once the listing is over (see the module)."""
        if event_type is None and self.filled:
            self._relisted.add(kind)
            self._relisted_due = time.monotonic() + LISTING_SETTLE_SECONDS
            self._wake.set()

    def apply_trainingjob(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        self._listing("trainingjob", event_type)
        key = key_of(obj)
        if event_type == "DELETED":
            uid = (obj.get("metadata") or {}).get("uid")
            changed = self.store.delete_trainingjob(key, uid=str(uid) if uid else None)
            if changed:
                self._forget(key)
        else:
            changed = self.store.upsert_trainingjob(obj)
        if self.store.reconciler_has_work(key):
            self._reconcile(key)
        if changed:
            self._changed()  # a waiting TrainingJob has no Job: the pass decides on it

    def apply_job(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        self._listing("job", event_type)
        key = job_key(obj)
        if event_type == "DELETED":
            uid = str((obj.get("metadata") or {}).get("uid") or "")
            record = self.store.jobs.get(key)
            if record is not None and record.uid == uid and not record.finished:
                # A Job that holds quota, DELETED by a watch that selects on its label: it
                # may only have left the selection (someone removed the label) and still
                # run. It keeps its quota until a read by name says it is gone
                # (poll_unselected): never over-admit.
                self._jobs_to_check[key] = uid
                self._poll_soon = True
                self._wake.set()
                return
            changed = self.store.delete_job(key, uid=uid or None)
        else:
            changed = self.store.upsert_job(obj)
        self._reconcile(key)
        if changed:
            self._changed()

    def apply_serving(
        self,
        kind: Literal["modeldeployment", "deployment", "autoscaler"],
        event_type: str | None,
        obj: Mapping[str, Any],
    ) -> None:
        """A ModelDeployment, or a Deployment or autoscaler of one, into the store; its
        ModelDeployment goes to the serving reconciler."""
        self._listing(kind, event_type)
        metadata = obj.get("metadata") or {}
        key = key_of(obj)
        if kind == "modeldeployment":
            owner = key
        else:
            name = (metadata.get("labels") or {}).get(LABEL_MODELDEPLOYMENT)
            owner = f"{metadata.get('namespace')}/{name}" if name else key
        if event_type == "DELETED":
            uid = metadata.get("uid")
            if kind == "modeldeployment":
                changed = self.store.delete_modeldeployment(key, uid=str(uid) if uid else None)
                if changed:
                    self._forget(serving_key(key))
            else:
                changed = self.store.delete(kind, key)
        else:
            changed = self.store.upsert(kind, obj)
        self._reconcile(serving_key(owner))
        if changed:
            self._changed()

    def apply(
        self, kind: Literal["budget", "node", "namespace"], event_type: str | None, obj: Any
    ) -> bool:
        """A ResourceBudget, Node or Namespace event into the store (named by its name);
        True when it can alter a decision (for a budget: its spec changed)."""
        self._listing(kind, event_type)
        name = str((obj.get("metadata") or {}).get("name"))
        if event_type == "DELETED":
            changed = self.store.delete(kind, name)
        else:
            changed = self.store.upsert(kind, obj)
        if changed:
            self._changed()
        return changed

    def apply_pod(
        self,
        obj: Mapping[str, Any],
        *,
        deleted: bool = False,
        event_type: str | None = "MODIFIED",
    ) -> None:
        """Keep a pod's running intervals: for its team's budget (every pod of a Cadre Job,
        also of a TrainingJob already deleted, until its charge is settled), and for its
        TrainingJob's GPU-hours and cost (pods of an earlier one of the same name are
        not its)."""
        metadata = obj.get("metadata") or {}
        uid = str(metadata.get("uid") or "")
        if not uid:
            return
        labels = metadata.get("labels") or {}
        known = self.store.unselected_pods.get(uid)
        if deleted and not metadata.get("deletionTimestamp") and uid in self.store.pods:
            # The watch selects on the label, and says DELETED (with the object as it was)
            # when an object leaves the selection: someone removed the label. A pod with
            # Cadre's finalizer is always deleted gracefully (deletionTimestamp first), so
            # this one is read by name to tell (poll_unselected): still there, it stays
            # charged and its finalizer is released when it goes.
            if known is None:
                self.store.unselected_pods[uid] = (
                    str(metadata.get("namespace")),
                    str(metadata.get("name")),
                    self._pod_key(self.store.pods[uid]),
                )
                self._poll_soon = True
                self._wake.set()
            return
        if known is not None and event_type is not None and _selected(labels):
            del self.store.unselected_pods[uid]  # a watch event: the watch has it again
        team, flavor = payer_of(obj, self.store, self.config)
        charge = pod_charge(
            obj,
            self._gpu_resources,
            team=team,
            flavor=flavor,
            gone_at=_utcnow() if deleted else None,
        )
        self.store.upsert_pod(charge)
        self._pod_changed(charge)
        unselected = self.store.unselected_pods.get(uid)
        namespace = str(metadata.get("namespace"))
        name = labels.get(LABEL_TRAININGJOB)
        served = labels.get(LABEL_MODELDEPLOYMENT)
        if unselected is not None:
            key = unselected[2]
        elif served is not None:
            key = serving_key(f"{namespace}/{served}")
        elif name is not None:
            key = f"{namespace}/{name}"
        else:
            # Selected, yet without its workload's label (someone removed it): charged
            # as before, under the workload it was last seen with.
            key = self._pod_key(charge)
            if uid not in self._counted_unselected:
                self._counted_unselected.add(uid)
                UNSELECTED.inc()
                log.warning("a pod lost its workload label", pod=metadata.get("name"))
        if key.startswith("md:"):
            self._apply_serving_pod(key, obj, charge, deleted=deleted)
            return
        tj = self.store.trainingjobs.get(key)
        if tj is None:
            return
        created = parse_api_time(metadata.get("creationTimestamp"))
        tj_created = parse_api_time(tj["metadata"].get("creationTimestamp"))
        if created is not None and tj_created is not None and created < tj_created:
            return
        # Every worker without a node counts as waiting (with native gang scheduling none
        # is bound until all can be), named with the scheduler's message once it has one.
        waiting = (
            UnscheduledPod(str(metadata.get("name")), unscheduled_message(obj))
            if not deleted and unbound(obj)
            else None
        )
        if self.store.set_unscheduled(key, uid, waiting):
            self._reconcile(key)  # its status says which workers wait, and why
        before = (self.store.pod_usage.get(key) or {}).get(uid, ())
        self.store.upsert_pod_usage(key, uid, charge.usages, final=deleted)
        after = (self.store.pod_usage.get(key) or {}).get(uid, ())
        stopped = _open(before) and not _open(after)
        if (stopped or deleted) and not self.store.pods_present(key):
            self._changed()  # a job Stopping (its last pods went) may be admitted now

    def _apply_serving_pod(
        self, key: str, obj: Mapping[str, Any], charge: PodCharge, *, deleted: bool
    ) -> None:
        """A pod of a ModelDeployment: its usage (for the ModelDeployment's cost) and what
        it says of the model; whether it exists decides what the ModelDeployment holds."""
        stored = key[len("md:") :]
        message = None if deleted else unscheduled_message(obj)
        name = str((obj.get("metadata") or {}).get("name"))
        # which replicas wait for a node, and why: admission.waitForPodsReady says so
        self.store.set_unscheduled(
            key, charge.uid, UnscheduledPod(name, message) if message else None
        )
        self.store.upsert_pod_usage(key, charge.uid, charge.usages, final=deleted)
        if deleted:
            changed = self.store.drop_serving_pod(charge.uid) is not None
        else:
            changed = self.store.upsert_serving_pod(stored, serving_pod(obj))
        self._reconcile(key)
        if changed:
            self._changed()

    def _apply_pod_event(self, event_type: str, obj: Mapping[str, Any]) -> None:
        self.apply_pod(obj, deleted=event_type == "DELETED", event_type=event_type)

    async def _relist_pods(self) -> str:
        """The pod watch cannot go on from where it was: relist pods, merged as a resync
        is (pods deleted meanwhile are settled as gone); the version to watch from."""
        pods: tuple[Listed] = ("pod",)
        await self.resync(kinds=pods)
        return self.versions.get("pod", "")

    def _pod_key(self, pod: PodCharge) -> str:
        """The TrainingJob key a pod's usage was kept under (its label, before it went)."""
        for key, pods in self.store.pod_usage.items():
            if pod.uid in pods:
                return key
        return f"{pod.namespace}/"

    async def poll_unselected(self) -> None:
        """Read each pod and Job that left the watch's selection by name. A pod still
        there without its label is applied like a watch event (counted once as
        unlabelled); gone, it is closed now and settled (see apply_pod). A Job still there
        without its label is Cadre's child tampered with: it holds its quota until it is
        gone, and the leader deletes it (by UID); the reconciler makes a new one, which
        waits for admission like any other."""
        self._poll_soon = False
        for key, uid in list(self._jobs_to_check.items()):
            await self._check_job(key, uid)
        for uid, (namespace, name, _) in list(self.store.unselected_pods.items()):
            obj = await self.client.get(f"{PODS_IN.format(namespace=namespace)}/{name}")
            if obj is not None and (obj.get("metadata") or {}).get("uid") == uid:
                labels = (obj.get("metadata") or {}).get("labels") or {}
                if _selected(labels):
                    del self.store.unselected_pods[uid]  # labelled (again): the watch has it
                    self._counted_unselected.discard(uid)
                elif uid not in self._counted_unselected:
                    self._counted_unselected.add(uid)
                    UNSELECTED.inc()
                    log.warning("a pod lost its app.kubernetes.io/managed-by label", pod=name)
                self.apply_pod(obj, event_type=None)
                continue
            self._counted_unselected.discard(uid)
            pod = self.store.pods.get(uid)
            self.store.unselected_pods.pop(uid, None)
            if pod is not None:
                self.apply_pod_gone(pod)

    async def _check_job(self, key: str, uid: str) -> None:
        namespace, name = key.split("/", 1)
        obj = await self.client.get(job_path(namespace, name))
        metadata = (obj or {}).get("metadata") or {}
        if obj is None or metadata.get("uid") != uid:
            del self._jobs_to_check[key]
            self._counted_unselected.discard(uid)
            if self.store.delete_job(key, uid=uid):
                self._changed()
            self._reconcile(key)
            return
        if LABEL_TRAININGJOB in (metadata.get("labels") or {}):
            del self._jobs_to_check[key]  # back in the selection: the watch has it
            self._counted_unselected.discard(uid)
            if self.store.upsert_job(obj):
                self._changed()
            return
        if uid not in self._counted_unselected:
            self._counted_unselected.add(uid)
            UNSELECTED_JOBS.inc()
            log.warning("a Job lost its cadre.dev/trainingjob label: deleting it", job=key)
        if not metadata.get("deletionTimestamp"):
            # Only the leader writes: a standby keeps counting it until it is gone.
            with contextlib.suppress(NotLeaderError):
                await self.client.delete(job_path(namespace, name), uid=uid)
                self._poll_soon = True  # read it again at the next tick: gone, it is dropped

    def apply_pod_gone(self, pod: PodCharge) -> None:
        """A pod found gone by a read (not by a watch event): closed now, to be settled."""
        gone = replace(pod.closed_at(_utcnow()) if pod.running() else pod, gone=True)
        self.store.upsert_pod(gone)
        self._pod_changed(gone)
        served = self.store.drop_serving_pod(pod.uid)
        if served is not None:
            self._reconcile(serving_key(served))
            self._changed()
        waited = self.store.drop_unscheduled(pod.uid)
        if waited is not None:
            self._reconcile(waited)  # its status no longer names this pod as waiting

    # -- relists -------------------------------------------------------------------------
    async def _merge(self, kind: Kind, path: str, selector: str | None) -> bool:
        sent = time.monotonic()
        before = self.store.keys(kind)
        listed_at = self.store.clock()
        listed: set[str] = set()
        changed = False
        async for page, page_version in self.client.versioned_pages(path, label_selector=selector):
            changed |= self.store.merge_listed(kind, page, listed_at, listed)
            self.versions[kind] = page_version
        if kind == "job":
            listed |= self._jobs_still_there(listed, listed_at)
        changed |= self.store.drop_unlisted(kind, listed, listed_at)
        dropped = len(before - self.store.keys(kind))
        if dropped:
            RESYNC_DROPPED.labels(kind).inc(dropped)
            log.info("relist dropped objects gone meanwhile", kind=kind, count=dropped)
        self._listed_since[kind] = sent
        return changed

    def _jobs_still_there(self, listed: set[str], listed_at: float) -> set[str]:
        """Jobs a relist by label no longer has but that hold quota: to read by name
        before they are dropped (they may only have lost their label; see apply_job)."""
        kept: set[str] = set()
        for key in self.store.keys("job") - listed:
            record = self.store.jobs[key]
            if record.finished or self.store.seen_at.get(("job", key), 0.0) >= listed_at:
                continue
            self._jobs_to_check[key] = record.uid
            self._poll_soon = True
            kept.add(key)
        return kept

    async def _merge_pods(self) -> None:
        listed_at = self.store.clock()
        uids: list[str] = []
        async for page, version in self.client.versioned_pages(
            PODS, label_selector=MANAGED_SELECTOR
        ):
            self.versions["pod"] = version
            for listed in page:
                self.apply_pod(listed)
                uids.append(str((listed.get("metadata") or {}).get("uid")))
        for pod in self.store.pods_missing_from(uids, listed_at):
            if pod.uid in self.store.unselected_pods:
                continue  # read by name (poll_unselected)
            path = f"{PODS_IN.format(namespace=pod.namespace)}/{pod.name}"
            found = await self.client.get(path)
            if found is not None and (found.get("metadata") or {}).get("uid") == pod.uid:
                # Not listed, yet there: its label was removed while the watch was cut.
                self.store.unselected_pods[pod.uid] = (pod.namespace, pod.name, self._pod_key(pod))
                continue
            RESYNC_DROPPED.labels("pod").inc()
            # Deleted while the watch was cut, without Cadre's finalizer (it would still
            # be there otherwise): settled with what was last seen of it.
            self.apply_pod_gone(pod)
        await self.poll_unselected()

    async def fill(self) -> None:
        """List the whole cluster into the store (at start, before anything decides)."""
        await self.resync(initial=True)
        if self.bound_pods is not None:
            try:
                await self.bound_pods.relist()
            except ApiError as err:  # the pass counts capacity sums until the watch lists
                log.warning("listing bound pods failed; placement waits for it", error=str(err))
        self.filled = True
        log.info("cache filled", **{k: v for k, v in self.store.sizes().items() if v})

    async def resync(
        self, *, initial: bool = False, kinds: Collection[Listed] | None = None
    ) -> None:
        """Relist `kinds` (default: everything) and merge; see the module."""
        started = time.monotonic()
        changed = False
        before = set(self.store.trainingjobs)
        served_before = set(self.store.modeldeployments)
        for kind, path, selector in _LISTS:
            if kinds is None or kind in kinds:
                changed |= await self._merge(kind, path, selector)
        for key in before - set(self.store.trainingjobs):
            self._forget(key)
        for key in served_before - set(self.store.modeldeployments):
            self._forget(serving_key(key))
        self._resynced()
        # Pods last (their TrainingJobs are known): what ran while the operator was away is
        # read from the containers' timestamps, before any budget is written.
        if kinds is None or "pod" in kinds:
            await self._merge_pods()
        RESYNCS.inc()
        self.last_resync = time.monotonic()
        for table, size in self.store.sizes().items():
            CACHE_OBJECTS.labels(table).set(size)
        if kinds is None or {"trainingjob", "job", "pod"} & set(kinds):
            # What a TrainingJob's reconcile reads may have changed: every one looks again
            # (a relist of nodes or namespaces alone changes admission, the loop's work).
            # (Not the jobs that only wait: nothing of theirs is the reconciler's to write.)
            for key in list(self.store.trainingjobs) + list(self.store.deleted_trainingjobs):
                if self.store.reconciler_has_work(key):
                    self._reconcile(key)
        if kinds is None or (SERVING_KINDS | {"pod"}) & set(kinds):
            for key in list(self.store.modeldeployments):
                self._reconcile(serving_key(key))
        if changed or initial:
            self._changed()
        if not initial:
            log.info(
                "resync done",
                kinds=sorted(kinds) if kinds is not None else "all",
                seconds=round(time.monotonic() - started, 2),
            )

    async def sync_for_takeover(self, leading_since: float) -> None:
        """A new leader's consistent read of what decides admission (see the module):
        each such kind not listed whole by a list sent at `leading_since` (monotonic, the
        Lease taken) or later."""
        started = time.monotonic()
        listed: list[Kind] = []
        for kind, path, selector in _LISTS:
            if kind not in _TAKEOVER_KINDS:
                continue
            if self._listed_since.get(kind, float("-inf")) >= leading_since:
                continue
            await self._merge(kind, path, selector)
            listed.append(kind)
        log.info("takeover sync done", listed=listed, seconds=round(time.monotonic() - started, 2))

    async def relist_for_watch(self, kind: Kind) -> str:
        """A watch cannot go on from where it was (its version expired): relist its kind,
        merged as a resync is; the version the watch starts from again."""
        await self.resync(kinds=(kind,))
        return self.versions.get(kind, "")

    # -- the task, and the watches beside it ------------------------------------------------
    def _companions(self) -> tuple[BackgroundTask, ...]:
        return (*self.watches, *((self.bound_pods,) if self.bound_pods is not None else ()))

    def start(self) -> None:
        super().start()
        for task in self._companions():
            task.start()

    async def stop(self) -> None:
        for task in self._companions():
            await task.stop()
        await super().stop()

    def alive(self) -> bool:
        return super().alive() and all(task.alive() for task in self._companions())

    # -- periodic resync -------------------------------------------------------------------
    def after_outage(self) -> None:
        """The API server is reachable again after calls went unanswered, or the process
        stalled: relist what Kopf watches now (its watches may have expired unseen)."""
        self._relisted.update(KOPF_KINDS)
        self._relisted_due = time.monotonic()
        self._wake.set()

    async def run(self) -> None:
        interval = float(self.config.controller.resync_seconds)
        next_full = time.monotonic() + interval
        poll_interval = min(float(self.config.accounting.refresh_seconds), UNSELECTED_POLL_SECONDS)
        next_poll = 0.0
        stalls = StallClock()
        while True:
            now = time.monotonic()
            wait = max(0.0, min(next_full - now, _TICK_SECONDS))
            if self._relisted:
                wait = max(0.0, min(wait, self._relisted_due - now))
            self._wake.clear()
            stalls.waiting(wait, now)
            await wait_at_most(_first(self._trigger.wait(), self._wake.wait()), wait)
            now = time.monotonic()
            late = stalls.late(now)
            if late is not None:
                # The process did not run for a while (stopped, starved): its watches may
                # have expired meanwhile, and Kopf's relist would not say what went.
                log.warning("the process stalled; resyncing", seconds=round(late, 1))
                self.after_outage()
            unselected = self.store.unselected_pods or self._jobs_to_check
            if unselected and (self._poll_soon or now >= next_poll):
                next_poll = now + poll_interval
                try:
                    await self.poll_unselected()
                except ApiError as err:
                    log.warning("reading pods that lost their label failed", error=str(err))
            full = self._trigger.is_set() or now >= next_full
            if not full and not (self._relisted and now >= self._relisted_due):
                continue  # woken by a listing that is still going on
            kinds = None if full else set(self._relisted)
            self._trigger.clear()
            self._relisted.clear()
            started = time.monotonic()
            try:
                await self.resync(kinds=kinds)
                if full:
                    next_full = resync_due(started, time.monotonic(), interval)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("resync failed; trying again soon", error=str(err))
                await asyncio.sleep(min(interval, 5.0))
                self._trigger.set()


def resync_due(started: float, ended: float, interval: float) -> float:
    """When the next periodic relist starts, after one from `started` to `ended`:
    `interval` after it, or later if relisting would otherwise take more than RESYNC_DUTY
    of the time."""
    took = ended - started
    return ended + max(interval, took * (1 - RESYNC_DUTY) / RESYNC_DUTY)


class StallClock:
    """Tells a stall of the process from the loop's own slow work. A stall is a wait that
    ended more than STALL_SECONDS after it was due: the event loop did not run (the
    process stopped, starved, or blocked). Only the wait is timed: a resync that takes
    long is work, not a stall, and timing it too made every resync longer than
    STALL_SECONDS trigger the next one, for ever (15,000 TrainingJobs: a relist every
    18 s)."""

    def __init__(self) -> None:
        self._due: float | None = None

    def waiting(self, seconds: float, now: float) -> None:
        self._due = now + seconds

    def late(self, now: float) -> float | None:
        """Seconds past the wait's end when that is a stall, else None."""
        if self._due is None:
            return None
        late = now - self._due
        self._due = None
        return late if late > STALL_SECONDS else None


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of `waits` is done (the others are cancelled)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
