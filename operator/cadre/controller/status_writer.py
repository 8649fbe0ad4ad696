"""Effects on the API shared by the handlers and the admission loop.

Status writes go through `StatusWriter.update`: one asyncio lock per TrainingJob, so the
loop and the Job handler never compute a status from the same base and overwrite each
other's conditions (a merge patch replaces the conditions list whole); the base is the
newest object known (the store keeps the answer of every write); nothing is written
when the status would not change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from cadre.controller.client import ApiError, Kube, job_path, trainingjob_path
from cadre.core.accounting import Rates
from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.store import Store
from cadre.core.training.lifecycle import status_patch, transition_event, with_usage

log = structlog.get_logger("cadre.controller.status_writer")

StatusFn = Callable[[dict[str, Any] | None, dict[str, Any]], dict[str, Any] | None]
"""(current status, whole object) -> the wanted status, or None for no change."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class StatusWriter:
    def __init__(self, kube: Kube, store: Store, config: OperatorConfig | None = None) -> None:
        self.kube = kube
        self.store = store
        self.config = config
        self._locks: dict[str, asyncio.Lock] = {}
        self._posting: set[asyncio.Task[None]] = set()
        self.writes = 0
        self.last_write: dict[str, float] = {}
        """TrainingJob key -> monotonic time of its last status write (to bound the
        writes of live figures such as worker counts)."""

    def lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def forget(self, key: str) -> None:
        self._locks.pop(key, None)
        self.last_write.pop(key, None)

    async def update(
        self, key: str, fn: StatusFn, *, locked: bool = False
    ) -> dict[str, Any] | None:
        """Apply `fn` to the TrainingJob's newest known status and write the difference.
        Returns the object after the write (None if unknown, gone or unchanged).
        `locked`: the caller holds `lock(key)` already (to make an effect and its status
        write one step, so that no handler writes in between)."""
        if locked:
            return await self._update(key, fn)
        async with self.lock(key):
            return await self._update(key, fn)

    async def _update(self, key: str, fn: StatusFn) -> dict[str, Any] | None:
        tj = self.store.trainingjobs.get(key)
        if tj is None:
            return None
        current = tj.get("status")
        wanted = fn(current, tj)
        if wanted is None:
            return None
        if self.config is not None:
            wanted = with_usage(
                current, wanted, self.store.usages_of(key), rates_of(self.config, tj), utcnow()
            )
        patch = status_patch(current, wanted)
        if patch is None:
            return None
        namespace, name = key.split("/", 1)
        try:
            updated = await self.kube.patch_status(trainingjob_path(namespace, name), patch)
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        self.writes += 1
        self.last_write[key] = time.monotonic()
        self.store.upsert_trainingjob(updated)
        self._announce(tj, current, updated.get("status"))
        return updated

    def _announce(
        self,
        tj: dict[str, Any],
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """Post a Kubernetes Event for a phase transition (in the background)."""
        event = transition_event(tj, before, after, utcnow())
        if event is None:
            return
        task = asyncio.create_task(self._post(event))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def _post(self, event: dict[str, Any]) -> None:
        await post_event(self.kube, event)


async def post_event(kube: Kube, event: dict[str, Any]) -> None:
    """Post an Event; a failure is logged, never raised (an Event is a courtesy). A
    namespace being deleted refuses new objects: that is expected, not a warning."""
    try:
        await kube.create(event)
    except ApiError as err:
        expected = err.status == 404 or (err.status == 403 and "being terminated" in str(err))
        (log.info if expected else log.warning)(
            "posting an event failed", error=str(err), reason=event.get("reason")
        )


def rates_of(config: OperatorConfig, tj: dict[str, Any]) -> Rates:
    """The hourly prices of the TrainingJob's flavour (zero for an unknown flavour)."""
    flavor = ((tj.get("spec") or {}).get("resources") or {}).get("flavor")
    for candidate in config.flavors:
        if candidate.name == flavor:
            return Rates(*candidate.prices.as_decimals())
    return Rates()


async def set_job_suspend(kube: Kube, store: Store, key: str, suspend: bool) -> bool:
    """Suspend or unsuspend the Job of TrainingJob `key`; False if the Job is gone."""
    namespace, name = key.split("/", 1)
    job = store.jobs.get(key)
    if job is not None and job.suspended == suspend:
        return True
    try:
        updated = await kube.merge_patch(
            job_path(namespace, job.name if job else name), {"spec": {"suspend": suspend}}
        )
    except ApiError as err:
        if err.status == 404:
            return False
        raise
    store.upsert_job(updated)
    log.info("job suspended" if suspend else "job unsuspended", trainingjob=key)
    return True
