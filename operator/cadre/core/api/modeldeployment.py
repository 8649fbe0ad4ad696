"""ModelDeployment: a served model with autoscaling and an optional canary."""

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
    EnvVar,
    Money,
    PodMetadata,
    QueueStatus,
    RequeueState,
    WorkerResources,
)

ModelDeploymentPhase = Literal[
    "Pending", "Queued", "Loading", "Ready", "Degraded", "QuotaLimited", "Stopped", "Failed"
]
ModelLoadState = Literal["Pending", "Loading", "Loaded", "FailedToLoad"]

MODEL_URI_PATTERN = r"^(s3|gs|hf|pvc|oci|https?)://[^\s]+$"


class ModelSource(CadreModel):
    """Where the model's files are."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.uri.startsWith('pvc://') || "
                    "self.uri.matches('^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^\\\\s]*)?$')",
                    "message": "a pvc:// model is pvc://<claim>/<path>, the claim a "
                    "PersistentVolumeClaim of this namespace",
                    "fieldPath": ".uri",
                },
                {
                    "rule": "!has(self.credentialsSecret) || !self.uri.startsWith('pvc://')",
                    "message": "a pvc:// model is mounted, not downloaded: remove "
                    "credentialsSecret",
                    "fieldPath": ".credentialsSecret",
                },
            ]
        }
    )

    uri: str = Field(
        pattern=MODEL_URI_PATTERN,
        max_length=2048,
        description="Location of the model: s3://, gs://, hf://, pvc://<claim>/<path>, oci:// "
        "or http(s)://. It is passed to the runtime as MODEL_URI.",
    )
    format: (
        Literal["onnx", "pytorch", "tensorflow", "safetensors", "sklearn", "xgboost", "custom"]
        | None
    ) = Field(
        default=None,
        description="The model's format, passed to the runtime as MODEL_FORMAT.",
    )
    credentials_secret: DnsLabel | None = Field(
        default=None,
        description="A Secret in this namespace whose keys become the environment of the "
        "container that downloads the model (for example AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, HF_TOKEN). Default: the operator config's "
        "serving.credentialsSecret. Not used for pvc:// models.",
    )


class Runtime(CadreModel):
    """The serving container."""

    image: str = Field(min_length=1, max_length=1024, description="Image of the model server.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port the server listens on.")
    readiness_path: str = Field(
        default="/healthz",
        pattern=r"^/",
        max_length=1024,
        description="HTTP path that answers 200 when the model is loaded.",
    )
    args: list[Annotated[str, Field(max_length=MAX_STRING)]] | None = Field(
        default=None, max_length=MAX_LIST, description="Arguments for the server."
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=MAX_LIST,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Environment variables for the server.",
    )


class Replicas(CadreModel):
    """Bounds for the number of serving replicas."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.min <= self.max",
                    "message": "replicas.min must not be more than replicas.max",
                    "fieldPath": ".min",
                }
            ]
        }
    )

    min: int = Field(default=1, ge=1, le=1000, description="Replicas kept running at all times.")
    max: int = Field(default=1, ge=1, le=1000, description="Most replicas the autoscaler may run.")


class Autoscaling(CadreModel):
    """When to add or remove replicas between min and max."""

    metric: Literal["cpu", "memory"] = Field(
        default="cpu", description="The utilisation that drives scaling."
    )
    target: int = Field(
        default=70,
        ge=1,
        le=100,
        description="Target average utilisation in percent of the requested amount.",
    )


class Canary(CadreModel):
    """A second version that gets a share of the traffic before it replaces the stable one."""

    model: ModelSource = Field(description="The candidate model.")
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="A different server image for the canary. Default: runtime.image.",
    )
    traffic_percent: int = Field(
        ge=1,
        le=99,
        description="Share of requests, in percent, sent to the canary (1 to 99). To promote "
        "it, move its model to spec.model and remove the canary.",
    )


class ModelDeploymentSpec(CadreModel):
    """What to serve and how. Written by you; Cadre never changes it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.canary) || self.replicas.min >= 2",
                    "message": "a canary needs replicas.min of at least 2: one stable and one "
                    "canary replica at all times",
                    "fieldPath": ".replicas.min",
                },
                {
                    "rule": "!has(self.autoscaling) || (self.autoscaling.metric == 'memory' ? "
                    "has(self.resources.memory) : has(self.resources.cpu))",
                    "message": "autoscaling targets a percent of what each replica requests: "
                    "set spec.resources.cpu (or .memory for the memory metric)",
                    "fieldPath": ".autoscaling",
                },
                {
                    "rule": "has(self.autoscaling) || self.replicas.min == self.replicas.max",
                    "message": "replicas.max above replicas.min needs autoscaling: without it "
                    "replicas.min replicas run; set autoscaling or make max equal to min",
                    "fieldPath": ".replicas.max",
                },
            ]
        }
    )

    model: ModelSource = Field(description="The model to serve.")
    runtime: Runtime = Field(description="The serving container.")
    replicas: Replicas = Field(default_factory=Replicas, description="How many replicas may run.")
    autoscaling: Autoscaling | None = Field(
        default=None,
        description="Scale between replicas.min and replicas.max on CPU or memory use. "
        "Without it, replicas.min replicas run.",
    )
    resources: WorkerResources = Field(description="Resources of each replica.")
    canary: Canary | None = Field(default=None, description="An optional canary version.")
    priority: DnsLabel | None = Field(
        default=None,
        description="A named priority from the operator config. Default: the config's default.",
    )
    pod_metadata: PodMetadata | None = Field(
        default=None, description="Labels and annotations added to every serving pod."
    )
    stopped: bool = Field(
        default=False,
        description="true scales the model to zero replicas and gives its quota back, "
        "keeping the Service and everything else; false starts it again (it queues for quota "
        "like new work).",
    )


class ReplicaCounts(CadreModel):
    """Replica counts of one version."""

    admitted: int = Field(default=0, ge=0, description="Replicas the team's quota admits.")
    desired: int = Field(
        default=0, ge=0, description="Replicas wanted now (replicas.min, or the autoscaler's)."
    )
    ready: int = Field(default=0, ge=0, description="Replicas ready to serve.")


class CanaryStatus(CadreModel):
    """How the canary is doing."""

    replicas: ReplicaCounts | None = None
    traffic_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Share of ready replicas that run the canary, in percent: without a "
        "service mesh, traffic follows ready replicas.",
    )
    split: str | None = Field(
        default=None,
        max_length=32,
        description="The effective split for kubectl get, for example 25% (1/4).",
    )


class ModelStatus(CadreModel):
    """Whether the model's files are in place and loaded."""

    state: ModelLoadState | None = Field(
        default=None,
        description="Pending (no replica started), Loading (downloading or starting), "
        "Loaded (a replica is ready) or FailedToLoad (the download or the server failed).",
    )
    message: str | None = Field(
        default=None, max_length=4096, description="Why, for FailedToLoad: the pod's reason."
    )


class ServingAdmission(CadreModel):
    """What Cadre admitted: the one record that lets serving replicas run and decides what
    they are charged. Written by the operator only (users cannot write status), before the
    Deployments are scaled up; replicas running beyond it are scaled back."""

    uid: str = Field(max_length=64, description="The UID of the ModelDeployment admitted.")
    team: str | None = Field(
        default=None, max_length=253, description="The ResourceBudget whose quota it holds."
    )
    flavor: str = Field(max_length=63, description="The GPU flavour it holds quota of.")
    priority: str | None = Field(
        default=None, max_length=63, description="The named priority it was admitted at."
    )
    replicas: int = Field(
        ge=0, description="Replicas admitted as one gang: replicas.min when it was admitted."
    )
    extra_replicas: int = Field(
        default=0, ge=0, description="Replicas admitted one at a time above the gang."
    )
    gpus_per_replica: int = Field(default=0, ge=0, description="GPUs each replica holds.")


class ModelDeploymentStatus(CadreModel):
    """Where the deployment stands. Written by Cadre only."""

    phase: ModelDeploymentPhase | None = Field(
        default=None, description="A one-word summary of the conditions."
    )
    ready: str | None = Field(
        default=None,
        max_length=32,
        description="Ready replicas / admitted replicas, stable and canary together, for "
        "kubectl get.",
    )
    url: str | None = Field(
        default=None, max_length=2048, description="In-cluster URL of the model's Service."
    )
    team: str | None = Field(default=None, max_length=253, description="Budget charged.")
    queue: QueueStatus | None = Field(
        default=None, description="Set while the gang of replicas.min waits for quota."
    )
    admission: ServingAdmission | None = Field(
        default=None, description="Set while replicas are admitted: how many, team, flavour."
    )
    admitted_at: datetime | None = Field(
        default=None, description="When the gang of replicas.min was admitted."
    )
    requeue: RequeueState | None = Field(
        default=None,
        description="Set once its admission was taken back because its replicas.min were not "
        "all scheduled within admission.waitForPodsReady.timeoutSeconds of its admission.",
    )
    replicas: ReplicaCounts | None = Field(
        default=None, description="Replicas of the stable version."
    )
    canary: CanaryStatus | None = None
    model: ModelStatus | None = Field(default=None, description="The model's load state.")
    gpu_hours: Money | None = Field(
        default=None, description="GPU-hours used in the current budget period."
    )
    cost: Money | None = Field(default=None, description="Cost in the current budget period.")
    conditions: Conditions | None = None
    observed_generation: int | None = Field(
        default=None, ge=0, description="The spec generation this status describes."
    )


class ModelDeployment(CadreModel):
    """A model served behind a Service, with autoscaling and an optional canary."""

    api_version: Literal["cadre.dev/v1alpha1"] = "cadre.dev/v1alpha1"
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None
