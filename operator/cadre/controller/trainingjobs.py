"""The TrainingJob reconciler: level-based, one key at a time, retried until it holds.

Watch events only put a key on the work queue; `reconcile(key)` looks at what the cache
holds for that TrainingJob, its Job and its pods, and brings the cluster to what the spec
asks, whatever happened before and in whatever order the events came:

- no Job: nothing to create. A waiting job has none; the admission loop creates the Job
  of an admitted one (`training_children.py`), and is woken when one is missing;
- `spec.suspend: true`: revoke the admission and delete the Job (its pods go, its quota
  is released), phase Suspended; back to false: Queued, and the loop decides;
- a failed gang with retries left: the restart is recorded with the failed Job's UID
  first (counted once however often this is retried, the admission going with it), then
  that Job is deleted by UID; the job waits in the queue, and the loop makes a new Job
  when it admits it again;
- otherwise the status the Job implies (Admitted -> Running -> Succeeded / Failed, worker
  counts at most every positionRefreshSeconds), with GPU-hours and cost from the pods;
- a finished TrainingJob with `ttlAfterFinished` is deleted (UID precondition) when due;
- a TrainingJob seen deleted whose Job still runs: the Job is suspended at once, so its
  GPUs are free in a second rather than after the garbage collector's round.

An API error raises: the work queue retries the key with exponential backoff, so a
transition is never lost for want of another event. Returning a delay asks to look again
then (a TTL, a held-back worker count).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, Final

import structlog
from pydantic import ValidationError

from cadre.controller.cache import Cache
from cadre.controller.client import (
    ApiClient,
    ApiError,
    collection_path,
    trainingjob_path,
)
from cadre.controller.status_writer import (
    JobRef,
    StatusWriter,
    delete_job,
    set_job_suspend,
    utcnow,
)
from cadre.controller.training_children import remove_stale
from cadre.core.api.config import OperatorConfig
from cadre.core.api.names import LABEL_TRAININGJOB
from cadre.core.api.trainingjob import TrainingJobSpec
from cadre.core.cluster.store import Store
from cadre.core.objects import generation_of, owner_uids, parse_api_time
from cadre.core.training import build_pod_group
from cadre.core.training.job import JobRecord
from cadre.core.training.lifecycle import (
    GangFailure,
    from_job,
    preempted,
    queued,
    restart_for,
    restarting,
    suspended,
)
from cadre.core.units.duration import parse_duration

log = structlog.get_logger("cadre.trainingjob")

_CHILD_RETRY_SECONDS: Final = 1.0
"""Look again this soon when a child of an earlier TrainingJob is on its way out."""
TERMINAL: Final = ("Succeeded", "Failed")


class TrainingJobReconciler:
    def __init__(
        self,
        client: ApiClient,
        store: Store,
        config: OperatorConfig,
        *,
        status: StatusWriter,
        cache: Cache,
        notify: Callable[[], None],
    ) -> None:
        self.client = client
        self.store = store
        self.config = config
        self.status = status
        self.cache = cache
        self._notify = notify
        self._pod_groups: dict[str, str] = {}
        """TrainingJob key -> UID of the Job whose PodGroup is known to exist."""

    async def reconcile(self, key: str) -> float | None:
        tj = self.store.trainingjobs.get(key)
        job = self.store.jobs.get(key)
        if tj is None:
            self._pod_groups.pop(key, None)
            await self._stop_job_of_deleted(key, job)
            return None
        if (tj.get("metadata") or {}).get("deletionTimestamp"):
            return None
        if job is None:
            # Waiting, or admitted and its Job on its way: the admission loop creates it.
            await self._reconcile_suspend(key, tj, None)
            if self.store.awaits_job(key):
                self._notify()
            return await self._expire(key)
        if job.deleting:
            return None  # its DELETED event brings the key back
        team = self._known_team(key.split("/", 1)[0])  # as the admission pass sees it
        # its pods wait for their PodGroup; an earlier Job's of that name must go first
        group_again = (
            _CHILD_RETRY_SECONDS if await self._ensure_pod_group(key, tj, job, team) else None
        )
        await self._reconcile_suspend(key, tj, job)
        job = self.store.jobs.get(key)
        if job is None:
            return None
        retries = int((tj.get("spec") or {}).get("retries") or 0)
        failure = restart_for(tj.get("status"), job, retries)
        if failure is not None:
            await self._restart(key, job, failure, retries)
            return 0.0
        phase = (tj.get("status") or {}).get("phase")
        if job.finished and phase not in TERMINAL and self.store.pods_open(key):
            await self._refresh_pods(key)
        again = await self._status_from_job(key)
        expire = await self._expire(key)
        delays = [d for d in (again, expire, group_again) if d is not None]
        return min(delays) if delays else None

    # -- children ------------------------------------------------------------------------
    def _known_team(self, namespace: str) -> str | None:
        """The namespace's team as the cache knows it (no API call)."""
        return self.store.team_of(namespace)

    async def _ensure_pod_group(
        self, key: str, tj: dict[str, Any], job: JobRecord, team: str | None
    ) -> bool:
        """The PodGroup the Job's pods name (native gang scheduling) exists: they wait
        for it. True when an earlier Job's group of that name must go first (the same
        admission's, made again). Each Job is looked at once (`_pod_groups`)."""
        if job.finished or job.pod_group is None or self._pod_groups.get(key) == job.uid:
            return False
        try:
            spec = TrainingJobSpec.model_validate(tj.get("spec") or {})
        except ValidationError:
            return False  # its status says why; no gang to schedule
        metadata = tj["metadata"]
        wanted = build_pod_group(
            spec,
            group=job.pod_group,
            name=metadata["name"],
            namespace=metadata["namespace"],
            team=team,
            job_uid=job.uid,
        )
        try:
            found, _ = await self.client.create(wanted)
        except ApiError as err:
            if not err.namespace_going:
                raise
            return False  # its namespace is being deleted, and the Job with it
        if job.uid not in owner_uids(found):
            path = f"{collection_path(wanted)}/{(found.get('metadata') or {}).get('name')}"
            await remove_stale(self.client, key, found, path)
            return True
        self._pod_groups[key] = job.uid
        return False

    # -- suspend ---------------------------------------------------------------------------
    async def _reconcile_suspend(self, key: str, tj: dict[str, Any], job: JobRecord | None) -> None:
        """spec.suspend true: revoke the admission, delete the Job (its pods go, its quota
        is released) and say Suspended; false after Suspended: queue."""
        if job is not None and job.finished:
            return
        phase = (tj.get("status") or {}).get("phase")
        if phase in TERMINAL:
            return
        if (tj.get("spec") or {}).get("suspend"):
            # The admission is revoked first, then the Job deleted: a Job never runs on an
            # admission that is gone for long (the loop deletes one that does).
            async with self.status.lock(key):
                current = self.store.jobs.get(key)
                if phase != "Suspended":
                    if current is not None:
                        self.store.mark_stopping(key, current.uid)
                    await self.status.update(
                        key,
                        lambda status, obj: suspended(
                            status, generation=generation_of(obj), now=utcnow()
                        ),
                        locked=True,
                    )
                if current is not None and not current.deleting:
                    ref = JobRef(current.namespace, current.name, current.uid)
                    await delete_job(self.client, self.store, key, ref)
                    self.store.admitted_at.pop(key, None)
                    self._notify()
        elif phase == "Suspended":
            await self.status.update(
                key,
                lambda status, obj: (
                    queued(
                        status,
                        generation=generation_of(obj),
                        now=utcnow(),
                        reason="Resumed",
                        message="resumed (spec.suspend is false): waiting for the next "
                        "admission pass",
                        place=None,
                        team=None,
                        gpus=None,
                    )
                    if (status or {}).get("phase") == "Suspended"
                    else None
                ),
            )
            self._notify()

    # -- restart ---------------------------------------------------------------------------
    async def _restart(self, key: str, job: JobRecord, failure: GangFailure, retries: int) -> None:
        """A worker failed and retries are left: record the restart against the failed
        Job's UID (the admission goes with it), delete that Job (its pods are gone
        already: the Job fails at the first failed worker and stops the others); the job
        waits in the queue, and the loop creates a new Job when it admits it again."""
        async with self.status.lock(key):
            record = self.store.jobs.get(key)
            if record is None or record.uid != job.uid or not record.failed:
                return
            await self.status.update(
                key,
                lambda status, obj: restarting(
                    status,
                    generation=generation_of(obj),
                    now=utcnow(),
                    failure=failure,
                    retries=retries,
                    job_uid=record.uid,
                ),
                locked=True,
            )
            ref = JobRef(record.namespace, record.name, record.uid)
            await delete_job(self.client, self.store, key, ref)
            self.store.admitted_at.pop(key, None)
        log.info("restarting the gang", trainingjob=key, reason=failure.reason)
        self._notify()

    # -- status from the Job -----------------------------------------------------------------
    async def _refresh_pods(self, key: str) -> None:
        """Read the job's pods now: the Job finished, and their last states (finishedAt)
        may not have come through the pod watch yet. A read, not a write."""
        namespace, name = key.split("/", 1)
        pods = await self.client.list(
            f"/api/v1/namespaces/{namespace}/pods", label_selector=f"{LABEL_TRAININGJOB}={name}"
        )
        for pod in pods:
            self.cache.apply_pod(pod)

    async def _status_from_job(self, key: str) -> float | None:
        """Write the status the Job implies. Phase transitions are written at once, with the
        worker counts; a change of the counts alone at most every positionRefreshSeconds
        after the job's last status write (the returned delay brings the key back then),
        so a lifecycle stays at its 8 writes however the pods come and go."""
        store, writer = self.store, self.status
        interval = float(self.config.admission.position_refresh_seconds)
        held_back: list[float] = []

        def fn(status: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any] | None:
            record = store.jobs.get(key)
            if record is None:
                return None
            phase = (status or {}).get("phase")
            generation, now = generation_of(current), utcnow()
            if (
                record.suspended
                and not record.finished
                and not store.admitted(key)
                and phase in ("Admitted", "Running")
                and not (current.get("spec") or {}).get("suspend")
            ):
                # Stopped while the status says it runs (its preemption's own status write
                # failed): say so, it waits for the next admission.
                return preempted(
                    status,
                    generation=generation,
                    now=now,
                    reason="Preempted",
                    message="the gang was stopped to make room: waiting to be admitted again",
                )
            since = time.monotonic() - writer.last_write.get(key, float("-inf"))
            due = since >= interval
            spec = current.get("spec") or {}
            workers = int(spec.get("workers") or 1)
            job_status = partial(
                from_job,
                status,
                record,
                workers=workers,
                generation=generation,
                now=now,
                unscheduled=store.unscheduled_of(key),
            )
            wanted = job_status(refresh_workers=due)
            if not due:
                refreshed = job_status(refresh_workers=True)
                if refreshed.get("workers") != wanted.get("workers"):
                    held_back.append(interval - since)
            return wanted

        await writer.update(key, fn)
        return max(0.0, held_back[0]) if held_back else None

    # -- TTL ---------------------------------------------------------------------------------
    async def _expire(self, key: str) -> float | None:
        """Delete a finished TrainingJob `spec.ttlAfterFinished` after its completionTime;
        the delay until then, when it is not due yet."""
        tj = self.store.trainingjobs.get(key)
        if tj is None:
            return None
        status = tj.get("status") or {}
        ttl = (tj.get("spec") or {}).get("ttlAfterFinished")
        completed = parse_api_time(status.get("completionTime"))
        if status.get("phase") not in TERMINAL or not ttl or completed is None:
            return None
        due = completed.timestamp() + float(parse_duration(ttl))
        left = due - time.time()
        if left > 0:
            return left
        namespace, name = key.split("/", 1)
        log.info("deleting finished trainingjob (ttlAfterFinished)", trainingjob=key)
        await self.client.delete(
            trainingjob_path(namespace, name), uid=str(tj["metadata"].get("uid"))
        )
        return None

    # -- a deleted TrainingJob ---------------------------------------------------------------
    async def _stop_job_of_deleted(self, key: str, job: JobRecord | None) -> None:
        tombstone = self.store.deleted_trainingjobs.get(key)
        if job is None or tombstone is None or job.owner_uid != tombstone[0]:
            return
        if job.suspended or job.finished or job.deleting:
            return
        # Suspending stops the pods at once, where the garbage collector takes many
        # seconds to delete the Job and then its pods.
        ref = JobRef(job.namespace, job.name, job.uid)
        try:
            await set_job_suspend(self.client, self.store, key, ref, suspend=True)
        except ApiError as err:
            if err.status != 404:
                raise


def log_reconcile_error(key: str, err: BaseException) -> None:
    """The work queue's error hook: one line per failure (the key is retried)."""
    log.warning("reconcile failed; retrying with backoff", trainingjob=key, error=str(err))
