"""TrainingJob handlers: children, suspend/resume, and status from the Job.

Level-based on watch events (`kopf.on.event`), not Kopf's create/update handlers: every
event (including the initial listing when the operator starts, which plays the part of
"resume") brings the object to what its spec asks, and none writes Kopf's bookkeeping
annotations or a finalizer, so a TrainingJob costs no API writes beyond its children and
its status. Quota is released on deletion by the DELETED event; the children go with the
garbage collector (owner references).

- A TrainingJob without a Job in the store gets its headless Service and suspended
  Indexed Job (deterministic names; a 409 means it is already there: it is read back).
- `spec.suspend: true` suspends an admitted Job (its pods go, its quota is released) and
  sets phase Suspended; back to false it is Queued again and the loop decides.
- Job events move the phase: Running when every worker runs, Succeeded or Failed when
  the Job finishes (with the failing worker's reason); a failed gang with retries left
  is restarted whole (a new Job). Worker counts ride on those writes, and are otherwise
  refreshed at most every positionRefreshSeconds (`update_from_job`).
- Pod events (pods labelled cadre.dev/trainingjob) only feed the store with the
  containers' running intervals; GPU-hours and cost are computed from them and written
  with the phase transitions (see `lifecycle.with_usage`), frozen when the job finishes.
  The same intervals feed the team's budget (`admission/budgets.py`), which settles a
  deleted pod's charge before it removes Cadre's accounting finalizer from the pod.
- A finished TrainingJob with `spec.ttlAfterFinished` is deleted that long after its
  completionTime.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf
import structlog

from cadre.controller.client import ApiError, job_path, service_path, trainingjob_path
from cadre.controller.runtime.context import Runtime
from cadre.controller.status_writer import set_job_suspend, utcnow
from cadre.core.accounting import pod_charge
from cadre.core.budget.teams import budget_scope, resolve_team
from cadre.core.objects import generation_of, key_of, parse_api_time
from cadre.core.training import (
    ANNOTATION_SPEC_HASH,
    LABEL_FLAVOR,
    LABEL_TEAM,
    LABEL_TRAININGJOB,
    BuildError,
    build_job,
    build_training_job_children,
)
from cadre.core.training.lifecycle import (
    GangFailure,
    from_job,
    queued,
    restart_for,
    restarting,
    suspended,
)
from cadre.core.units.duration import parse_duration

log = structlog.get_logger("cadre.trainingjob")

_RETRY_DELAYS = (1, 2, 5, 10, 30, 60)
_retries: set[asyncio.Task[None]] = set()


def _owner_uids(obj: dict[str, Any]) -> list[str]:
    return [str(o.get("uid")) for o in (obj.get("metadata") or {}).get("ownerReferences") or ()]


def _workers(tj: dict[str, Any]) -> int:
    return int((tj.get("spec") or {}).get("workers") or 1)


async def _team_of(memo: Runtime, namespace: str) -> str | None:
    labels = memo.store.namespaces.get(namespace)
    if labels is None:
        ns = await memo.kube.get(f"/api/v1/namespaces/{namespace}")
        if ns is not None:
            memo.store.upsert_namespace(ns)
            labels = memo.store.namespaces[namespace]
    team = resolve_team(namespace, labels, [budget_scope(b) for b in memo.store.budgets.values()])
    if team.team is None:
        # A budget created just before the job may not have reached the store yet (the
        # watches are independent): read the budgets before labelling children teamless.
        for budget in await memo.kube.list("/apis/cadre.dev/v1alpha1/resourcebudgets"):
            memo.store.upsert_budget(budget)
        scopes = [budget_scope(b) for b in memo.store.budgets.values()]
        team = resolve_team(namespace, labels, scopes)
    return team.team


async def reconcile_shape(memo: Runtime, key: str) -> None:
    """A spec changed while the job waits (allowed until it is admitted): a Job built from
    the old spec must not be the one admitted. It is replaced by one built from the new
    spec. Admitted or running Jobs are left alone (the CRD forbids changing their shape)."""
    tj = memo.store.trainingjobs.get(key)
    job = memo.store.jobs.get(key)
    if tj is None or job is None or job.running or job.finished:
        return
    metadata = tj["metadata"]
    team = await _team_of(memo, metadata["namespace"])
    try:
        wanted = build_job(
            tj,
            name=metadata["name"],
            namespace=metadata["namespace"],
            uid=metadata["uid"],
            team=team,
            config=memo.config,
        )
    except BuildError:
        return  # ensure_children reports it
    if wanted["metadata"]["annotations"].get(ANNOTATION_SPEC_HASH) == job.spec_hash:
        return
    async with memo.loop.status.lock(key):
        current = memo.store.jobs.get(key)
        if current is None or current.uid != job.uid or current.running:
            return
        log.info("spec changed while queued: replacing the job", trainingjob=key)
        await memo.kube.delete(job_path(job.namespace, job.name))
        memo.store.retire_job(key, job.uid)
    if not await ensure_children(memo, key):
        _retry_children(memo, key)


async def ensure_children(memo: Runtime, key: str) -> bool:
    """Create the Service and the suspended Job if the store has no Job; True when the
    TrainingJob has its Job afterwards (or cannot have one: see its status)."""
    tj = memo.store.trainingjobs.get(key)
    if tj is None or key in memo.store.jobs:
        return True
    metadata = tj["metadata"]
    namespace, name, uid = metadata["namespace"], metadata["name"], metadata["uid"]
    team = await _team_of(memo, namespace)
    try:
        children = build_training_job_children(
            tj, name=name, namespace=namespace, uid=uid, team=team, config=memo.config
        )
    except BuildError as err:
        reason, message = err.reason, str(err)
        await memo.loop.status.update(
            key,
            lambda status, obj: queued(
                status,
                generation=generation_of(obj),
                now=utcnow(),
                reason=reason,
                message=message,
                position=None,
                team=team,
                gpus=None,
            ),
        )
        return True
    if children.service is not None:
        service, _ = await memo.kube.create(children.service)
        if uid not in _owner_uids(service):
            await _remove_stale(memo, key, service, service_path(namespace, name))
            return False
    job, created = await memo.kube.create(children.job)
    job_metadata = job.get("metadata") or {}
    if job_metadata.get("deletionTimestamp") or job_metadata.get("uid") in memo.store.retired_jobs:
        log.info("previous job still being deleted; retrying", trainingjob=key)
        return False
    if uid not in _owner_uids(job):
        await _remove_stale(memo, key, job, job_path(namespace, name))
        return False
    memo.store.upsert_job(job)
    log.info("children created" if created else "children found", trainingjob=key, team=team)
    memo.loop.notify()
    return True


async def _remove_stale(memo: Runtime, key: str, obj: dict[str, Any], path: str) -> None:
    """A child of a deleted TrainingJob of the same name, which the garbage collector has
    not reached yet (it takes seconds): delete it now, so the new one can be created."""
    log.info("deleting a child of an earlier trainingjob", trainingjob=key, kind=obj.get("kind"))
    if not (obj.get("metadata") or {}).get("deletionTimestamp"):
        await memo.kube.delete(path)


def _retry_children(memo: Runtime, key: str) -> None:
    async def retry() -> None:
        for delay in _RETRY_DELAYS:
            await asyncio.sleep(delay)
            if key not in memo.store.trainingjobs or key in memo.store.jobs:
                return
            try:
                if await ensure_children(memo, key):
                    return
            except ApiError as err:
                log.warning("creating children failed", trainingjob=key, error=str(err))
        log.error("giving up creating children until the next event", trainingjob=key)

    task = asyncio.create_task(retry(), name=f"children {key}")
    _retries.add(task)
    task.add_done_callback(_retries.discard)


async def restart_gang(memo: Runtime, key: str, failure: GangFailure, retries: int) -> None:
    """A worker failed and retries are left: count it, delete the failed Job (its pods are
    gone already: the Job fails at the first failed worker and stops the others), and
    create a new suspended one, which the loop admits like any other."""
    store = memo.store
    async with memo.loop.status.lock(key):
        record = store.jobs.get(key)
        if record is None or not record.failed:
            return
        await memo.loop.status.update(
            key,
            lambda status, obj: restarting(
                status,
                generation=generation_of(obj),
                now=utcnow(),
                failure=failure,
                retries=retries,
            ),
            locked=True,
        )
        namespace = key.split("/", 1)[0]
        await memo.kube.delete(job_path(namespace, record.name))
        store.retire_job(key, record.uid)
        store.admitted_at.pop(key, None)
    log.info("restarting the gang", trainingjob=key, reason=failure.reason)
    memo.loop.notify()
    try:
        done = await ensure_children(memo, key)
    except ApiError as err:
        log.warning("creating children failed", trainingjob=key, error=str(err))
        done = False
    if not done:
        _retry_children(memo, key)


def schedule_ttl(memo: Runtime, key: str) -> None:
    """Delete a finished TrainingJob `spec.ttlAfterFinished` after its completionTime (a
    timer in memory; after a restart the initial events set it again)."""
    tj = memo.store.trainingjobs.get(key)
    if tj is None:
        return
    status = tj.get("status") or {}
    ttl = (tj.get("spec") or {}).get("ttlAfterFinished")
    completed = parse_api_time(status.get("completionTime"))
    if status.get("phase") not in ("Succeeded", "Failed") or not ttl or completed is None:
        return
    due = completed.timestamp() + float(parse_duration(ttl))
    current = memo.ttl_timers.get(key)
    if current is not None and current[0] == due and not current[1].done():
        return
    if current is not None:
        current[1].cancel()
    uid = tj["metadata"].get("uid")

    async def expire() -> None:
        await asyncio.sleep(max(0.0, due - time.time()))
        namespace, name = key.split("/", 1)
        still = memo.store.trainingjobs.get(key)
        if still is None or still["metadata"].get("uid") != uid:
            return
        log.info("deleting finished trainingjob (ttlAfterFinished)", trainingjob=key)
        await memo.kube.delete(trainingjob_path(namespace, name))

    memo.ttl_timers[key] = (due, asyncio.create_task(expire(), name=f"ttl {key}"))


def cancel_ttl(memo: Runtime, key: str) -> None:
    current = memo.ttl_timers.pop(key, None)
    if current is not None:
        current[1].cancel()


async def reconcile_suspend(memo: Runtime, key: str) -> None:
    """spec.suspend true: stop the Job and say Suspended; false after Suspended: queue."""
    tj = memo.store.trainingjobs.get(key)
    job = memo.store.jobs.get(key)
    if tj is None or job is None or job.finished:
        return
    phase = (tj.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        return
    if (tj.get("spec") or {}).get("suspend"):
        if not job.suspended:
            await set_job_suspend(memo.kube, memo.store, key, suspend=True)
            memo.store.admitted_at.pop(key, None)
            memo.loop.notify()
        if phase != "Suspended":
            await memo.loop.status.update(
                key,
                lambda status, obj: suspended(status, generation=generation_of(obj), now=utcnow()),
            )
    elif phase == "Suspended":
        await memo.loop.status.update(
            key,
            lambda status, obj: queued(
                status,
                generation=generation_of(obj),
                now=utcnow(),
                reason="Resumed",
                message="resumed (spec.suspend is false): waiting for the next admission pass",
                position=None,
                team=None,
                gpus=None,
            ),
        )
        memo.loop.notify()


@kopf.on.event("cadre.dev", "v1alpha1", "trainingjobs")
async def trainingjob_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    obj: dict[str, Any] = dict(event["object"])
    key = key_of(obj)
    store = memo.store
    if event["type"] == "DELETED":
        cancel_ttl(memo, key)
        job = store.jobs.get(key)
        store.delete_trainingjob(key)
        memo.loop.forget(key)
        memo.loop.notify()  # its quota is free at once
        if job is not None and job.running:
            # Free the GPUs now too: suspending stops the pods at once, where the garbage
            # collector takes many seconds to delete the Job and then its pods.
            try:
                await memo.kube.merge_patch(
                    job_path(job.namespace, job.name), {"spec": {"suspend": True}}
                )
            except ApiError as err:
                if err.status != 404:
                    log.warning("stopping the job of a deleted trainingjob", error=str(err))
        return
    changed = store.upsert_trainingjob(obj)
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        if changed:
            memo.loop.notify()
        return
    if key not in store.jobs:
        try:
            done = await ensure_children(memo, key)
        except ApiError as err:
            log.warning("creating children failed", trainingjob=key, error=str(err))
            done = False
        if not done:
            _retry_children(memo, key)
    elif changed:
        await reconcile_shape(memo, key)
    await reconcile_suspend(memo, key)
    schedule_ttl(memo, key)
    if changed:
        memo.loop.notify()


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_TRAININGJOB: kopf.PRESENT})
async def job_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    obj: dict[str, Any] = dict(event["object"])
    metadata = obj.get("metadata") or {}
    key = f"{metadata.get('namespace')}/{(metadata.get('labels') or {})[LABEL_TRAININGJOB]}"
    store = memo.store
    if event["type"] == "DELETED":
        if store.delete_job(key, uid=metadata.get("uid")):
            memo.loop.notify()
            tj = store.trainingjobs.get(key)
            phase = ((tj or {}).get("status") or {}).get("phase")
            if (
                tj is not None
                and not tj["metadata"].get("deletionTimestamp")
                and phase not in ("Succeeded", "Failed")
            ):
                # Deleted by someone else while the TrainingJob lives on: a new one.
                _retry_children(memo, key)
        return
    tj = store.trainingjobs.get(key)
    owners = [o.get("uid") for o in metadata.get("ownerReferences") or ()]
    if tj is not None and tj["metadata"].get("uid") not in owners:
        return  # the Job of an earlier TrainingJob of the same name
    if store.upsert_job(obj):
        memo.loop.notify()
    record = store.jobs.get(key)
    if tj is None or record is None:
        return
    retries = int((tj.get("spec") or {}).get("retries") or 0)
    failure = restart_for(tj.get("status"), record, retries)
    if failure is not None:
        await restart_gang(memo, key, failure, retries)
        return
    phase = (tj.get("status") or {}).get("phase")
    if record.finished and phase not in ("Succeeded", "Failed") and store.pods_open(key):
        await refresh_pods(memo, key)
    await update_from_job(memo, key)
    schedule_ttl(memo, key)


def _gpu_resources(memo: Runtime) -> tuple[str, ...]:
    return tuple(sorted({f.gpu_resource for f in memo.config.flavors if f.gpu_resource}))


def record_pod(memo: Runtime, obj: dict[str, Any], *, deleted: bool = False) -> None:
    """Keep a pod's running intervals: for its team's budget (every pod of a Cadre Job,
    also of a TrainingJob already deleted, until its charge is settled), and for its
    TrainingJob's GPU-hours and cost (pods of an earlier one of the same name ignored)."""
    metadata = obj.get("metadata") or {}
    if not metadata.get("uid"):
        return
    charge = pod_charge(
        obj,
        _gpu_resources(memo),
        team_label=LABEL_TEAM,
        flavor_label=LABEL_FLAVOR,
        gone_at=utcnow() if deleted else None,
    )
    memo.store.upsert_pod(charge)
    memo.budgets.pod_changed(charge)
    name = (metadata.get("labels") or {}).get(LABEL_TRAININGJOB)
    key = f"{metadata.get('namespace')}/{name}"
    tj = memo.store.trainingjobs.get(key)
    if tj is None:
        return
    created = parse_api_time(metadata.get("creationTimestamp"))
    tj_created = parse_api_time(tj["metadata"].get("creationTimestamp"))
    if created is not None and tj_created is not None and created < tj_created:
        return
    memo.store.upsert_pod_usage(key, str(metadata["uid"]), charge.usages, final=deleted)


async def refresh_pods(memo: Runtime, key: str) -> None:
    """Read the job's pods now: the Job finished, and their last states (finishedAt)
    may not have come through the pod watch yet. A read, not a write."""
    namespace, name = key.split("/", 1)
    try:
        pods = await memo.kube.list(
            f"/api/v1/namespaces/{namespace}/pods", label_selector=f"{LABEL_TRAININGJOB}={name}"
        )
    except ApiError as err:
        log.warning("reading the pods of a finished job", trainingjob=key, error=str(err))
        return
    for pod in pods:
        record_pod(memo, pod)


@kopf.on.event("", "v1", "pods", labels={LABEL_TRAININGJOB: kopf.PRESENT})
async def pod_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    """Pods feed accounting only: nothing is written here (the figures ride on the
    status writes of phase transitions)."""
    record_pod(memo, dict(event["object"]), deleted=event["type"] == "DELETED")


async def update_from_job(memo: Runtime, key: str) -> None:
    """Write the status the Job implies. Phase transitions are written at once, with the
    worker counts; a change of the counts alone at most every positionRefreshSeconds
    after the job's last status write (a flush is scheduled for a change held back), so
    a lifecycle stays at its 8 writes however the pods come and go."""
    store, writer = memo.store, memo.loop.status
    interval = float(memo.config.admission.position_refresh_seconds)

    def fn(status: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any] | None:
        record = store.jobs.get(key)
        if record is None:
            return None
        since = time.monotonic() - writer.last_write.get(key, float("-inf"))
        due = since >= interval
        workers, generation, now = _workers(current), generation_of(current), utcnow()
        wanted = from_job(
            status,
            record,
            workers=workers,
            generation=generation,
            now=now,
            refresh_workers=due,
        )
        if not due and key not in _worker_flushes:
            refreshed = from_job(
                status,
                record,
                workers=workers,
                generation=generation,
                now=now,
                refresh_workers=True,
            )
            if refreshed.get("workers") != wanted.get("workers"):
                _schedule_worker_flush(memo, key, interval - since)
        return wanted

    await writer.update(key, fn)


_worker_flushes: dict[str, asyncio.Task[None]] = {}


def _schedule_worker_flush(memo: Runtime, key: str, delay: float) -> None:
    async def flush() -> None:
        try:
            await asyncio.sleep(max(0.0, delay))
        finally:
            _worker_flushes.pop(key, None)
        if key in memo.store.trainingjobs and key in memo.store.jobs:
            await update_from_job(memo, key)

    _worker_flushes[key] = asyncio.create_task(flush(), name=f"workers {key}")
