"""The children of a TrainingJob: an Indexed batch/v1 Job and a headless Service.

Pure: plain dicts (the API's wire form) out, nothing read or written. Same input, same
output, byte for byte: names derive from the TrainingJob's name, maps are sorted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from cadre.core.api.config import Flavor, OperatorConfig
from cadre.core.api.names import (
    ACCOUNTING_FINALIZER,
    ANNOTATION_ADMISSION,
    ANNOTATION_SPEC_HASH,
    JOB_NAME_LABEL,
    LABEL_TRAININGJOB,
)
from cadre.core.api.trainingjob import TrainingJob, TrainingJobSpec
from cadre.core.training.failure import WORKER_CONTAINER, pod_failure_policy
from cadre.core.training.pytorch import (
    RENDEZVOUS_ENV,
    pytorch_options,
    rendezvous_env,
    torchrun_command,
)
from cadre.core.units.duration import parse_duration
from cadre.core.workloads.common import (
    cadre_labels,
    merge_user_metadata,
    owner_reference,
    spec_hash,
)
from cadre.core.workloads.errors import BuildError, invalid_spec_message
from cadre.core.workloads.resources import container_resources, place_on_flavour
from cadre.core.workloads.resources import resolve_flavour as resolve_resources_flavour

KIND: Final = "TrainingJob"
RENDEZVOUS_PORT_NAME: Final = "rendezvous"
CHECKPOINT_VOLUME: Final = "checkpoint"
SHM_VOLUME: Final = "dshm"


def job_name(name: str) -> str:
    """The batch/v1 Job of TrainingJob `name`: the same name, so a retry or restart finds it."""
    return name


def service_name(name: str) -> str:
    """The headless Service of TrainingJob `name`: the same name (a Service and a Job may
    share a name). TrainingJob names are RFC 1035 labels of at most 50 characters (the CRD
    checks it), so the Service name and pod hostnames `<name>-<index>` are valid labels."""
    return name


def needs_service(spec: TrainingJobSpec) -> bool:
    """Workers find each other through the headless Service; a single worker has no one
    to find, so it gets none (one object and one API write fewer per job)."""
    return spec.workers > 1


def as_spec(job: TrainingJob | TrainingJobSpec | Mapping[str, Any]) -> TrainingJobSpec:
    """The spec of a model, or of a wire dict: a whole object (with `spec`) or a spec."""
    if isinstance(job, TrainingJobSpec):
        return job
    if isinstance(job, TrainingJob):
        return job.spec
    raw = job.get("spec", job)  # a spec has no field named spec: a whole object has one
    try:
        return TrainingJobSpec.model_validate(raw)
    except ValidationError as err:
        # A stored spec the models refuse (kept from an older, looser CRD): reported as
        # InvalidSpec, never a reconcile retried forever.
        raise BuildError(invalid_spec_message(err)) from err


def resolve_flavour(spec: TrainingJobSpec, config: OperatorConfig) -> Flavor | None:
    """The config's flavour for the spec; None for a job without flavour and without GPUs."""
    return resolve_resources_flavour(spec.resources, config)


def active_deadline_seconds(spec: TrainingJobSpec) -> int | None:
    """maxRuntime in whole seconds (rounded up, at least 1), or None without a maxRuntime.

    The Job controller counts it from the Job's start time, which it resets every time the
    Job is unsuspended: time spent queued never counts, and each admission (after a
    preemption, or each gang retry with a new Job) gets the full maxRuntime again.
    """
    if spec.max_runtime is None:
        return None
    return max(1, math.ceil(parse_duration(spec.max_runtime)))


def _env(spec: TrainingJobSpec, name: str, service: str) -> list[dict[str, Any]]:
    user = [e.to_wire() for e in spec.env or []]
    if spec.distribution != "PyTorch":
        return user
    # Cadre's variables come first so the user's values can refer to them ($(MASTER_ADDR));
    # a user variable of the same name is dropped: the rendezvous must be consistent.
    reserved = set(RENDEZVOUS_ENV)
    ours = rendezvous_env(
        spec, job_name=name, service_name=service if needs_service(spec) else None
    )
    return ours + [e for e in user if e["name"] not in reserved]


def _container(spec: TrainingJobSpec, name: str, flavour: Flavor | None) -> dict[str, Any]:
    service = service_name(name)
    container: dict[str, Any] = {"name": WORKER_CONTAINER, "image": spec.image}
    command = spec.command
    if spec.distribution == "PyTorch":
        command = torchrun_command(command)
    if command is not None:
        container["command"] = list(command)
    if spec.args is not None:
        container["args"] = list(spec.args)
    env = _env(spec, name, service)
    if env:
        container["env"] = env
    if spec.distribution == "PyTorch":
        container["ports"] = [
            {
                "name": RENDEZVOUS_PORT_NAME,
                "containerPort": pytorch_options(spec).port,
                "protocol": "TCP",
            }
        ]
    resources = container_resources(spec.resources, flavour)
    if resources:
        container["resources"] = resources
    # The tail of the log becomes the termination message of a failed worker, so status
    # can say why it failed without anyone running kubectl logs.
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    mounts = [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]
    if spec.checkpoint is not None:
        mounts.append({"name": CHECKPOINT_VOLUME, "mountPath": spec.checkpoint.mount_path})
    container["volumeMounts"] = mounts
    return container


def _volumes(spec: TrainingJobSpec) -> list[dict[str, Any]]:
    # A container's /dev/shm is 64Mi by default: too small for PyTorch DataLoader workers
    # and NCCL's shared-memory transport. A memory-backed emptyDir counts against the
    # worker's memory limit, so it cannot take more than the worker asked for.
    volumes: list[dict[str, Any]] = [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}}]
    if spec.checkpoint is not None:
        volumes.append(
            {
                "name": CHECKPOINT_VOLUME,
                "persistentVolumeClaim": {"claimName": spec.checkpoint.volume_claim},
            }
        )
    return volumes


def _pod_template(
    spec: TrainingJobSpec, name: str, labels: dict[str, str], flavour: Flavor | None
) -> dict[str, Any]:
    user = spec.pod_metadata
    metadata: dict[str, Any] = {
        "labels": merge_user_metadata(user.labels if user else None, labels),
        # Copied to every pod by the Job controller: see ACCOUNTING_FINALIZER.
        "finalizers": [ACCOUNTING_FINALIZER],
    }
    annotations = merge_user_metadata(user.annotations if user else None)
    if annotations:
        metadata["annotations"] = annotations
    pod: dict[str, Any] = {
        # Never: a failed worker is not restarted in place (podFailurePolicy needs it too).
        "restartPolicy": "Never",
    }
    if needs_service(spec):
        # The Job controller names each pod's host <job>-<index>; with the subdomain the
        # cluster DNS serves <job>-<index>.<service> for it.
        pod["subdomain"] = service_name(name)
    if spec.service_account_name is not None:
        pod["serviceAccountName"] = spec.service_account_name
    place_on_flavour(pod, flavour)
    pod["containers"] = [_container(spec, name, flavour)]
    pod["volumes"] = _volumes(spec)
    # No securityContext: training images often run as root, and Cadre does not guess.
    return {"metadata": metadata, "spec": pod}


def build_job(
    job: TrainingJob | TrainingJobSpec | Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str,
    team: str | None,
    config: OperatorConfig,
    admission_id: str | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job that runs the gang: Indexed, `workers` pods at once.

    `name`, `namespace`, `uid`: the TrainingJob's. `team`: the ResourceBudget it is charged
    to (None: no team label). `admission_id`: the admission it is created for (Cadre
    creates a Job only once it is admitted, so it starts at once, annotated with the id
    the status names it by); without one it is built suspended (a preview, or the shape
    to compare with). Raises a `BuildError` (UnknownFlavourError, ...) whose message is
    fit for a status condition.
    """
    spec = as_spec(job)
    flavour = resolve_flavour(spec, config)
    labels = cadre_labels(name, team, flavour.name if flavour is not None else None)
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": spec.workers,
        "parallelism": spec.workers,
        # Created at admission, it runs at once; built without one, nothing may start.
        "suspend": admission_id is None,
        # 0: the Job never replaces a failed worker. A gang cannot continue with one member
        # restarted alone (the rendezvous is fixed at start), so Cadre restarts the whole
        # gang itself, counting spec.retries; the Job only reports the first failure.
        "backoffLimit": 0,
        "podFailurePolicy": pod_failure_policy(),
        # With a podFailurePolicy this is the only allowed value (and the default): a pod
        # is replaced only once it has fully terminated, never two pods for one index.
        "podReplacementPolicy": "Failed",
    }
    deadline = active_deadline_seconds(spec)
    if deadline is not None:
        job_spec["activeDeadlineSeconds"] = deadline
    # No ttlSecondsAfterFinished: Cadre reads the finished Job to write the final status;
    # spec.ttlAfterFinished deletes the TrainingJob, and the Job with it.
    job_spec["template"] = _pod_template(spec, name, labels, flavour)
    if uses_pod_group(spec, config):
        # The pods wait (kube-scheduler's PreEnqueue) until the PodGroup exists, then are
        # bound all together or not at all.
        job_spec["template"]["spec"]["schedulingGroup"] = {
            "podGroupName": pod_group_name(name, admission_id)
        }
    # The hash leaves `suspend` out: it tells what the Job runs, not whether it runs yet.
    hashed = {k: v for k, v in job_spec.items() if k != "suspend"}
    annotations = {ANNOTATION_SPEC_HASH: spec_hash({"labels": labels, "spec": hashed})}
    if admission_id is not None:
        annotations[ANNOTATION_ADMISSION] = admission_id
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(KIND, name, uid)],
        },
        "spec": job_spec,
    }


POD_GROUP_API_VERSION = "scheduling.k8s.io/v1alpha2"
"""Kubernetes 1.36's workload-aware scheduling (alpha; v1alpha3 from 1.37)."""


def uses_pod_group(spec: TrainingJobSpec, config: OperatorConfig) -> bool:
    """Does the gang get a PodGroup (native gang scheduling, several workers)?"""
    return config.admission.native_gang_scheduling == "Native" and spec.workers > 1


POD_GROUP_NAME_MAX = 63
"""A PodGroup's name is kept a DNS label, as its pods' `schedulingGroup` may ask."""


def pod_group_name(name: str, admission_id: str | None) -> str:
    """The PodGroup of the Job made for admission `admission_id`: the TrainingJob's name
    and the admission's first 8 characters. So a gang's next Job (requeued, restarted)
    gets a group of its own: named like the Job, its pods named the earlier Job's group,
    which the garbage collector was deleting and whose protection finalizer
    (scheduling.k8s.io/podgroup-protection) then waited for them too, while the
    reconciler asked for the new group every 4 s (S3: 248 gangs, 8,749 refused creates
    in 27 minutes)."""
    if admission_id is None:
        return job_name(name)
    suffix = f"-{admission_id[:8]}"
    return job_name(name)[: POD_GROUP_NAME_MAX - len(suffix)].rstrip("-.") + suffix


def build_pod_group(
    job: TrainingJob | TrainingJobSpec | Mapping[str, Any],
    *,
    group: str,
    name: str,
    namespace: str,
    team: str | None,
    job_uid: str,
) -> dict[str, Any]:
    """The PodGroup `group` that makes kube-scheduler bind all `workers` pods of the Job
    or none (gang policy, minCount = workers); `group` is what the Job's pods name
    (`pod_group_name` when Cadre built it). Owned by the Job (`job_uid`): it goes with
    it, and a gang restart's new Job has a group of its own."""
    spec = as_spec(job)
    return {
        "apiVersion": POD_GROUP_API_VERSION,
        "kind": "PodGroup",
        "metadata": {
            "name": group,
            "namespace": namespace,
            "labels": cadre_labels(name, team),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_name(name),
                    "uid": job_uid,
                    "controller": True,
                }
            ],
        },
        "spec": {"schedulingPolicy": {"gang": {"minCount": spec.workers}}},
    }


def build_headless_service(
    job: TrainingJob | TrainingJobSpec | Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str,
    team: str | None,
) -> dict[str, Any]:
    """The headless Service that gives each worker the DNS name `<job>-<index>.<service>`.

    It publishes not-ready pods, because workers rendezvous before any of them is ready.
    It has a port only for PyTorch (`rendezvous`); a headless Service needs none for DNS.
    """
    spec = as_spec(job)
    labels = cadre_labels(name, team)
    service_spec: dict[str, Any] = {
        "clusterIP": "None",
        "selector": {JOB_NAME_LABEL: job_name(name), LABEL_TRAININGJOB: name},
        "publishNotReadyAddresses": True,
    }
    if spec.distribution == "PyTorch":
        port = pytorch_options(spec).port
        service_spec["ports"] = [
            {"name": RENDEZVOUS_PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(name),
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                ANNOTATION_SPEC_HASH: spec_hash({"labels": labels, "spec": service_spec})
            },
            "ownerReferences": [owner_reference(KIND, name, uid)],
        },
        "spec": service_spec,
    }


@dataclass(frozen=True, slots=True)
class TrainingJobChildren:
    """Everything a TrainingJob owns, as wire dicts."""

    service: dict[str, Any] | None
    """None for a single worker (see `needs_service`)."""
    job: dict[str, Any]

    def objects(self) -> tuple[dict[str, Any], ...]:
        """In creation order: the Service first, so the names resolve when pods start."""
        return (self.job,) if self.service is None else (self.service, self.job)


def build_training_job_children(
    job: TrainingJob | TrainingJobSpec | Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str,
    team: str | None,
    config: OperatorConfig,
    admission_id: str | None = None,
) -> TrainingJobChildren:
    """The Service (for more than one worker) and the Job of a TrainingJob (see
    `build_job`)."""
    spec = as_spec(job)
    service = (
        build_headless_service(spec, name=name, namespace=namespace, uid=uid, team=team)
        if needs_service(spec)
        else None
    )
    return TrainingJobChildren(
        service=service,
        job=build_job(
            spec,
            name=name,
            namespace=namespace,
            uid=uid,
            team=team,
            config=config,
            admission_id=admission_id,
        ),
    )
