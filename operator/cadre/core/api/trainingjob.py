"""TrainingJob: one training run, single-worker or a distributed gang."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from cadre.core.api.common import (
    MAX_LIST,
    MAX_STRING,
    CadreModel,
    Conditions,
    DnsLabel,
    Duration,
    EnvVar,
    Money,
    PodMetadata,
    QueueStatus,
    RequeueState,
    WorkerResources,
)

TrainingJobPhase = Literal[
    "Queued", "Admitted", "Running", "Succeeded", "Failed", "Preempted", "Suspended"
]

FROZEN_WHILE_ADMITTED = ("image", "command", "args", "workers", "resources", "distribution")
"""Fields that shape the running pods: the admission policy cadre-trainingjob-shape
(manifests/admission-policies.yaml) refuses a change of them while the job is admitted or
running, since it would silently do nothing. Without the policy, a change of the workers
or resources stops the Job and queues the job again (`cadre.core.cluster.snapshot`)."""


class PyTorchOptions(CadreModel):
    """How torchrun is set up on each worker when distribution is PyTorch."""

    procs_per_worker: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Processes per worker (torchrun --nproc-per-node). "
        "Default: the worker's GPU count, or 1 without GPUs.",
    )
    port: int = Field(
        default=29500,
        ge=1024,
        le=65535,
        description="Port of the rendezvous on worker 0 (MASTER_PORT).",
    )


class Checkpoint(CadreModel):
    """A persistent volume for checkpoints, so a preempted or retried job resumes."""

    volume_claim: DnsLabel = Field(
        description="Name of a PersistentVolumeClaim in the job's namespace. It must allow "
        "every worker to mount it (ReadWriteMany) when workers is more than 1.",
    )
    mount_path: str = Field(
        default="/checkpoints",
        pattern=r"^/",
        max_length=1024,
        description="Where the volume is mounted in each worker.",
    )


class TrainingJobSpec(CadreModel):
    """What to train and with what. Written by you; Cadre never changes it."""

    image: str = Field(
        min_length=1,
        max_length=1024,
        description="Container image with your training code, for example ghcr.io/acme/train:1.4.",
    )
    command: list[Annotated[str, Field(max_length=MAX_STRING)]] | None = Field(
        default=None,
        max_length=MAX_LIST,
        description="The command to run, for example [python, train.py]. Default: the image's "
        "entrypoint. With distribution PyTorch, a command that is not already torchrun (or "
        "python -m torch.distributed.run) or a shell is started as `torchrun --no-python "
        "<command>`, once per local process; a shell script or the entrypoint must call "
        "torchrun itself.",
    )
    args: list[Annotated[str, Field(max_length=MAX_STRING)]] | None = Field(
        default=None,
        max_length=MAX_LIST,
        description="Arguments added after the command, for example [--epochs=90].",
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=MAX_LIST,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Environment variables for every worker.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Number of workers (pods). They form a gang: all start together or none "
        "does, and the whole gang counts against your team's quota.",
    )
    resources: WorkerResources = Field(
        description="Resources of each worker. The job asks for workers times this.",
    )
    distribution: Literal["None", "PyTorch"] = Field(
        default="None",
        description="None runs your command as is on every worker. PyTorch sets up torchrun "
        "rendezvous: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, NODE_RANK and the PET_* variables.",
    )
    pytorch: PyTorchOptions | None = Field(
        default=None, description="Options for distribution PyTorch."
    )
    priority: DnsLabel | None = Field(
        default=None,
        description="A named priority from the operator config (for example low, normal, high). "
        "Higher priority jobs are admitted first and may preempt lower ones of your team. "
        "Default: the config's default priority.",
    )
    max_runtime: Duration | None = Field(
        default=None,
        description="Stop the job and mark it Failed (DeadlineExceeded) after running this long, "
        "for example 48h. Time spent queued does not count.",
    )
    retries: int = Field(
        default=0,
        ge=0,
        le=100,
        description="How many times the whole gang is restarted after a worker fails.",
    )
    suspend: bool = Field(
        default=False,
        description="true stops the job and gives its quota back; false queues it again.",
    )
    ttl_after_finished: Duration | None = Field(
        default=None,
        description="Delete the TrainingJob this long after it succeeded or failed, for "
        "example 24h. Its cost stays recorded in the team's budget.",
    )
    checkpoint: Checkpoint | None = Field(
        default=None, description="A volume for checkpoints, mounted in every worker."
    )
    service_account_name: DnsLabel | None = Field(
        default=None,
        description="ServiceAccount the workers run as. Default: the namespace's default.",
    )
    pod_metadata: PodMetadata | None = Field(
        default=None, description="Labels and annotations added to every worker pod."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.pytorch) || self.distribution == 'PyTorch'",
                    "message": "pytorch options are only used with distribution: PyTorch",
                    "fieldPath": ".pytorch",
                }
            ]
        }
    )


class WorkerCounts(CadreModel):
    """How the gang's pods are doing."""

    active: int = Field(default=0, ge=0, description="Pods running or starting.")
    ready: int = Field(default=0, ge=0, description="Pods running and ready.")
    succeeded: int = Field(default=0, ge=0, description="Workers that finished successfully.")
    failed: int = Field(default=0, ge=0, description="Worker pods that failed in this attempt.")


class AdmittedWorker(CadreModel):
    """What one worker of an admitted gang holds of the team's quota."""

    gpus: int = Field(ge=0, description="GPUs of the flavour.")
    cpu_millicores: int = Field(ge=0, description="CPU in millicores (1000 is one core).")
    memory_bytes: int = Field(ge=0, description="Memory in bytes.")


class Admission(CadreModel):
    """What Cadre admitted: the one record that lets a Job run and decides what it is
    charged. Written by the operator only (users cannot write status), before it creates
    the Job; a Job without it is deleted."""

    id: str | None = Field(
        default=None,
        max_length=64,
        description="Names the Job made for this admission (its annotation cadre.dev/admission).",
    )
    job_digest: str | None = Field(
        default=None,
        alias="jobDigest",
        max_length=64,
        description="Where the admitted Job runs and what it holds (a digest of its "
        "parallelism, placement and resources): a Job of another shape holds nothing.",
    )
    job_uid: str | None = Field(
        default=None,
        alias="jobUID",
        max_length=64,
        description="The UID of the Job admitted, in admissions written before Cadre "
        "created Jobs at admission.",
    )
    team: str | None = Field(
        default=None, max_length=253, description="The ResourceBudget whose quota it holds."
    )
    flavor: str = Field(max_length=63, description="The GPU flavour it holds quota of.")
    priority: str | None = Field(
        default=None, max_length=63, description="The named priority it was admitted at."
    )
    gpus: int = Field(ge=0, description="GPUs the whole gang holds.")
    workers: int | None = Field(
        default=None, ge=1, le=1024, description="Workers the admission holds quota for."
    )
    per_worker: AdmittedWorker | None = Field(
        default=None,
        description="What each worker holds of the quota. A spec that asks for other workers "
        "or resources than these no longer matches the admission: its Job is stopped and "
        "the job queued again.",
    )


class TrainingJobStatus(CadreModel):
    """Where the job stands and why. Written by Cadre only."""

    phase: TrainingJobPhase | None = Field(
        default=None, description="A one-word summary of the conditions, for kubectl get."
    )
    team: str | None = Field(
        default=None, max_length=253, description="The ResourceBudget the job is charged to."
    )
    gpus: int | None = Field(
        default=None, ge=0, description="GPUs the whole gang uses: workers times GPUs per worker."
    )
    queue: QueueStatus | None = Field(default=None, description="Set while the job waits.")
    workers: WorkerCounts | None = Field(default=None, description="Pod counts of the gang.")
    restarts: int | None = Field(
        default=None, ge=0, description="How many times the gang was restarted after a failure."
    )
    restarted_job_uid: str | None = Field(
        default=None,
        alias="restartedJobUID",
        max_length=64,
        description="The UID of the failed Job the last restart was for: a restart is counted "
        "once per failed Job, however often the operator retries it.",
    )
    admission: Admission | None = Field(
        default=None,
        description="Set while the gang is admitted (and kept once it finished): the Job, "
        "team, flavour and priority Cadre admitted.",
    )
    admitted_at: datetime | None = Field(default=None, description="When the gang was admitted.")
    requeue: RequeueState | None = Field(
        default=None,
        description="Set once the gang was sent back to the queue because its workers were "
        "not all running within admission.waitForPodsReady.timeoutSeconds of its admission.",
    )
    start_time: datetime | None = Field(
        default=None, description="When all workers were first running."
    )
    completion_time: datetime | None = Field(
        default=None, description="When the job succeeded or failed."
    )
    gpu_hours: Money | None = Field(
        default=None, description="GPU-hours used so far, from the pods' running intervals."
    )
    cost: Money | None = Field(
        default=None, description="Cost so far in the price list's currency."
    )
    conditions: Conditions | None = None
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation this status describes."
    )


class TrainingJob(CadreModel):
    """A training run: a gang of workers admitted together against the team's GPU quota."""

    api_version: Literal["cadre.dev/v1alpha1"] = "cadre.dev/v1alpha1"
    kind: Literal["TrainingJob"] = "TrainingJob"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None
