"""ResourceBudget: a team's GPU/CPU/memory quota per flavour and its money budget."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from cadre.core.api.common import (
    MAX_LIST,
    CadreModel,
    Conditions,
    DnsLabel,
    Money,
    Quantity,
)

SpendState = Literal["Ok", "Warning", "Exceeded"]


class ResourceAmounts(CadreModel):
    """An amount of GPUs, CPU and memory of one flavour."""

    gpus: int | None = Field(default=None, ge=0, le=100000, description="GPUs.")
    cpu: Quantity | None = Field(default=None, description="CPU cores, for example 64 or 500m.")
    memory: Quantity | None = Field(default=None, description="Memory, for example 256Gi.")


class FlavorQuota(CadreModel):
    """The team's guaranteed share of one flavour, and how much it may borrow or lend."""

    flavor: DnsLabel = Field(description="A flavour named in the operator config.")
    gpus: int = Field(default=0, ge=0, le=100000, description="GPUs guaranteed to the team.")
    cpu: Quantity | None = Field(
        default=None, description="CPU guaranteed. Absent: CPU of this flavour is not limited."
    )
    memory: Quantity | None = Field(
        default=None,
        description="Memory guaranteed. Absent: memory of this flavour is not limited.",
    )
    borrowing_limit: ResourceAmounts | None = Field(
        default=None,
        description="How much more than its guarantee the team may use by borrowing idle quota "
        "of its cohort. Absent: as much as the cohort has idle. Needs a cohort.",
    )
    lending_limit: ResourceAmounts | None = Field(
        default=None,
        description="How much of its idle guarantee the team lends to its cohort. Absent: all "
        "of it. Borrowed quota returns to the team when it needs it (borrowers are preempted).",
    )


class SpendPolicy(CadreModel):
    """A money and GPU-hour budget per period, and what happens when it runs out."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.limit) || has(self.gpuHours)",
                    "message": "set limit (money), gpuHours, or both",
                }
            ]
        }
    )

    period: Literal["Daily", "Weekly", "Monthly"] = Field(
        default="Monthly",
        description="The budget period, in the operator config's timezone (UTC by default). "
        "Weekly periods start on Monday.",
    )
    limit: Money | None = Field(
        default=None,
        description="Money the team may spend per period, in the price list's currency, "
        'for example "20000".',
    )
    gpu_hours: int | None = Field(
        default=None, ge=1, description="GPU-hours the team may use per period."
    )
    warn_at: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.5, 0.8],
        max_length=8,
        description="Fractions of the limit at which the budget warns (an Event and a "
        "BudgetWarning condition), for example [0.5, 0.8].",
    )
    when_exceeded: Literal["Queue", "Warn", "Suspend"] = Field(
        default="Queue",
        description="At 100%: Queue holds new work, Warn only tells, Suspend also suspends "
        "running training and scales serving to its minimum.",
    )


class LabelSelectorRequirement(CadreModel):
    """One rule of a label selector."""

    key: str = Field(min_length=1, max_length=317, description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="The test.")
    values: list[Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, max_length=MAX_LIST, description="Values for In and NotIn."
    )


class LabelSelector(CadreModel):
    """Selects namespaces by their labels."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, max_length=MAX_LIST, description="Labels a namespace must have."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=MAX_LIST, description="Rules a namespace's labels must meet."
    )


class ResourceBudgetSpec(CadreModel):
    """A team's quota and budget. Written by the platform team; Cadre never changes it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.namespaces) != has(self.namespaceSelector)",
                    "message": "name the team's namespaces with either namespaces or "
                    "namespaceSelector (exactly one of them)",
                },
                {
                    "rule": "has(self.cohort) || !has(self.quota) || "
                    "self.quota.all(q, !has(q.borrowingLimit))",
                    "message": "borrowingLimit needs a cohort to borrow from: set spec.cohort",
                    "fieldPath": ".quota",
                },
            ]
        }
    )

    namespaces: list[DnsLabel] | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="The team's namespaces.",
    )
    namespace_selector: LabelSelector | None = Field(
        default=None, description="Or: the namespaces whose labels match this selector."
    )
    cohort: DnsLabel | None = Field(
        default=None,
        description="Teams in the same cohort lend idle quota to each other.",
    )
    quota: list[FlavorQuota] | None = Field(
        default=None,
        max_length=MAX_LIST,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["flavor"],
        },
        description="Guaranteed resources per flavour. A flavour not listed has no "
        "guarantee: the team may only borrow it.",
    )
    spend: SpendPolicy | None = Field(default=None, description="An optional money budget.")
    fair_share_weight: float = Field(
        default=1.0,
        ge=0,
        le=1000,
        description="The team's weight when idle capacity is shared: a team with weight 2 "
        "gets about twice the share of a team with weight 1. 0 means last in line.",
    )
    queueing_strategy: Literal["BestEffortFIFO", "StrictFIFO"] = Field(
        default="BestEffortFIFO",
        description="BestEffortFIFO lets smaller jobs pass a job that does not fit yet; "
        "StrictFIFO keeps the team's queue in order even if that leaves GPUs idle.",
    )
    max_priority: DnsLabel | None = Field(
        default=None,
        description="The highest named priority (of the operator config) the team's jobs may "
        "use; a job asking for more stays Queued (reason PriorityNotAllowed). Unset: any.",
    )


class FlavorUsage(CadreModel):
    """What the team's admitted work holds of one flavour now."""

    gpus: int = Field(default=0, ge=0, description="GPUs admitted.")
    cpu: Quantity | None = Field(default=None, description="CPU admitted.")
    memory: Quantity | None = Field(default=None, description="Memory admitted.")
    borrowed_gpus: int = Field(
        default=0, ge=0, description="GPUs of the admitted ones borrowed from the cohort."
    )
    borrowed_cpu: Quantity | None = Field(
        default=None, description="CPU of the admitted beyond the team's guarantee (borrowed)."
    )
    borrowed_memory: Quantity | None = Field(
        default=None, description="Memory of the admitted beyond the team's guarantee (borrowed)."
    )


class PeriodSpend(CadreModel):
    """Spend of one budget period."""

    period_start: datetime | None = Field(default=None, description="Start of the period.")
    period_end: datetime | None = Field(default=None, description="End of the period.")
    spent: Money | None = Field(default=None, description="Money spent in the period.")
    gpu_hours: Money | None = Field(default=None, description="GPU-hours used in the period.")


class SpendStatus(PeriodSpend):
    """The current period's spend, forecast and state."""

    currency: str | None = Field(default=None, max_length=16, description="The currency.")
    forecast: Money | None = Field(
        default=None,
        description="Expected spend at the end of the period: spent plus the last hour's "
        "burn rate for the rest of the period.",
    )
    burn_rate_per_hour: Money | None = Field(
        default=None, description="Money per hour over the last hour."
    )
    period_burn_rate_per_hour: Money | None = Field(
        default=None, description="Money per hour on average since the period started."
    )
    state: SpendState | None = Field(
        default=None, description="Ok, Warning or Exceeded (only with a limit)."
    )
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="The highest warnAt threshold reached."
    )
    previous_period: PeriodSpend | None = Field(
        default=None, description="The totals of the period before this one."
    )


_EXACT_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"


class LedgerCharge(CadreModel):
    """An exact sum of charges."""

    cost: str = Field(default="0", max_length=64, pattern=_EXACT_DECIMAL)
    gpu_seconds: str = Field(default="0", max_length=64, pattern=_EXACT_DECIMAL)


class LedgerStatus(CadreModel):
    """Cadre's record of the charges of pods that are gone (exact, not rounded), so that
    deleting work or restarting the operator never changes what was spent."""

    period_start: datetime | None = Field(default=None, description="The ledger's period.")
    previous_period_start: datetime | None = Field(default=None)
    settled: LedgerCharge | None = Field(
        default=None, description="Charges of this period's pods that are gone."
    )
    previous_settled: LedgerCharge | None = Field(
        default=None, description="The same for the previous period."
    )
    settled_pods: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=20000,
        description="Pods whose charge is recorded but which may still exist.",
    )


class ResourceBudgetStatus(CadreModel):
    """What the team uses and spends. Written by Cadre only."""

    namespaces: list[str] | None = Field(
        default=None, max_length=1024, description="The namespaces the budget covers now."
    )
    usage: dict[str, FlavorUsage] | None = Field(
        default=None, description="Admitted use per flavour."
    )
    spend: SpendStatus | None = None
    ledger: LedgerStatus | None = None
    admitted: int | None = Field(default=None, ge=0, description="Workloads admitted now.")
    queued: int | None = Field(default=None, ge=0, description="Workloads waiting.")
    conditions: Conditions | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class ResourceBudget(CadreModel):
    """A team's GPU, CPU and memory quota per flavour, and its money budget."""

    api_version: Literal["cadre.dev/v1alpha1"] = "cadre.dev/v1alpha1"
    kind: Literal["ResourceBudget"] = "ResourceBudget"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: ResourceBudgetSpec
    status: ResourceBudgetStatus | None = None
