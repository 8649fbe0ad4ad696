"""Pure builders of the objects Cadre creates for its workloads.

No I/O, no Kopf, no Kubernetes client: specs (pydantic models, or their wire dicts) in,
plain wire dicts out, ready for a create or a server-side apply. The same input always
gives the same output, names included.

TrainingJob:

- `build_training_job_children(job, *, name, namespace, uid, team, config)` ->
  `TrainingJobChildren(service, job)` (no Service for a single worker); `.objects()`
  in creation order.
- `build_job(...)` and `build_headless_service(...)` build one of them (same keywords;
  the Service needs no config). With native gang scheduling (`uses_pod_group`), the Job's
  pods name a PodGroup, `build_pod_group(...)`, which the reconciler creates once the Job
  exists (it is owned by the Job).
- `job` is a `TrainingJob`, a `TrainingJobSpec`, or a wire dict of either (Kopf's `body`
  or `spec`); `name`, `namespace`, `uid` are the TrainingJob's; `team` is the
  ResourceBudget it is charged to, or None (no team label).
- Errors are `BuildError`s with a condition `reason` and a message for people:
  `UnknownFlavourError`, `FlavourRequiredError`, `InvalidTeamError`.
- `gang_request(spec)` -> `GangRequest(flavor, pods, gpus_per_pod, cpu_milli_per_pod,
  memory_bytes_per_pod)` for the admission adapter; `admission_record(request)` is how an
  admission records it, `matches_admission(admission, request)` whether a spec still asks
  for what its admission holds.
- `parse_job_failure(condition)` -> `JobFailure`: why the Job failed (exit code of which
  worker, disruption, deadline), read from the Job's Failed condition.
"""

from __future__ import annotations

from cadre.core.api.names import (
    ACCOUNTING_FINALIZER,
    ANNOTATION_SPEC_HASH,
    COMPLETION_INDEX_ANNOTATION,
    JOB_NAME_LABEL,
    LABEL_FLAVOR,
    LABEL_MANAGED_BY,
    LABEL_TEAM,
    LABEL_TRAININGJOB,
    MANAGED_BY,
)
from cadre.core.training.children import (
    TrainingJobChildren,
    active_deadline_seconds,
    as_spec,
    build_headless_service,
    build_job,
    build_pod_group,
    build_training_job_children,
    job_name,
    needs_service,
    pod_group_name,
    service_name,
    uses_pod_group,
)
from cadre.core.training.failure import (
    WORKER_CONTAINER,
    JobFailure,
    completion_index,
    parse_job_failure,
)
from cadre.core.training.gang import (
    GangRequest,
    admission_record,
    gang_request,
    matches_admission,
)
from cadre.core.training.pytorch import master_addr, procs_per_worker, torchrun_command
from cadre.core.workloads.errors import (
    BuildError,
    FlavourRequiredError,
    InvalidTeamError,
    UnknownFlavourError,
)

__all__ = [
    "ACCOUNTING_FINALIZER",
    "ANNOTATION_SPEC_HASH",
    "COMPLETION_INDEX_ANNOTATION",
    "JOB_NAME_LABEL",
    "LABEL_FLAVOR",
    "LABEL_MANAGED_BY",
    "LABEL_TEAM",
    "LABEL_TRAININGJOB",
    "MANAGED_BY",
    "WORKER_CONTAINER",
    "BuildError",
    "FlavourRequiredError",
    "GangRequest",
    "InvalidTeamError",
    "JobFailure",
    "TrainingJobChildren",
    "UnknownFlavourError",
    "active_deadline_seconds",
    "admission_record",
    "as_spec",
    "build_headless_service",
    "build_job",
    "build_pod_group",
    "build_training_job_children",
    "completion_index",
    "gang_request",
    "job_name",
    "master_addr",
    "matches_admission",
    "needs_service",
    "parse_job_failure",
    "pod_group_name",
    "procs_per_worker",
    "service_name",
    "torchrun_command",
    "uses_pod_group",
]
