"""The batch/v1 Job of a TrainingJob, as admission and status need it: a slim record read
from the Job's wire dict. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cadre.core.api.names import ANNOTATION_SPEC_HASH

__all__ = ["JobRecord", "job_record"]


@dataclass(frozen=True, slots=True)
class JobRecord:
    """The batch/v1 Job of a TrainingJob, as admission and status need it."""

    name: str
    namespace: str
    uid: str
    suspended: bool
    complete: bool
    failed: bool
    failed_condition: Mapping[str, Any] | None
    active: int
    ready: int | None
    succeeded: int
    failed_pods: int
    completion_time: str | None
    resource_version: str
    spec_hash: str | None = None
    """The builders' digest of what the Job was built from (annotation cadre.dev/spec-hash)."""
    owner_uid: str | None = None
    """The UID of the TrainingJob that controls it (its controller owner reference)."""
    deleting: bool = False

    @property
    def finished(self) -> bool:
        return self.complete or self.failed

    @property
    def running(self) -> bool:
        """Admitted and holding its quota: unsuspended and not finished."""
        return not self.suspended and not self.finished


def job_record(job: Mapping[str, Any]) -> JobRecord:
    metadata = job.get("metadata") or {}
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    complete = failed = False
    failed_condition: Mapping[str, Any] | None = None
    for condition in status.get("conditions") or ():
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            complete = True
        elif condition.get("type") == "Failed":
            failed = True
            failed_condition = condition
    return JobRecord(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        uid=str(metadata.get("uid", "")),
        suspended=bool(spec.get("suspend", False)),
        complete=complete,
        failed=failed,
        failed_condition=failed_condition,
        active=int(status.get("active") or 0),
        ready=None if status.get("ready") is None else int(status["ready"]),
        succeeded=int(status.get("succeeded") or 0),
        failed_pods=int(status.get("failed") or 0),
        completion_time=status.get("completionTime"),
        resource_version=str(metadata.get("resourceVersion") or ""),
        spec_hash=(metadata.get("annotations") or {}).get(ANNOTATION_SPEC_HASH),
        owner_uid=next(
            (
                str(o.get("uid"))
                for o in metadata.get("ownerReferences") or ()
                if o.get("controller") and o.get("kind") == "TrainingJob"
            ),
            None,
        ),
        deleting=bool(metadata.get("deletionTimestamp")),
    )
