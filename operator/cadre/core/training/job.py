"""The batch/v1 Job of a TrainingJob, as admission and status need it: a slim record read
from the Job's wire dict. Pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cadre.core.api.names import ANNOTATION_ADMISSION, ANNOTATION_SPEC_HASH
from cadre.core.units.quantity import QuantityError, parse_quantity

__all__ = ["JobRecord", "job_record", "placement_digest"]


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
    stopping: bool = False
    """Suspended, and its pods of an earlier run are not all gone and counted yet (active,
    terminating, or failures the Job controller has not counted): unsuspended now, the
    Job controller could count those pods' SIGKILL as a worker failure of the new run."""
    placement: str = ""
    """`placement_digest` of the Job as it is (not as its annotation says it was built)."""
    owner_uid: str | None = None
    """The UID of the TrainingJob that controls it (its controller owner reference)."""
    deleting: bool = False
    admission_id: str | None = None
    """The admission it was created for (annotation cadre.dev/admission): the status's
    `admission.id` names the Job it admits by this."""
    pod_group: str | None = None
    """The PodGroup its pods wait for (native gang scheduling), as its template names it."""

    @property
    def shape(self) -> str:
        """What the Job runs and where: its spec hash and its placement as observed."""
        return f"{self.spec_hash}:{self.placement}"

    @property
    def finished(self) -> bool:
        return self.complete or self.failed

    @property
    def running(self) -> bool:
        """Admitted and holding its quota: unsuspended and not finished."""
        return not self.suspended and not self.finished


def _quantities(amounts: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (amounts if isinstance(amounts, Mapping) else {}).items():
        try:
            out[str(name)] = str(parse_quantity(value).normalize())
        except (QuantityError, TypeError):
            out[str(name)] = repr(value)
    return out


def _containers(containers: Any) -> list[Any]:
    return [
        [
            c.get("name"),
            c.get("image"),
            _quantities((c.get("resources") or {}).get("requests")),
            _quantities((c.get("resources") or {}).get("limits")),
        ]
        for c in containers or ()
        if isinstance(c, Mapping)
    ]


def placement_digest(job_spec: Mapping[str, Any]) -> str:
    """A digest of what decides where a Job's pods run and what they hold: parallelism,
    completions, node selector, node name, affinity, tolerations, and each container's
    image and resources (quantities compared by value, since the API server rewrites
    them). Kubernetes lets the template of a suspended Job that never ran be changed
    (1.27+), so a Job is compared by this digest, not by the annotation it was built
    with: one changed by someone else is rebuilt before it is admitted."""
    template = (job_spec.get("template") or {}).get("spec") or {}
    shape = [
        job_spec.get("parallelism"),
        job_spec.get("completions"),
        template.get("nodeSelector") or {},
        template.get("nodeName"),
        template.get("affinity") or {},
        template.get("tolerations") or [],
        _containers(template.get("containers")),
        _containers(template.get("initContainers")),
    ]
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
        placement=placement_digest(spec),
        stopping=bool(spec.get("suspend", False))
        and bool(
            int(status.get("active") or 0)
            or int(status.get("terminating") or 0)
            or any((status.get("uncountedTerminatedPods") or {}).values())
        ),
        owner_uid=next(
            (
                str(o.get("uid"))
                for o in metadata.get("ownerReferences") or ()
                if o.get("controller") and o.get("kind") == "TrainingJob"
            ),
            None,
        ),
        deleting=bool(metadata.get("deletionTimestamp")),
        admission_id=(metadata.get("annotations") or {}).get(ANNOTATION_ADMISSION),
        pod_group=(
            ((spec.get("template") or {}).get("spec") or {}).get("schedulingGroup") or {}
        ).get("podGroupName"),
    )
