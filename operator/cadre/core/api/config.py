"""The operator's own configuration: GPU flavours, prices, priorities and knobs.

Platform engineers write it as YAML (Helm renders it into a ConfigMap); the
operator and `cadre validate` parse it with this model.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, field_validator, model_validator

from cadre.core.api.common import DNS_LABEL_PATTERN, CadreModel, DnsLabel, Money

CONFIG_API_VERSION = "config.cadre.dev/v1alpha1"
CONFIG_KIND = "OperatorConfig"


class Toleration(CadreModel):
    """A taint the flavour's pods tolerate, as in a pod spec."""

    key: str = Field(min_length=1, max_length=317)
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Prices(CadreModel):
    """What one hour of each resource of a flavour costs, in the config's currency."""

    gpu_hour: Money = Field(default="0", description="Price of one GPU for one hour.")
    cpu_core_hour: Money = Field(default="0", description="Price of one CPU core for one hour.")
    memory_gib_hour: Money = Field(
        default="0", alias="memoryGiBHour", description="Price of one GiB of memory for one hour."
    )

    def as_decimals(self) -> tuple[Decimal, Decimal, Decimal]:
        return Decimal(self.gpu_hour), Decimal(self.cpu_core_hour), Decimal(self.memory_gib_hour)


class Flavor(CadreModel):
    """A kind of node a workload can ask for, such as a100, t4 or cpu-only."""

    name: DnsLabel
    node_labels: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        min_length=1,
        description="Labels that select the flavour's nodes; they become the pods' nodeSelector.",
    )
    gpu_resource: str = Field(
        default="nvidia.com/gpu",
        pattern=r"^[a-z0-9.-]+/[a-z0-9._-]+$",
        description="The extended resource name of the flavour's GPUs.",
    )
    tolerations: list[Toleration] = Field(default_factory=list, max_length=16)
    prices: Prices = Field(default_factory=Prices)


class WaitForPodsReady(CadreModel):
    """A gang admitted whose workers are not all running within a time gives its quota
    back (Kueue's waitForPodsReady): it is suspended and requeued with exponential
    backoff, and fails after `backoffLimitCount` requeues."""

    enabled: bool = Field(default=True, description="Apply the timeout.")
    timeout_seconds: int = Field(
        default=600,
        ge=5,
        le=86400,
        description="From admission to every worker running; past it the gang is requeued.",
    )
    backoff_base_seconds: int = Field(
        default=60,
        ge=1,
        le=86400,
        description="The first requeue waits this long; each next one twice as long.",
    )
    backoff_max_seconds: int = Field(
        default=3600, ge=1, le=604800, description="The longest wait between requeues."
    )
    backoff_limit_count: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="After this many requeues the job fails (none: requeued for ever).",
    )


class AdmissionSettings(CadreModel):
    """How often the one admission loop of the cluster runs."""

    debounce_ms: int = Field(
        default=200,
        ge=0,
        le=60000,
        description="Under load, a pass starts no sooner than this long after the loop "
        "noticed the change it decides on, to gather a burst of changes; the wait for the "
        "next pass to be allowed (see minIntervalMs) counts towards it. A change that "
        "finds nothing to wait out is decided at once.",
    )
    min_interval_ms: int = Field(
        default=1000,
        ge=0,
        le=600000,
        description="Under load, at most one pass this often (start to start). A cheap "
        "pass (an idle cluster) lets the next one start sooner: four times its computation "
        "after its start, and at least 200 ms, so a change there is decided at once.",
    )
    max_admissions_per_pass: int = Field(
        default=256,
        ge=1,
        le=100000,
        description="Apply at most this many TrainingJob admissions of one pass (in the "
        "order the pass admitted them); the next pass, which starts once they are written, "
        "decides the rest again. Each admission's status is written before the next pass "
        "starts (its Job is created meanwhile): a pass of thousands would hold every later "
        "decision back for minutes.",
    )
    position_refresh_seconds: int = Field(
        default=60,
        ge=5,
        le=3600,
        description="Write a queued job's position, range and the figures in its message at "
        "most this often (its reason is written whenever it changes). Behind the exact "
        "positions a message's figures are not refreshed: only its reason and range.",
    )
    exact_queue_positions: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="A waiting job's status gives its exact place while it is among the "
        "first this many of its team's queue, and a range behind (11-100, 101-1,000, ...): "
        "an admission rewrites at most this many positions, not the whole queue.",
    )
    queue_status_writes_per_second: int = Field(
        default=50,
        ge=1,
        le=10000,
        description="Waiting jobs' status rewrites per second at most, across the cluster (a "
        "new reason goes first, position refreshes after): a queue of 10,000 never turns into "
        "a write storm, and admissions never wait for these writes. A new job's first "
        "status is paced apart (newJobStatusWritesPerSecond).",
    )
    new_job_status_writes_per_second: int = Field(
        default=300,
        ge=1,
        le=10000,
        description="A new job's first status (Queued and why) is written at most this "
        "often a second, apart from queueStatusWritesPerSecond and before it: each job has "
        "one first status, so these writes follow the rate users create jobs and cannot "
        "grow into a storm; a burst of 10,000 shows every job's phase within seconds.",
    )
    wait_for_pods_ready: WaitForPodsReady = Field(
        default_factory=WaitForPodsReady,
        description="What happens to an admitted gang whose workers do not all start.",
    )
    native_gang_scheduling: Literal["Auto", "Native", "Off"] = Field(
        default="Auto",
        description="Kubernetes' own gang scheduling (workload-aware scheduling, "
        "scheduling.k8s.io/v1alpha2, alpha in 1.36): a TrainingJob of several workers gets a "
        "PodGroup, so kube-scheduler binds all its workers or none. Auto: used when the API "
        "server serves PodGroups (looked up at start; Native too, and it warns when they are "
        "not); Off: never.",
    )
    node_placement: bool = Field(
        default=True,
        description="Admit a gang only when all its pods fit on the flavour's nodes as they "
        "are (every bound pod counted, Cadre's or not; cordoned and tainted nodes skipped). "
        "Off: only the sum of the flavour's capacity counts (for clusters whose node "
        "autoscaler adds nodes for pending pods).",
    )


class AccountingSettings(CadreModel):
    """How often budgets' spend is brought up to date."""

    refresh_seconds: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="Recompute every budget's spend (and write its status if it changed) "
        "this often; usage and counts are written within seconds of a pass that changes them.",
    )


class ApiSettings(CadreModel):
    """How Cadre's own calls to the API server behave (Kopf's watches have their own)."""

    timeout_seconds: float = Field(
        default=30, gt=0, le=600, description="Timeout of one attempt of one call."
    )
    retries: int = Field(
        default=5,
        ge=0,
        le=20,
        description="Retries of a call on 429 (after its Retry-After), 5xx and network "
        "errors, with exponential backoff and jitter.",
    )
    backoff_max_seconds: float = Field(
        default=10, gt=0, le=300, description="The longest wait between two attempts."
    )
    max_connections: int = Field(
        default=64, ge=1, le=1024, description="Connections to the API server at most."
    )


class LeaderElectionSettings(CadreModel):
    """One replica writes: the holder of a coordination.k8s.io Lease."""

    enabled: bool = Field(
        default=True,
        description="Off only for a single replica that must run without a Lease (tests).",
    )
    lease_name: DnsLabel = Field(default="cadre-operator", description="The Lease's name.")
    lease_namespace: str | None = Field(
        default=None,
        max_length=63,
        description="The Lease's namespace; default: the operator's own (in a pod), else "
        "cadre-system.",
    )
    lease_duration_seconds: float = Field(
        default=15,
        gt=0,
        le=300,
        description="A standby takes the Lease over when it was not renewed for this long.",
    )
    renew_deadline_seconds: float = Field(
        default=10,
        gt=0,
        le=300,
        description="The leader stops writing (and exits) when it could not renew for this "
        "long: shorter than the lease duration, so it stops before anyone can take over.",
    )
    retry_period_seconds: float = Field(
        default=2, gt=0, le=60, description="How often the leader renews, a standby tries."
    )

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElectionSettings:
        if not (
            self.retry_period_seconds < self.renew_deadline_seconds < self.lease_duration_seconds
        ):
            raise ValueError(
                "leaderElection needs retryPeriodSeconds < renewDeadlineSeconds < "
                "leaseDurationSeconds (the leader must stop writing before its lease can be "
                "taken)"
            )
        return self


EventLoopName = Literal["uvloop", "asyncio"]
"""The operator's event loop (cadre.controller.runtime.event_loop)."""


class ControllerSettings(CadreModel):
    """The reconcilers and the cache."""

    resync_seconds: int = Field(
        default=300,
        ge=5,
        le=86400,
        description="Relist the cluster this often and drop what is gone (repairs what a "
        "missed watch event left behind); also done at once when the API server is "
        "reachable again after an outage. A long relist spaces out the next: relisting "
        "takes at most a tenth of the time.",
    )
    workers: int = Field(
        default=16, ge=1, le=256, description="TrainingJobs reconciled at once, at most."
    )
    gc_threshold: int = Field(
        default=50_000,
        ge=700,
        le=1_000_000,
        description="Net allocations between two collections of Python's youngest garbage "
        "generation (CPython's default is 700). Higher: an admission pass's temporaries are "
        "freed before a collection moves them to the oldest generation, and full "
        "collections, which scan the whole cache, come far less often (docs/benchmarks.md). "
        "Lower it only to trade CPU for a little memory.",
    )
    event_loop: EventLoopName = Field(
        default="uvloop",
        description="The event loop the operator runs on: uvloop (libuv, its TLS and I/O in "
        "C: about a tenth less CPU per API request) or asyncio (the standard library's, "
        "plain Python): the way back if uvloop misbehaves on a platform.",
    )


class GatewayRef(CadreModel):
    """A Gateway API Gateway that serving traffic enters through."""

    name: DnsLabel = Field(description="The Gateway's name.")
    namespace: DnsLabel = Field(description="The Gateway's namespace.")


class ServingSettings(CadreModel):
    """How ModelDeployments are served."""

    storage_initializer_image: str = Field(
        default="kserve/storage-initializer:v0.15.2",
        min_length=1,
        max_length=1024,
        description="Image of the init container that downloads s3://, gs://, hf://, oci:// "
        "and http(s):// models into the pod before the server starts. It is called with the "
        "model URI and the target folder, as KServe's storage-initializer is.",
    )
    credentials_secret: DnsLabel | None = Field(
        default=None,
        description="Default Secret (in the ModelDeployment's namespace) whose keys become "
        "the downloader's environment; a ModelDeployment's model.credentialsSecret wins.",
    )
    model_mount_path: str = Field(
        default="/mnt/models",
        pattern=r"^/[^\s]*$",
        max_length=256,
        description="Where the model's files are in the server container (MODEL_PATH).",
    )
    gateway: GatewayRef | None = Field(
        default=None,
        description="When set and the Gateway API's HTTPRoute kind is served, each "
        "ModelDeployment with a canary also gets an HTTPRoute on this Gateway with the exact "
        "traffic weights.",
    )
    training_preempts_serving: bool = Field(
        default=False,
        description="false: a TrainingJob never preempts a ModelDeployment's replicas.min "
        "(serving keeps its floor); true: it may, by priority, like any other work.",
    )


class OperatorConfig(CadreModel):
    """Cadre's configuration: flavours, prices, priorities and operator knobs."""

    api_version: Literal["config.cadre.dev/v1alpha1"] = "config.cadre.dev/v1alpha1"
    kind: Literal["OperatorConfig"] = "OperatorConfig"
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    timezone: str = Field(default="UTC", description="Timezone of budget periods.")
    flavors: list[Flavor] = Field(min_length=1, max_length=64)
    priorities: dict[Annotated[str, Field(pattern=DNS_LABEL_PATTERN)], int] = Field(
        default_factory=lambda: {"low": 100, "normal": 500, "high": 1000},
        min_length=1,
        description="Named priorities and their values; higher goes first.",
    )
    default_priority: str = Field(default="normal", description="Priority of work that names none.")
    unbudgeted_namespaces: Literal["Queue", "Run"] = Field(
        default="Queue",
        description="Work in a namespace no ResourceBudget covers: Queue (with a reason saying "
        "so) or Run without a budget.",
    )
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    accounting: AccountingSettings = Field(default_factory=AccountingSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    leader_election: LeaderElectionSettings = Field(default_factory=LeaderElectionSettings)
    controller: ControllerSettings = Field(default_factory=ControllerSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    metrics_port: int = Field(default=9090, ge=1, le=65535)
    health_port: int = Field(default=8080, ge=1, le=65535)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(
                f"unknown timezone {value!r}: use an IANA name such as UTC or Europe/Berlin"
            ) from err
        return value

    @field_validator("flavors")
    @classmethod
    def _unique_flavors(cls, flavors: list[Flavor]) -> list[Flavor]:
        seen: set[str] = set()
        for flavor in flavors:
            if flavor.name in seen:
                raise ValueError(f"flavour {flavor.name!r} is defined twice")
            seen.add(flavor.name)
        return flavors

    @model_validator(mode="after")
    def _default_priority_exists(self) -> OperatorConfig:
        if self.default_priority not in self.priorities:
            names = ", ".join(sorted(self.priorities))
            raise ValueError(
                f"defaultPriority {self.default_priority!r} is not one of the priorities ({names})"
            )
        return self

    def flavor(self, name: str) -> Flavor | None:
        return next((f for f in self.flavors if f.name == name), None)

    def priority_value(self, name: str | None) -> int | None:
        """The integer of a named priority (the default when None); None if unknown."""
        return self.priorities.get(self.default_priority if name is None else name)


def parse_config(text: str) -> OperatorConfig:
    """Parse the operator config from YAML text."""
    return OperatorConfig.model_validate(yaml.safe_load(text))
