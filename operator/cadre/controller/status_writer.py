"""Conflict-safe writes of TrainingJob and ModelDeployment status, and the Job effects
that go with them. A key "md:namespace/name" is a ModelDeployment's.

`StatusWriter.update(key, fn)`: `fn` computes the wanted status from the newest known
object; when it differs, it replaces the status (`ApiClient.replace_status`, the status
subresource alone) on the condition of the resourceVersion it was computed from. A 409
(someone wrote in between, or the cache was behind) re-reads the object, computes again
and retries, a few times; nothing is ever written from a stale base. One asyncio lock per
TrainingJob keeps this replica's own writers (the admission loop, the reconciler, the
queue writer) from racing each other for nothing.

Job effects name the Job they mean: suspending or unsuspending is a JSON patch whose
`test` operations check the Job's UID (and, for an admission, the spec hash the pass
decided on), so a Job rebuilt in between is never the one admitted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import structlog

from cadre.controller.client import (
    ApiClient,
    ApiError,
    NotLeaderError,
    job_path,
    modeldeployment_path,
    trainingjob_path,
)
from cadre.core.accounting import Period, Rates, period_bounds
from cadre.core.api.config import OperatorConfig
from cadre.core.api.names import ANNOTATION_SPEC_HASH
from cadre.core.cluster.store import Store, holds, is_serving, stored_key
from cadre.core.objects import uid_of
from cadre.core.serving.lifecycle import serving_transition_events, with_period_usage
from cadre.core.training.lifecycle import transition_event, with_usage

log = structlog.get_logger("cadre.status")

StatusFn = Callable[[dict[str, Any] | None, dict[str, Any]], dict[str, Any] | None]
"""(current status, whole object) -> the wanted status, or None for no change."""

CONFLICT_RETRIES: Final = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


class StatusWriter:
    def __init__(self, client: ApiClient, store: Store, config: OperatorConfig) -> None:
        self.client = client
        self.store = store
        self.config = config
        self._locks: dict[str, asyncio.Lock] = {}
        self._posting: set[asyncio.Task[None]] = set()
        self.writes = 0
        self.conflicts = 0
        self.last_write: dict[str, float] = {}
        """TrainingJob key -> monotonic time of its last status write (to bound the
        writes of live figures such as worker counts)."""

    def lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            if self.cached(key):  # one gone since (forgotten) needs none kept
                self._locks[key] = lock
        return lock

    def sizes(self) -> dict[str, int]:
        """Entries kept per TrainingJob (a leak shows here)."""
        return {"status_locks": len(self._locks), "status_last_write": len(self.last_write)}

    def held(self) -> set[str]:
        """The workloads it keeps a lock or a last-write time for."""
        return set(self._locks) | set(self.last_write)

    def cached(self, key: str) -> bool:
        """Does the cache hold the workload `key` (a TrainingJob or a ModelDeployment)?"""
        return stored_key(key) in self._table(key)

    def forget(self, key: str) -> None:
        """The TrainingJob is gone. A writer holding its lock keeps its reference to it;
        the next one (of a new TrainingJob of that name) gets a new lock."""
        self._locks.pop(key, None)
        self.last_write.pop(key, None)

    async def update(
        self, key: str, fn: StatusFn, *, locked: bool = False
    ) -> dict[str, Any] | None:
        """Apply `fn` to the TrainingJob's newest known status and write the difference.
        Returns the object after the write (None if unknown, gone or unchanged).
        `locked`: the caller holds `lock(key)` already (to make an effect and its status
        write one step, so that no other writer of this replica comes in between)."""
        if locked:
            return await self._update(key, fn)
        async with self.lock(key):
            return await self._update(key, fn)

    def _table(self, key: str) -> dict[str, dict[str, Any]]:
        """The cache's table of the workload `key` (ModelDeployments or TrainingJobs)."""
        return self.store.modeldeployments if is_serving(key) else self.store.trainingjobs

    async def _update(self, key: str, fn: StatusFn) -> dict[str, Any] | None:
        serving = is_serving(key)
        stored = stored_key(key)
        namespace, name = stored.split("/", 1)
        table = self._table(key)
        if serving:
            path = modeldeployment_path(namespace, name)
        else:
            path = trainingjob_path(namespace, name)

        def upsert(obj: dict[str, Any], **how: Any) -> None:
            if serving:
                self.store.upsert_modeldeployment(obj, **how)
            else:
                self.store.upsert_trainingjob(obj, **how)

        for _ in range(CONFLICT_RETRIES):
            obj = table.get(stored)
            if obj is None:
                return None
            current = obj.get("status")
            wanted = fn(current, obj)
            if wanted is None:
                return None
            wanted = self._with_usage(key, obj, current, wanted)
            if wanted == (current or {}):
                return None  # unchanged
            base = str(obj["metadata"].get("resourceVersion") or "")
            try:
                updated = await self.client.replace_status(path, wanted, resource_version=base)
            except ApiError as err:
                if err.status == 404:
                    return None
                if err.status != 409:
                    raise
                self.conflicts += 1
                fresh = await self.client.get(path)
                if fresh is None or uid_of(fresh) != uid_of(obj):
                    return None  # gone, or a new object of its name: its events bring it
                upsert(fresh, read=True)
                continue
            self.writes += 1
            upsert(updated, written_from=base)
            if holds(table, stored, updated):  # not deleted meanwhile
                self.last_write[key] = time.monotonic()
            self._announce(key, obj, current, updated.get("status"))
            return updated
        raise ApiError("PATCH", path, 409, f"still conflicting after {CONFLICT_RETRIES} reads")

    def _with_usage(
        self,
        key: str,
        obj: dict[str, Any],
        current: dict[str, Any] | None,
        wanted: dict[str, Any],
    ) -> dict[str, Any]:
        """GPU-hours and cost: a TrainingJob's in all (refreshed on phase changes), a
        ModelDeployment's in the current period of its team's budget."""
        now = utcnow()
        usages = self.store.usages_of(key)
        if not is_serving(key):
            return with_usage(current, wanted, usages, rates_of(self.config, obj), now)
        team = wanted.get("team") or self.store.team_of(stored_key(key).split("/", 1)[0])
        budget = self.store.budgets.get(str(team)) if team else None
        period: Period = ((budget or {}).get("spec") or {}).get("period") or "Monthly"
        bounds = period_bounds(period, now, self.config.timezone)
        return with_period_usage(wanted, usages, rates_of(self.config, obj), bounds, now)

    def _announce(
        self,
        key: str,
        obj: dict[str, Any],
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """Post the Kubernetes Events of a transition (in the background)."""
        if is_serving(key):
            for each in serving_transition_events(obj, before, after, utcnow()):
                self.post(each)
            return
        event = transition_event(obj, before, after, utcnow())
        if event is not None:
            self.post(event)

    def post(self, event: dict[str, Any]) -> None:
        task = asyncio.create_task(post_event(self.client, event))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)


async def post_event(client: ApiClient, event: dict[str, Any]) -> None:
    """Post an Event; a failure is logged, never raised (an Event is a courtesy). A
    namespace being deleted refuses new objects: that is expected, not a warning."""
    try:
        await client.create(event)
    except ApiError as err:
        expected = err.status == 404 or err.namespace_going
        (log.info if expected else log.warning)(
            "posting an event failed", error=str(err), reason=event.get("reason")
        )
    except NotLeaderError as err:  # the lease was lost meanwhile: nothing to do
        log.info("event not posted", error=str(err), reason=event.get("reason"))


def rates_of(config: OperatorConfig, obj: dict[str, Any]) -> Rates:
    """The hourly prices of the workload's flavour (zero for an unknown flavour)."""
    flavor = ((obj.get("spec") or {}).get("resources") or {}).get("flavor")
    for candidate in config.flavors:
        if candidate.name == flavor:
            return Rates(*candidate.prices.as_decimals())
    return Rates()


@dataclass(frozen=True, slots=True)
class JobRef:
    """The Job an effect means: its name and UID (and, to admit it, its spec hash)."""

    namespace: str
    name: str
    uid: str
    spec_hash: str | None = None


async def delete_job(client: ApiClient, store: Store, key: str, job: JobRef) -> bool:
    """Delete the Job `job` of TrainingJob `key` by its UID (never a newer Job of the same
    name), and stop counting it as TrainingJob `key`'s run. False: it was gone already."""
    deleted = await client.delete(job_path(job.namespace, job.name), uid=job.uid)
    store.retire_job(key, job.uid)
    return deleted


SuspendOutcome = Literal["done", "gone"]


async def set_job_suspend(
    client: ApiClient, store: Store, key: str, job: JobRef, *, suspend: bool
) -> SuspendOutcome:
    """Suspend or unsuspend the Job `job` of TrainingJob `key`. "gone": that Job no longer
    exists, or another object of its name does (the UID or spec-hash test failed), and
    nothing was changed. Other failures raise."""
    operations: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": job.uid}]
    if job.spec_hash is not None and not suspend:
        hash_path = "/metadata/annotations/" + ANNOTATION_SPEC_HASH.replace("/", "~1")
        operations.append({"op": "test", "path": hash_path, "value": job.spec_hash})
    operations.append({"op": "add", "path": "/spec/suspend", "value": suspend})
    sent_at = store.clock()
    try:
        updated = await client.json_patch(job_path(job.namespace, job.name), operations)
    except ApiError as err:
        if err.status == 404:
            store.delete_job(key, uid=job.uid)  # observed gone: no record to act on again
            return "gone"
        if err.status == 422:
            return "gone"
        raise
    if suspend:
        store.unexpect(key)
    if not store.job_seen_since(key, job.uid, sent_at):  # else the watch is newer
        store.upsert_job(updated)
        if not suspend:
            store.expect_admitted(key, job.uid)
    log.info("job suspended" if suspend else "job unsuspended", trainingjob=key)
    return "done"
