"""An admitted TrainingJob's children, created by the admission loop once the admission is
written: the headless Service (more than one worker), then the Job, running at once.

A queued TrainingJob has no Job: waiting costs one status write and no object in etcd,
and there is no suspended Job for anyone to unsuspend. Names are the TrainingJob's, so a
create that meets its own earlier answer (409) reads it back; a child of an earlier
TrainingJob of the same name, not yet reached by the garbage collector, is deleted (by
UID) and the creation tried again on a later pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import structlog

from cadre.controller.client import ApiClient, ApiError, job_path, service_path
from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.snapshot import REFUSED_PREFIX
from cadre.core.cluster.store import Store
from cadre.core.objects import owner_uids
from cadre.core.training import BuildError, build_training_job_children

log = structlog.get_logger("cadre.trainingjob")

Outcome = Literal["created", "found", "wait", "refused", "gone"]


@dataclass(frozen=True, slots=True)
class Creation:
    outcome: Outcome
    """created / found (its Job is there); wait (an earlier child of that name is on its
    way out: try again later); refused (the spec builds no children the API server
    takes: `message` says why); gone (the namespace is being deleted)."""
    message: str = ""


async def create_admitted_children(
    client: ApiClient,
    store: Store,
    key: str,
    tj: dict[str, Any],
    *,
    admission_id: str,
    team: str | None,
    config: OperatorConfig,
) -> Creation:
    """Create the children of TrainingJob `tj` for its admission `admission_id`."""
    metadata = tj["metadata"]
    namespace, name, uid = metadata["namespace"], metadata["name"], metadata["uid"]
    try:
        children = build_training_job_children(
            tj,
            name=name,
            namespace=namespace,
            uid=uid,
            team=team,
            config=config,
            admission_id=admission_id,
        )
    except BuildError as err:
        return Creation("refused", str(err))
    sent_at = store.clock()
    try:
        if children.service is not None:
            service, _ = await client.create(children.service)
            if uid not in owner_uids(service):
                await remove_stale(client, key, service, service_path(namespace, name))
                return Creation("wait")
        job, created = await client.create(children.job)
    except ApiError as err:
        if err.namespace_going:
            return Creation("gone")
        if err.status not in (400, 422):
            raise
        # The CRD let the spec through, the API server refuses what it builds (a label
        # value, an env reference, a deadline too large...): say so with its words.
        kind = err.path.rsplit("/", 1)[-1][:-1]
        return Creation("refused", f"{REFUSED_PREFIX}{kind}: {err.message}")
    job_metadata = job.get("metadata") or {}
    if job_metadata.get("deletionTimestamp") or job_metadata.get("uid") in store.retired_jobs:
        log.info("previous job still being deleted; waiting", trainingjob=key)
        return Creation("wait")
    if uid not in owner_uids(job):
        await remove_stale(client, key, job, job_path(namespace, name))
        return Creation("wait")
    uid_of_job = str(job_metadata.get("uid"))
    if not store.job_seen_since(key, uid_of_job, sent_at):
        store.upsert_job(job)
        if created:
            store.expect_admitted(key, uid_of_job)
    log.info("job created" if created else "job found", trainingjob=key, team=team)
    return Creation("created" if created else "found")


async def remove_stale(client: ApiClient, key: str, obj: dict[str, Any], path: str) -> None:
    """A child of an earlier owner of the same name (a deleted TrainingJob, or, for a
    PodGroup, an earlier Job), which the garbage collector has not reached yet (it takes
    seconds): delete that very object (by UID) now, so the new one can be created."""
    metadata = obj.get("metadata") or {}
    log.info("deleting a child of an earlier owner", trainingjob=key, kind=obj.get("kind"))
    if not metadata.get("deletionTimestamp"):
        await client.delete(path, uid=str(metadata.get("uid")))
