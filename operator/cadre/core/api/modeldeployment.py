"""ModelDeployment: a served model with autoscaling and an optional canary."""

from __future__ import annotations

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
    WorkerResources,
)

ModelDeploymentPhase = Literal["Pending", "Progressing", "Ready", "Degraded", "Queued"]

MODEL_URI_PATTERN = r"^(s3|gs|hf|pvc|oci|https?)://[^\s]+$"


class ModelSource(CadreModel):
    """Where the model's files are."""

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


class ReplicaCounts(CadreModel):
    """Replica counts of one version."""

    desired: int = Field(default=0, ge=0, description="Replicas wanted now.")
    ready: int = Field(default=0, ge=0, description="Replicas ready to serve.")


class CanaryStatus(CadreModel):
    """How the canary is doing."""

    replicas: ReplicaCounts | None = None
    traffic_percent: int | None = Field(
        default=None, ge=0, le=100, description="Share of traffic the canary gets now."
    )


class ModelDeploymentStatus(CadreModel):
    """Where the deployment stands. Written by Cadre only."""

    phase: ModelDeploymentPhase | None = Field(
        default=None, description="A one-word summary of the conditions."
    )
    url: str | None = Field(
        default=None, max_length=2048, description="In-cluster URL of the model's Service."
    )
    team: str | None = Field(default=None, max_length=253, description="Budget charged.")
    replicas: ReplicaCounts | None = None
    canary: CanaryStatus | None = None
    cost: Money | None = Field(default=None, description="Cost in the current budget period.")
    conditions: Conditions | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class ModelDeployment(CadreModel):
    """A model served behind a Service, with autoscaling and an optional canary."""

    api_version: Literal["cadre.dev/v1alpha1"] = "cadre.dev/v1alpha1"
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None
