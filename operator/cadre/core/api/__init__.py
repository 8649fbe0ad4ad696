"""The Cadre API (group cadre.dev, version v1alpha1) as pydantic models.

These models are the single source of truth: the CRDs in crds/ are generated
from them, `cadre validate` checks manifests with them, and the operator reads
objects through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from cadre.core.api.common import (
    API_VERSION,
    DNS_LABEL_PATTERN,
    GROUP,
    VERSION,
    WORKLOAD_NAME_MAX_LENGTH,
    WORKLOAD_NAME_PATTERN,
    CadreModel,
    Condition,
)
from cadre.core.api.modeldeployment import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from cadre.core.api.resourcebudget import ResourceBudget, ResourceBudgetSpec, ResourceBudgetStatus
from cadre.core.api.trainingjob import TrainingJob, TrainingJobSpec, TrainingJobStatus


@dataclass(frozen=True, slots=True)
class KindInfo:
    """How one kind appears in the API: names, scope and printer columns."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"]
    model: type[CadreModel]
    printer_columns: tuple[dict[str, object], ...]
    # Stricter object names than Kubernetes' default, where child names derive from them.
    name_pattern: str | None = None
    name_max_length: int | None = None
    name_rule: str = ""  # why the name is restricted, for kubectl explain


KINDS: Final[dict[str, KindInfo]] = {
    "TrainingJob": KindInfo(
        kind="TrainingJob",
        plural="trainingjobs",
        singular="trainingjob",
        short_names=("tj",),
        scope="Namespaced",
        model=TrainingJob,
        name_pattern=WORKLOAD_NAME_PATTERN,
        name_max_length=WORKLOAD_NAME_MAX_LENGTH,
        name_rule="starting with a letter, because pod hostnames and a Service derive from it",
        printer_columns=(
            {
                "name": "Phase",
                "type": "string",
                "jsonPath": ".status.phase",
                "description": "Summary of the conditions: Queued, Running, Succeeded...",
            },
            {
                "name": "Workers",
                "type": "integer",
                "jsonPath": ".spec.workers",
                "description": "Workers in the gang.",
            },
            {
                "name": "Flavor",
                "type": "string",
                "jsonPath": ".spec.resources.flavor",
                "description": "GPU flavour.",
            },
            {
                "name": "GPUs",
                "type": "integer",
                "jsonPath": ".status.gpus",
                "description": "GPUs of the whole gang.",
            },
            {
                "name": "Position",
                "type": "integer",
                "jsonPath": ".status.queue.position",
                "description": "Place in the team's queue while queued, near its head.",
            },
            {
                "name": "Position-Range",
                "type": "string",
                "jsonPath": ".status.queue.positionRange",
                "description": "Behind the exact positions: the range of the place.",
                "priority": 1,
            },
            {
                "name": "GPU-Hours",
                "type": "string",
                "jsonPath": ".status.gpuHours",
                "description": "GPU-hours used.",
                "priority": 1,
            },
            {
                "name": "Cost",
                "type": "string",
                "jsonPath": ".status.cost",
                "description": "Cost so far.",
            },
            {
                "name": "Reason",
                "type": "string",
                "jsonPath": ".status.queue.reason",
                "description": "Why the job waits.",
                "priority": 1,
            },
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
    "ModelDeployment": KindInfo(
        kind="ModelDeployment",
        plural="modeldeployments",
        singular="modeldeployment",
        short_names=("md",),
        scope="Namespaced",
        model=ModelDeployment,
        name_pattern=WORKLOAD_NAME_PATTERN,
        name_max_length=WORKLOAD_NAME_MAX_LENGTH,
        name_rule="starting with a letter, because pod hostnames and a Service derive from it",
        printer_columns=(
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {
                "name": "Ready",
                "type": "string",
                "jsonPath": ".status.ready",
                "description": "Ready replicas / admitted replicas, stable and canary together.",
            },
            {"name": "URL", "type": "string", "jsonPath": ".status.url"},
            {
                "name": "Canary",
                "type": "string",
                "jsonPath": ".status.canary.split",
                "description": "Share of ready replicas (so of traffic) on the canary.",
            },
            {"name": "Cost", "type": "string", "jsonPath": ".status.cost"},
            {"name": "Min", "type": "integer", "jsonPath": ".spec.replicas.min", "priority": 1},
            {"name": "Max", "type": "integer", "jsonPath": ".spec.replicas.max", "priority": 1},
            {"name": "Team", "type": "string", "jsonPath": ".status.team", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
    "ResourceBudget": KindInfo(
        kind="ResourceBudget",
        plural="resourcebudgets",
        singular="resourcebudget",
        short_names=("rb",),
        scope="Cluster",
        model=ResourceBudget,
        name_pattern=DNS_LABEL_PATTERN,
        name_max_length=63,
        name_rule="because the team name is written into labels of the team's pods",
        printer_columns=(
            {"name": "Cohort", "type": "string", "jsonPath": ".spec.cohort"},
            {"name": "Admitted", "type": "integer", "jsonPath": ".status.admitted"},
            {"name": "Queued", "type": "integer", "jsonPath": ".status.queued"},
            {"name": "Spent", "type": "string", "jsonPath": ".status.spend.spent"},
            {"name": "Limit", "type": "string", "jsonPath": ".spec.spend.limit"},
            {
                "name": "Forecast",
                "type": "string",
                "jsonPath": ".status.spend.forecast",
                "priority": 1,
            },
            {"name": "State", "type": "string", "jsonPath": ".status.spend.state"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
}

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "Condition",
    "KindInfo",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ResourceBudget",
    "ResourceBudgetSpec",
    "ResourceBudgetStatus",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
]
