"""Building blocks shared by the three kinds: wire conventions, quantities, conditions.

Every model is camelCase on the wire, rejects unknown fields (a typo must be an
error, not silently dropped), and carries descriptions that end up in the CRD,
so `kubectl explain` teaches the API.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic.alias_generators import to_camel

from cadre.core.units.duration import DURATION_PATTERN, DurationError, parse_duration
from cadre.core.units.quantity import (
    MAX_QUANTITY_LENGTH,
    QUANTITY_PATTERN,
    QuantityError,
    parse_quantity,
)

GROUP: Final = "cadre.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Names of workloads whose pods get `<name>-<index>` hostnames and a Service of the
# same name: an RFC 1035 label, short enough to leave room for the suffix.
WORKLOAD_NAME_PATTERN: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
WORKLOAD_NAME_MAX_LENGTH: Final = 50
# Condition reasons are CamelCase words, as in metav1.Condition.
REASON_PATTERN: Final = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
MONEY_PATTERN: Final = r"^[0-9]+(\.[0-9]{1,6})?$"

# Bounds that keep CEL evaluation cost bounded on the API server.
MAX_LIST: Final = 64
MAX_STRING: Final = 4096


class CadreModel(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: aliases, no unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _validate_quantity(value: object) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(
            "must be a quantity such as 500m, 4 or 200Gi (a string, or a whole number)"
        )
    try:
        parse_quantity(value)
    except QuantityError as err:
        raise ValueError(str(err)) from err
    return value


# A Kubernetes quantity, kept as written ("200Gi") so a round trip changes nothing.
Quantity = Annotated[
    str | int,
    PlainValidator(_validate_quantity),
    WithJsonSchema(
        {
            # Exactly this anyOf is the structural spelling of int-or-string; the
            # pattern checks strings and the minimum checks integers.
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "maxLength": MAX_QUANTITY_LENGTH,
            "minimum": 0,
        }
    ),
]


def _validate_duration(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a duration string such as 48h, 30m or 1h30m")
    try:
        parse_duration(value)
    except DurationError as err:
        raise ValueError(str(err)) from err
    return value


Duration = Annotated[
    str,
    PlainValidator(_validate_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "maxLength": 32}),
]

DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]

Money = Annotated[
    str,
    Field(
        pattern=MONEY_PATTERN,
        max_length=32,
        description="An amount of money in the price list's currency, as a decimal string.",
    ),
]


def quantity_value(value: str | int | None) -> Decimal:
    """The exact amount of an optional quantity field (absent means zero)."""
    return Decimal(0) if value is None else parse_quantity(value)


class Condition(CadreModel):
    """One aspect of the object's state, as in Kubernetes' metav1.Condition."""

    type: str = Field(
        max_length=316,
        description="What this condition is about, for example Admitted or Ready.",
    )
    status: Literal["True", "False", "Unknown"] = Field(
        description="Whether the condition holds: True, False or Unknown."
    )
    reason: str = Field(
        pattern=REASON_PATTERN,
        max_length=1024,
        description="A one-word CamelCase reason for the last transition, for tools to match.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="A sentence for people: what happened and, if something is wrong, what to do.",
    )
    last_transition_time: datetime = Field(
        description="When the status of this condition last changed."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation of the spec this condition was computed from.",
    )


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description="The detailed state, one entry per condition type. Conditions are the truth; "
        "phase is a summary of them for printing.",
    ),
]


class KeyRef(CadreModel):
    """A key of a Secret or ConfigMap."""

    name: DnsLabel = Field(description="Name of the Secret or ConfigMap.")
    key: str = Field(min_length=1, max_length=253, description="The key whose value is used.")


class EnvVarSource(CadreModel):
    """Where a variable's value comes from when it is not written inline."""

    secret_key_ref: KeyRef | None = Field(
        default=None, description="Take the value from a key of a Secret in the same namespace."
    )
    config_map_key_ref: KeyRef | None = Field(
        default=None, description="Take the value from a key of a ConfigMap in the same namespace."
    )


class EnvVar(CadreModel):
    """An environment variable set in every container of the workload."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.value) && has(self.valueFrom))",
                    "message": "set either value or valueFrom, not both",
                }
            ]
        }
    )

    name: str = Field(
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
        max_length=256,
        description="Variable name, for example WANDB_PROJECT.",
    )
    value: str | None = Field(default=None, max_length=MAX_STRING, description="The value.")
    value_from: EnvVarSource | None = Field(
        default=None, description="Read the value from a Secret or ConfigMap instead."
    )


class PodMetadata(CadreModel):
    """Labels and annotations added to every pod the workload creates."""

    labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None,
        max_length=MAX_LIST,
        description="Extra pod labels, for example for your monitoring.",
    )
    annotations: dict[str, Annotated[str, Field(max_length=MAX_STRING)]] | None = Field(
        default=None,
        max_length=MAX_LIST,
        description="Extra pod annotations, for example for a sidecar injector.",
    )


class WorkerResources(CadreModel):
    """What one worker (one pod) gets: a GPU flavour, GPUs, CPU and memory."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.gpus) || self.gpus == 0 || has(self.flavor)",
                    "message": "a flavor is required when gpus is more than 0: name one of the "
                    "GPU flavours of the operator config, for example a100",
                    "fieldPath": ".flavor",
                    "reason": "FieldValueRequired",
                }
            ]
        }
    )

    flavor: DnsLabel | None = Field(
        default=None,
        description="The GPU flavour to run on, as named in the operator config (for example "
        "a100, t4 or cpu-only). It decides which nodes the pods land on and the price per hour. "
        "Required when gpus is more than 0.",
    )
    gpus: int = Field(
        default=0,
        ge=0,
        le=64,
        description="GPUs per worker. All GPUs of a worker are on one node.",
    )
    cpu: Quantity | None = Field(
        default=None,
        description="CPU per worker, in cores: 4, or 500m for half a core.",
    )
    memory: Quantity | None = Field(
        default=None,
        description="Memory per worker, for example 64Gi (Gi = 2^30 bytes; write Gi, not GB).",
    )


class QueueStatus(CadreModel):
    """Where queued work stands."""

    position: int | None = Field(
        default=None,
        ge=1,
        description="Place in the team's queue (1 = next), while among the first "
        "admission.exactQueuePositions (10). Refreshed about once a minute.",
    )
    position_range: str | None = Field(
        default=None,
        max_length=64,
        description="Behind the exact positions: the range the place is in (11-100, "
        "101-1,000, ...).",
    )
    reason: str | None = Field(
        default=None, max_length=1024, description="Why the job is waiting, in one sentence."
    )


class RequeueState(CadreModel):
    """A gang sent back to the queue because its pods were not all running (a
    TrainingJob's workers) or scheduled (a ModelDeployment's replicas.min) in time after
    admission (Kueue's waitForPodsReady): how often, and when it may be tried again."""

    count: int = Field(ge=0, description="Times it was sent back so far.")
    requeue_at: datetime | None = Field(
        default=None,
        description="Not admitted again before this time (exponential backoff).",
    )
    generation: int | None = Field(
        default=None,
        ge=0,
        description="ModelDeployment: requeued backoffLimitCount times at this generation of "
        "its spec; not admitted again until the spec changes.",
    )
