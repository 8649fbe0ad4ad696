"""The store, as the admission core's `Snapshot`. Pure: no I/O, no Kubernetes client.

Which TrainingJobs are workloads (a waiting one has no Job: Cadre creates it at
admission):
- every TrainingJob not finished, not being deleted and not `spec.suspend`, with or
  without a Job; a finished Job holds nothing;
- `spec.suspend: true` holds nothing, unless its Job still runs (it is being stopped);
- admitted = its status holds an admission (the durable truth, which users cannot
  write): the Job it names, or none yet (`to_start`: the loop creates it); or a Job of
  it runs that no admission names (someone else made or unsuspended it): it holds what
  it uses until the loop deletes it (`unadmitted`);
- a waiting job whose last run's pods still run (preempted, their deletion on its way)
  is not admitted until they stop (problem `Stopping`), nor one whose Job of an earlier
  Cadre, suspended, still has pods;
- a job whose Job cannot be built, or whose Job the API server refused for this
  generation of the spec, waits with reason InvalidSpec until the spec changes;
- an admitted job is counted by its spec only while the spec asks for what its admission
  records (`matches_admission`); one whose spec no longer parses, or asks for other
  workers or resources (SpecChanged), is stopped before anything else is admitted and
  queued again (`invalid_running`). So a spec edited under a running Job never changes
  what the pass counts it for.

A job that cannot be scheduled at all (no budget covers its namespace, no flavour, an
unknown flavour or priority) is not given to the core; it is returned in `problems`
with a reason and a message for its status, or, for a namespace without a budget when
the config says `unbudgetedNamespaces: Run`, in `unbudgeted` (admitted without quota).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal, cast

from pydantic import ValidationError

from cadre.core.api.config import OperatorConfig
from cadre.core.api.names import ANNOTATION_SPEC_HASH
from cadre.core.api.resourcebudget import ResourceAmounts, ResourceBudgetSpec
from cadre.core.api.trainingjob import TrainingJobSpec
from cadre.core.budget.status import spend_from_status
from cadre.core.cluster.nodes import node_capacities, node_parts
from cadre.core.cluster.serving import ServingView, serving_view
from cadre.core.cluster.store import Store
from cadre.core.objects import find_condition, generation_of, key_of, parse_api_time, timestamp
from cadre.core.scheduling import (
    FlavourQuota,
    FlavourSelector,
    Limits,
    QueueingStrategy,
    Resources,
    Snapshot,
    Team,
    Workload,
    WorkloadKind,
    capacity_from_nodes,
)
from cadre.core.training import (
    BuildError,
    GangRequest,
    build_job,
    gang_request,
    matches_admission,
)
from cadre.core.training.job import JobRecord, placement_digest
from cadre.core.training.lifecycle import SPEC_CHANGED
from cadre.core.units.quantity import to_bytes, to_millicores
from cadre.core.workloads.errors import invalid_spec_message
from cadre.core.workloads.resources import PodRequest, pod_request
from cadre.core.workloads.scheduling import PODS_READY_TIMEOUT

__all__ = [
    "REFUSED_PREFIX",
    "JobShape",
    "Problem",
    "SnapshotBuild",
    "WorkloadInfo",
    "build_snapshot",
    "expected_job",
    "parse_ahead",
    "team_of_budget",
    "unparsed",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a job is not even considered for admission (a condition reason and message)."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """What the status writers need to know of a workload in this pass."""

    team: str | None
    gpus: int
    generation: int
    admitted: bool
    uid: str = ""
    """The UID of the object the pass decided on (a TrainingJob or ModelDeployment)."""
    job_digest: str | None = None
    """The placement digest of the Job the TrainingJob's spec builds: what its admission
    allows (`admission.jobDigest`)."""
    flavor: str | None = None
    priority: str | None = None
    request: GangRequest | None = None
    """What the TrainingJob's spec asks for: what its admission records it holds."""


@dataclass(frozen=True, slots=True)
class SnapshotBuild:
    snapshot: Snapshot
    info: Mapping[str, WorkloadInfo]
    """Every TrainingJob considered (workloads, problems and unbudgeted)."""
    problems: Mapping[str, Problem]
    unbudgeted: tuple[str, ...]
    """Not admitted jobs of namespaces without a budget, to admit without quota (Run)."""
    conflicts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """namespace -> other budgets that also claim it (the first by name wins)."""
    unadmitted: tuple[str, ...] = ()
    """TrainingJobs with a Job that no admission names (`Store.stray`): to delete at once
    (reported when it ran)."""
    to_start: tuple[str, ...] = ()
    """Admitted jobs without their Job (its creation after the admission's write failed
    or was cut short, or the Job was deleted), or with an earlier Cadre's Job still
    suspended: to create, or unsuspend."""
    invalid_running: tuple[str, ...] = ()
    """Admitted jobs whose spec no longer parses, or asks for other workers or resources
    than their admission holds (SpecChanged): to stop, like victims, before anything is
    admitted (their reason is in `problems`), and queue again with the spec as it is."""
    serving: Mapping[str, ServingView] = field(default_factory=dict)
    """Every ModelDeployment, by workload key ("md:namespace/name")."""
    timed_out: tuple[str, ...] = ()
    """Admitted jobs whose workers were not all running within
    admission.waitForPodsReady.timeoutSeconds: to requeue, like victims, before anything
    is admitted (their message is in `problems`)."""
    next_deadline: datetime | None = None
    """The earliest time a decision changes by the clock alone: an admitted gang's
    waitForPodsReady timeout, or a requeued one's backoff ending (the loop wakes then)."""


def _cpu(value: str | int | None) -> int | None:
    return None if value is None else to_millicores(value)


def _memory(value: str | int | None) -> int | None:
    return None if value is None else to_bytes(value)


def _limits(amounts: ResourceAmounts | None) -> Limits | None:
    if amounts is None:
        return None
    return Limits(amounts.gpus, _cpu(amounts.cpu), _memory(amounts.memory))


def team_of_budget(budget: Mapping[str, Any]) -> Team:
    """The core's Team of a ResourceBudget wire dict (defaults as the CRD's schema)."""
    name = str(budget["metadata"]["name"])
    spec = ResourceBudgetSpec.model_validate(budget.get("spec") or {})
    quotas = tuple(
        FlavourQuota(
            flavour=q.flavor,
            nominal=Limits(q.gpus, _cpu(q.cpu), _memory(q.memory)),
            borrowing_limit=_limits(q.borrowing_limit),
            lending_limit=_limits(q.lending_limit),
        )
        for q in spec.quota or ()
    )
    return Team(
        name=name,
        quotas=quotas,
        cohort=spec.cohort,
        fair_share_weight=spec.fair_share_weight,
        queueing=QueueingStrategy(spec.queueing_strategy),
    )


def _team(budget: Mapping[str, Any]) -> Team | None:
    try:
        return team_of_budget(budget)
    except (ValidationError, ValueError):  # the CRD validates; never let one break a pass
        return None


_Parsed = tuple[GangRequest, str | None] | Problem


def _parse(tj: Mapping[str, Any], config: OperatorConfig) -> _Parsed:
    try:
        spec = TrainingJobSpec.model_validate(tj.get("spec") or {})
    except ValidationError as err:
        return Problem("InvalidSpec", invalid_spec_message(err))
    request = gang_request(spec)
    known = ", ".join(f.name for f in config.flavors)
    if request.flavor is None:
        return Problem(
            "FlavourRequired",
            "a job is charged to its team's quota of one flavour: set spec.resources.flavor "
            f"(one of {known})",
        )
    if config.flavor(request.flavor) is None:
        return Problem(
            "UnknownFlavour",
            f"flavour {request.flavor!r} is not in the operator config; known: {known}",
        )
    if config.priority_value(spec.priority) is None:
        names = ", ".join(sorted(config.priorities))
        return Problem(
            "UnknownPriority", f"priority {spec.priority!r} is not one of the priorities ({names})"
        )
    return request, spec.priority


def _spec_key(key: str, tj: Mapping[str, Any]) -> tuple[str, str, int]:
    """The snapshot cache's key of a TrainingJob's parsed spec: (key, uid, generation)."""
    return (key, str((tj.get("metadata") or {}).get("uid", "")), generation_of(tj))


def _parsed(
    key: str, tj: Mapping[str, Any], config: OperatorConfig, cache: MutableMapping[Any, Any]
) -> _Parsed:
    """`_parse`, kept in the cache per (key, uid, generation)."""
    cache_key = _spec_key(key, tj)
    parsed = cache.get(cache_key)
    if parsed is None:
        parsed = cache[cache_key] = _parse(tj, config)
    return cast("_Parsed", parsed)


def unparsed(store: Store, cache: Mapping[Any, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The TrainingJobs whose spec the cache has not parsed yet (new ones, new generations):
    the costly part of the next `build_snapshot` (a Job built and hashed for each waiting
    one), which `parse_ahead` can do first, a few at a time."""
    missing: list[tuple[str, Mapping[str, Any]]] = []
    for key, tj in store.trainingjobs.items():
        if _spec_key(key, tj) in cache:
            continue
        metadata = tj.get("metadata") or {}
        # What the pass never parses (see _training_outcome): done, or being deleted.
        job = store.jobs.get(key)
        if (job is not None and job.finished) or metadata.get("deletionTimestamp"):
            continue
        if (tj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        missing.append((key, tj))
    return missing


def parse_ahead(
    store: Store,
    config: OperatorConfig,
    cache: MutableMapping[Any, Any],
    trainingjobs: Iterable[tuple[str, Mapping[str, Any]]],
) -> None:
    """Fill the cache as `build_snapshot` would for these TrainingJobs: their parsed spec,
    and for one not admitted the Job its spec builds for its team. The entries are keyed
    by what they depend on (key, uid, generation, team), so filling them early, while the
    store changes in between, never makes a pass decide on anything stale."""
    team_of_ns: dict[str, str | None] = {}
    for key, tj in trainingjobs:
        if isinstance(_parsed(key, tj, config, cache), Problem) or store.admitted(key):
            continue
        namespace = str((tj.get("metadata") or {}).get("namespace", ""))
        if namespace not in team_of_ns:
            team_of_ns[namespace] = store.team_resolution(namespace).team
        expected_job(tj, team_of_ns[namespace], config, cache)


def _stopping(store: Store, key: str, job: JobRecord) -> bool:
    """The pods of the job's last run are not all gone yet (its Job says so, a pod of it
    is still counted running, or one still exists, stopped and held by a finalizer): it
    is not (re)started before they are (see `Store.pods_present`)."""
    return job.stopping or store.pods_open(key) or store.pods_present(key)


def _priority_denied(
    priority: str | None, limit: str | None, team: str, config: OperatorConfig
) -> Problem | None:
    """A Problem when the job's priority is above the highest its team's budget allows
    (`spec.maxPriority`): it waits, with what to do, rather than jump the line."""
    if limit is None:
        return None
    wanted = config.priority_value(priority)
    allowed = config.priority_value(limit)
    name = priority or config.default_priority
    if allowed is None:
        return Problem(
            "PriorityNotAllowed",
            f"team {team}'s ResourceBudget sets maxPriority {limit!r}, which is not a priority "
            "of the operator config: ask your platform team to fix it",
        )
    if wanted is not None and wanted > allowed:
        return Problem(
            "PriorityNotAllowed",
            f"priority {name!r} is above the highest team {team} may use ({limit!r}, "
            "spec.maxPriority of its ResourceBudget): lower spec.priority",
        )
    return None


def _placement_problem(
    namespace: str,
    *,
    team: str | None,
    conflicts: Mapping[str, tuple[str, ...]],
    running: bool,
    priority: str | None,
    max_priority: Mapping[str, str],
    config: OperatorConfig,
) -> Problem | Literal["unbudgeted"] | None:
    """Why a workload of `namespace` cannot be placed in a team's queue (None: it can;
    "unbudgeted": no budget covers it and the config says such work runs without one)."""
    if namespace in conflicts and not running:
        # Never a silent pick: new work waits until one budget alone claims the
        # namespace (admitted work stays, charged to the first by name).
        claimants = ", ".join(sorted((team or "", *conflicts[namespace])))
        return Problem(
            "NamespaceConflict",
            f"namespace {namespace} is claimed by several ResourceBudgets ({claimants}): "
            "ask your platform team to keep it in one",
        )
    if not running and team is not None:
        denied = _priority_denied(priority, max_priority.get(team), team, config)
        if denied is not None:
            return denied
    if team is None:
        if config.unbudgeted_namespaces == "Run":
            return "unbudgeted"
        return Problem(
            "NoBudget",
            f"no ResourceBudget covers namespace {namespace}: ask your platform team "
            "to add it to a team's budget",
        )
    return None


@dataclass(frozen=True, slots=True)
class _ServingOutcome:
    info: WorkloadInfo
    workload: Workload | None = None
    problem: Problem | None = None
    unbudgeted: bool = False
    timed_out: bool = False
    """Its replicas.min were not all scheduled in time: to requeue (what it holds is not
    counted, as for a victim)."""
    deadline: datetime | None = None
    """When its timeout or backoff falls due (the loop wakes then)."""


def _serving_requeue(
    outcome: _ServingOutcome,
    view: ServingView,
    md: Mapping[str, Any],
    *,
    store: Store,
    now: datetime,
    timeout_seconds: int,
) -> _ServingOutcome:
    """admission.waitForPodsReady over a ModelDeployment's outcome: requeue it when its
    replicas.min were not scheduled in time; while it waits out its backoff, or has used
    up its requeues (until its spec changes), it is not admissible (what still runs is
    counted)."""
    spec = view.spec
    if spec is None or view.problem is not None or spec.stopped:
        return outcome
    if (md.get("metadata") or {}).get("deletionTimestamp"):
        return outcome
    late, deadline = _serving_readiness(view, md, store, now, timeout_seconds)
    if late is not None:
        return _ServingOutcome(outcome.info, problem=late, timed_out=True)
    if deadline is not None:
        return replace(outcome, deadline=deadline)
    if view.admission is not None:
        return outcome
    holding = (
        outcome.workload if outcome.workload is not None and outcome.workload.admitted else None
    )
    requeue = (md.get("status") or {}).get("requeue") or {}
    if requeue.get("generation") == view.generation:  # used up its requeues
        said = find_condition(md.get("status") or {}, "Admitted") or {}
        message = str(said.get("message") or "its replicas were not scheduled in time")
        return _ServingOutcome(outcome.info, holding, Problem(PODS_READY_TIMEOUT, message))
    waiting_until = _requeue_at(md, False, now)
    if waiting_until is not None:
        problem = _backoff_problem(md, waiting_until, timeout_seconds)
        return _ServingOutcome(outcome.info, holding, problem, deadline=waiting_until)
    return outcome


def _serving_readiness(
    view: ServingView, md: Mapping[str, Any], store: Store, now: datetime, timeout_seconds: int
) -> tuple[Problem | None, datetime | None]:
    """admission.waitForPodsReady for a ModelDeployment: (why to requeue it, or None; when
    its time runs out). It waits for its replicas.min to be scheduled (bound to nodes), not
    ready: a large model may load for longer than the timeout, on GPUs it does use."""
    status = md.get("status") or {}
    if view.admission is None or status.get("phase") != "Loading":
        return None, None
    admitted_at = parse_api_time(status.get("admittedAt"))
    if not isinstance(admitted_at, datetime):
        return None, None
    pods = (store.serving_pods.get(view.key) or {}).values()
    scheduled = sum(1 for p in pods if p.scheduled and not p.gone)
    if scheduled >= view.gang:
        return None, None
    deadline = admitted_at + timedelta(seconds=timeout_seconds)
    if now < deadline:
        return None, deadline
    waiting = sorted(
        (p for p in store.unscheduled_of(view.workload_key) if p.message), key=lambda p: p.name
    )
    why = f" ({waiting[0].name} waits: {waiting[0].message})" if waiting else ""
    return (
        Problem(
            PODS_READY_TIMEOUT,
            f"{scheduled}/{view.gang} replicas scheduled {timeout_seconds}s after admission{why}",
        ),
        None,
    )


def _serving_workload(
    view: ServingView,
    md: Mapping[str, Any],
    store: Store,
    config: OperatorConfig,
    *,
    conflicts: Mapping[str, tuple[str, ...]],
    max_priority: Mapping[str, str],
) -> _ServingOutcome:
    """A ModelDeployment as the pass's workload: its gang (replicas.min, or the gang it
    was admitted with if smaller) and the extra replicas it wants; admitted while it holds
    anything (an admission, or pods that still exist)."""
    metadata = md.get("metadata") or {}
    spec = view.spec
    admission = view.admission or {}
    flavor = (spec.resources.flavor if spec is not None else None) or admission.get("flavor")
    priority = spec.priority if spec is not None else admission.get("priority")
    held = view.held
    running = held > 0
    per_replica = (
        pod_request(spec.resources)
        if spec is not None
        else PodRequest(flavor, int(admission.get("gpusPerReplica") or 0), 0, 0)
    )
    info = WorkloadInfo(
        view.team,
        per_replica.gpus,
        view.generation,
        running,
        uid=view.uid,
        flavor=flavor,
        priority=priority,
    )
    created = parse_api_time(metadata.get("creationTimestamp")) or 0.0
    admitted_at = (
        parse_api_time((md.get("status") or {}).get("admittedAt"))
        or store.admitted_at.get(view.workload_key)
        or created
    )

    def holding(problem: Problem | None = None) -> _ServingOutcome:
        # What runs is counted until it is gone, whatever else is wrong; it is not
        # preempted (it is being stopped, or cannot be placed again).
        if not running or flavor is None or view.team is None:
            return _ServingOutcome(info, problem=problem)
        workload = Workload(
            key=view.workload_key,
            team=view.team,
            flavour=str(flavor),
            per_pod=Resources(per_replica.gpus, per_replica.cpu_milli, per_replica.memory_bytes),
            pods=held,
            kind=WorkloadKind.MODEL_DEPLOYMENT,
            priority=config.priority_value(priority) or 0,
            created=created,
            admitted=True,
            admitted_at=admitted_at,
            preemptible=False,
        )
        return _ServingOutcome(info, workload=workload, problem=problem)

    if view.problem is not None:
        return holding(Problem(*view.problem))
    assert spec is not None
    if metadata.get("deletionTimestamp") or spec.stopped:
        return holding()  # nothing to admit; what still runs is counted
    if view.admission is None and running:
        # Revoked (preempted) while its pods still stop, or pods someone else started:
        # counted until they are gone, then it queues again.
        return holding(
            Problem(
                "Stopping",
                "its replicas are still stopping: it queues again once they are gone",
            )
        )
    known = ", ".join(f.name for f in config.flavors)
    if flavor is None:
        return holding(
            Problem(
                "FlavourRequired",
                "a model deployment is charged to its team's quota of one flavour: set "
                f"spec.resources.flavor (one of {known})",
            )
        )
    if config.priority_value(priority) is None:
        names = ", ".join(sorted(config.priorities))
        return holding(
            Problem(
                "UnknownPriority",
                f"priority {priority!r} is not one of the priorities ({names})",
            )
        )
    verdict = _placement_problem(
        view.namespace,
        team=view.team,
        conflicts=conflicts,
        running=running,
        priority=priority,
        max_priority=max_priority,
        config=config,
    )
    if verdict == "unbudgeted":
        return _ServingOutcome(info, unbudgeted=view.admitted < view.wanted)
    if verdict is not None or view.team is None:
        return holding(verdict)
    gang = min(view.gang, held) if running else view.gang
    workload = Workload(
        key=view.workload_key,
        team=view.team,
        flavour=flavor,
        per_pod=Resources(per_replica.gpus, per_replica.cpu_milli, per_replica.memory_bytes),
        pods=gang,
        kind=WorkloadKind.MODEL_DEPLOYMENT,
        priority=config.priority_value(priority) or 0,
        created=created,
        extra_replicas=max(view.wanted, held) - gang,
        admitted=running,
        admitted_extra=held - gang if running else 0,
        admitted_at=admitted_at if running else None,
        training_may_preempt=config.serving.training_preempts_serving,
    )
    return _ServingOutcome(info, workload=workload)


@dataclass(frozen=True, slots=True)
class JobShape:
    """What the Job a TrainingJob's spec builds runs and where."""

    spec_hash: str
    placement: str
    """`placement_digest` of its spec: what its admission allows (`admission.jobDigest`)."""


REFUSED_PREFIX = "the API server refused its "
"""How the status's InvalidSpec message starts when the API server refused a child."""


def expected_job(
    tj: Mapping[str, Any],
    team: str | None,
    config: OperatorConfig,
    cache: MutableMapping[Any, Any] | None = None,
) -> JobShape | Problem:
    """The shape of the Job the TrainingJob's spec builds now for `team`, or why none can
    be built. `cache` keeps it per (key, uid, generation, team): building a Job is the
    costly part."""
    metadata = tj.get("metadata") or {}
    cache_key = (key_of(tj), str(metadata.get("uid", "")), generation_of(tj), team)
    if cache is not None and cache_key in cache:
        return cast("JobShape | Problem", cache[cache_key])
    shape: JobShape | Problem
    try:
        job = build_job(
            tj,
            name=str(metadata.get("name", "")),
            namespace=str(metadata.get("namespace", "")),
            uid=str(metadata.get("uid", "")),
            team=team,
            config=config,
        )
        annotation = str(job["metadata"]["annotations"][ANNOTATION_SPEC_HASH])
        shape = JobShape(annotation, placement_digest(job["spec"]))
    except BuildError as err:
        shape = Problem(err.reason, str(err))
    if cache is not None:
        cache[cache_key] = shape
    return shape


def _refused(status: Mapping[str, Any], generation: int) -> Problem | None:
    """The API server refused the children this generation builds (the loop said so in
    the status, InvalidSpec): it is not admitted again until the spec changes."""
    said = find_condition(status, "Admitted") or {}
    message = str(said.get("message") or "")
    if (
        said.get("reason") == "InvalidSpec"
        and message.startswith(REFUSED_PREFIX)
        and said.get("observedGeneration") == generation
    ):
        return Problem("InvalidSpec", message)
    return None


def build_snapshot(
    store: Store,
    config: OperatorConfig,
    cache: MutableMapping[Any, Any] | None = None,
    now: datetime | None = None,
) -> SnapshotBuild:
    """The admission core's input from the store. `cache` (kept by the caller between
    passes) saves re-validating unchanged specs and rebuilding their Jobs' hashes; keys
    are (key, uid, generation[, team]). `now` (the caller's clock) applies
    admission.waitForPodsReady: without it nothing times out and no backoff holds."""
    if cache is None:
        cache = {}
    selectors = [FlavourSelector(f.name, dict(f.node_labels)) for f in config.flavors]
    flavours = capacity_from_nodes(
        selectors,
        (
            node_parts(name, record, config.flavors, cache).node
            for name, record in store.nodes.items()
        ),
    )
    teams: list[Team] = []
    for _, budget in sorted(store.budgets.items()):
        budget_team = _team(budget)
        if budget_team is None:
            continue
        spend = store.spend.get(budget_team.name) or spend_from_status(budget)
        teams.append(budget_team if spend is None else replace(budget_team, spend=spend))
    max_priority = {
        name: str(limit)
        for name, budget in store.budgets.items()
        if (limit := (budget.get("spec") or {}).get("maxPriority"))
    }
    team_of_ns: dict[str, str | None] = {}
    conflicts: dict[str, tuple[str, ...]] = {}

    workloads: list[Workload] = []
    info: dict[str, WorkloadInfo] = {}
    problems: dict[str, Problem] = {}
    unbudgeted: list[str] = []
    unadmitted: list[str] = []
    to_start: list[str] = []
    invalid_running: list[str] = []
    timed_out: list[str] = []
    deadlines: list[datetime] = []
    readiness = config.admission.wait_for_pods_ready
    for key, tj in store.trainingjobs.items():
        job = store.jobs.get(key)
        namespace = str((tj.get("metadata") or {}).get("namespace", ""))
        if namespace not in team_of_ns:
            resolution = store.team_resolution(namespace)
            team_of_ns[namespace] = resolution.team
            if resolution.conflicts:
                conflicts[namespace] = resolution.conflicts
        team = team_of_ns[namespace]
        # A job that only waits (no Job, no pods, nothing expected of it, no admission,
        # no requeue: see _WaitingMemo) decides as it did in the last pass while the
        # stored object itself and its team's say are the same: most of a long queue.
        plain = job is None and key not in store.expectations and not store.pod_usage.get(key)
        depends = (team, conflicts.get(namespace), max_priority.get(team) if team else None)
        memo = cache.get((_WAITING, key)) if plain else None
        if isinstance(memo, _WaitingMemo) and memo.tj is tj and memo.depends == depends:
            result = memo.outcome
        else:
            result = _training_outcome(
                store,
                key,
                tj,
                job,
                team=team,
                conflicts=conflicts,
                max_priority=max_priority,
                config=config,
                cache=cache,
                now=now,
            )
            if plain and result.waits_only:
                cache[(_WAITING, key)] = _WaitingMemo(tj, depends, result)
        if result.unadmitted:
            unadmitted.append(key)  # a running one holds what it uses until it is gone
        if result.info is None:
            continue
        info[key] = result.info
        if result.to_start:
            to_start.append(key)
        if result.deadline is not None:
            deadlines.append(result.deadline)
        if result.problem is not None:
            problems[key] = result.problem
            if result.invalid_running:
                invalid_running.append(key)
            if result.timed_out:
                timed_out.append(key)  # stopped this pass: what it holds is not counted
        elif result.unbudgeted:
            unbudgeted.append(key)
        elif result.workload is not None:
            workloads.append(result.workload)
    serving: dict[str, ServingView] = {}
    for key, md in store.modeldeployments.items():
        namespace = key.split("/", 1)[0]
        if namespace not in team_of_ns:
            resolution = store.team_resolution(namespace)
            team_of_ns[namespace] = resolution.team
            if resolution.conflicts:
                conflicts[namespace] = resolution.conflicts
        view = serving_view(store, key, config, team_of_ns[namespace], cache)
        if view is None:
            continue
        serving[view.workload_key] = view
        outcome = _serving_workload(
            view, md, store, config, conflicts=conflicts, max_priority=max_priority
        )
        if now is not None and readiness.enabled:
            outcome = _serving_requeue(
                outcome, view, md, store=store, now=now, timeout_seconds=readiness.timeout_seconds
            )
            if outcome.deadline is not None:
                deadlines.append(outcome.deadline)
            if outcome.timed_out:
                timed_out.append(view.workload_key)
        info[view.workload_key] = outcome.info
        if outcome.problem is not None:
            problems[view.workload_key] = outcome.problem
        if outcome.workload is not None:
            workloads.append(outcome.workload)
        if outcome.unbudgeted:
            unbudgeted.append(view.workload_key)
    nodes = None
    if config.admission.node_placement and store.bound_pods_listed:
        nodes, bound = node_capacities(store.nodes, store.bound_pods.values(), config, cache)
        workloads = [
            replace(w, bound=bound[w.key]) if w.admitted and w.key in bound else w
            for w in workloads
        ]
    return SnapshotBuild(
        snapshot=Snapshot(
            flavours=flavours, teams=tuple(teams), workloads=tuple(workloads), nodes=nodes
        ),
        info=info,
        problems=problems,
        unbudgeted=tuple(sorted(unbudgeted)),
        conflicts=conflicts,
        unadmitted=tuple(unadmitted),
        to_start=tuple(to_start),
        invalid_running=tuple(invalid_running),
        serving=serving,
        timed_out=tuple(timed_out),
        next_deadline=min(deadlines, default=None),
    )


_WAITING: Final = "waiting"
"""The snapshot cache's key prefix of a waiting job's memo."""


@dataclass(frozen=True, slots=True)
class _TrainingOutcome:
    """What one TrainingJob is in a pass (see build_snapshot)."""

    info: WorkloadInfo | None = None
    """None: not considered at all (finished, being deleted, suspended and stopped)."""
    workload: Workload | None = None
    problem: Problem | None = None
    unbudgeted: bool = False
    unadmitted: bool = False
    to_start: bool = False
    invalid_running: bool = False
    timed_out: bool = False
    deadline: datetime | None = None
    waits_only: bool = False
    """Not admitted and not requeued: the outcome depends on the stored object, its team,
    the namespace's conflicts and the team's maxPriority only (not on the clock)."""


@dataclass(frozen=True, slots=True)
class _WaitingMemo:
    """A waiting job's outcome, valid while the store holds this very object (the store
    replaces an object on every change, never edits it) and `depends` is unchanged."""

    tj: Mapping[str, Any]
    depends: tuple[str | None, tuple[str, ...] | None, str | None]
    outcome: _TrainingOutcome


def _training_outcome(
    store: Store,
    key: str,
    tj: Mapping[str, Any],
    job: JobRecord | None,
    *,
    team: str | None,
    conflicts: Mapping[str, tuple[str, ...]],
    max_priority: Mapping[str, str],
    config: OperatorConfig,
    cache: MutableMapping[Any, Any],
    now: datetime | None,
) -> _TrainingOutcome:
    """One TrainingJob as the pass sees it (the rules are in the module's docstring)."""
    metadata = tj.get("metadata") or {}
    if job is not None and job.finished:
        return _TrainingOutcome()
    unadmitted = store.stray(key)
    status = tj.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed") or metadata.get("deletionTimestamp"):
        return _TrainingOutcome(unadmitted=unadmitted)
    running = store.admitted(key)
    suspend = bool((tj.get("spec") or {}).get("suspend", False))
    if suspend and not running:
        return _TrainingOutcome(unadmitted=unadmitted)
    to_start = (running and not suspend and store.awaits_job(key)) or (
        running
        and not suspend
        and job is not None
        and job.suspended
        and not _stopping(store, key, job)
        and store.has_admission(key)  # an earlier Cadre's Job, admitted and still suspended
    )
    namespace = str(metadata.get("namespace", ""))
    generation = generation_of(tj)
    uid = str(metadata.get("uid", ""))
    parsed = _parsed(key, tj, config, cache)
    if isinstance(parsed, Problem):
        # Admitted, and its spec no longer parses (stored under an older, looser CRD, then
        # edited): what it holds cannot be counted, so it is stopped before anything else
        # is admitted.
        return _TrainingOutcome(
            WorkloadInfo(team, 0, generation, running, uid=uid),
            problem=parsed,
            invalid_running=running,
            waits_only=not running and "requeue" not in status,
            unadmitted=unadmitted,
            to_start=to_start,
        )
    request, priority = parsed
    admission = status.get("admission")
    if running and isinstance(admission, Mapping) and not matches_admission(admission, request):
        # Its spec asks for other workers or resources than its Job holds (changed while
        # it ran, where the admission policy cadre-trainingjob-shape is not installed):
        # counted by its spec it would hold what it does not run, or run what it does not
        # hold. It is stopped before anything is admitted, and queued again as it is now.
        return _TrainingOutcome(
            WorkloadInfo(team, request.gpus, generation, running, uid=uid, flavor=request.flavor),
            problem=Problem(
                SPEC_CHANGED,
                "its workers or resources changed while it was admitted: its Job was "
                "stopped, and it waits in the queue with the spec as it is now",
            ),
            invalid_running=True,
            unadmitted=unadmitted,
        )
    shape = None if running else expected_job(tj, team, config, cache)
    info = WorkloadInfo(
        team,
        request.gpus,
        generation,
        running,
        uid=uid,
        job_digest=shape.placement if isinstance(shape, JobShape) else None,
        flavor=request.flavor,
        priority=priority,
        request=request,
    )
    deadline: datetime | None = None
    readiness = config.admission.wait_for_pods_ready
    if now is not None and readiness.enabled:
        late, deadline = _pods_ready_timeout(tj, job, running, now, readiness.timeout_seconds)
        if late is not None:
            return _TrainingOutcome(
                info, problem=late, timed_out=True, unadmitted=unadmitted, to_start=to_start
            )
        waiting_until = _requeue_at(tj, running, now)
        if waiting_until is not None:
            problem = _backoff_problem(tj, waiting_until, readiness.timeout_seconds)
            return _TrainingOutcome(
                info,
                problem=problem,
                deadline=waiting_until,
                unadmitted=unadmitted,
                to_start=to_start,
            )
    waits_only = not running and "requeue" not in status

    def waiting(problem: Problem) -> _TrainingOutcome:
        return _TrainingOutcome(
            info,
            problem=problem,
            deadline=deadline,
            waits_only=waits_only,
            unadmitted=unadmitted,
            to_start=to_start,
        )

    if not running and (store.pods_open(key) if job is None else _stopping(store, key, job)):
        return waiting(
            Problem(
                "Stopping",
                "the pods of its last run are still stopping: it is considered again once "
                "they are gone",
            )
        )
    if isinstance(shape, Problem):
        return waiting(shape)  # its Job cannot be built: InvalidSpec, with why
    refused = None if running else _refused(status, generation)
    if refused is not None:
        return waiting(refused)
    verdict = _placement_problem(
        namespace,
        team=team,
        conflicts=conflicts,
        running=running,
        priority=priority,
        max_priority=max_priority,
        config=config,
    )
    if verdict == "unbudgeted":
        return _TrainingOutcome(
            info,
            unbudgeted=not running,
            deadline=deadline,
            waits_only=waits_only,
            unadmitted=unadmitted,
            to_start=to_start,
        )
    if verdict is not None:
        return waiting(verdict)
    if team is None:
        return _TrainingOutcome(info, deadline=deadline, unadmitted=unadmitted, to_start=to_start)
    created = parse_api_time(metadata.get("creationTimestamp")) or 0.0
    admitted_at: datetime | float | None = None
    if running:
        admitted_at = (
            parse_api_time(status.get("admittedAt")) or store.admitted_at.get(key) or created
        )
    assert request.flavor is not None  # _parse made it a Problem otherwise
    workload = Workload(
        key=key,
        team=team,
        flavour=request.flavor,
        per_pod=Resources(
            request.gpus_per_pod, request.cpu_milli_per_pod, request.memory_bytes_per_pod
        ),
        pods=request.pods,
        priority=config.priority_value(priority) or 0,
        created=created,
        admitted=running,
        admitted_at=admitted_at,
    )
    return _TrainingOutcome(
        info,
        workload=workload,
        deadline=deadline,
        waits_only=waits_only,
        unadmitted=unadmitted,
        to_start=to_start,
    )


def _pods_ready_timeout(
    tj: Mapping[str, Any],
    job: JobRecord | None,
    running: bool,
    now: datetime,
    timeout_seconds: int,
) -> tuple[Problem | None, datetime | None]:
    """(The reason to requeue it, or None; when its time runs out) for an admitted gang
    whose workers are not all running (phase Admitted: Running once they all are),
    `timeout_seconds` after its admission."""
    status = tj.get("status") or {}
    if not running or (job is not None and job.suspended) or status.get("phase") != "Admitted":
        return None, None
    admitted_at = parse_api_time(status.get("admittedAt"))
    if not isinstance(admitted_at, datetime):
        return None, None
    deadline = admitted_at + timedelta(seconds=timeout_seconds)
    if now < deadline:
        return None, deadline
    workers = int((tj.get("spec") or {}).get("workers") or 1)
    ready = 0 if job is None else job.ready if job.ready is not None else job.active
    why = str((find_condition(status, "Running") or {}).get("message") or "")
    problem = Problem(
        PODS_READY_TIMEOUT,
        f"{min(ready, workers)}/{workers} workers running {timeout_seconds}s after admission"
        + (f" ({why})" if why else ""),
    )
    return problem, None


def _backoff_problem(tj: Mapping[str, Any], until: datetime, timeout_seconds: int) -> Problem:
    """Why a requeued gang waits: what its status already says (the requeue wrote the
    workers and the scheduler's reason there, and the queue writer would otherwise replace
    that with a vaguer sentence), else the bare facts."""
    status = tj.get("status") or {}
    said = find_condition(status, "Admitted") or {}
    if said.get("reason") == PODS_READY_TIMEOUT and said.get("message"):
        return Problem(PODS_READY_TIMEOUT, str(said["message"]))
    count = (status.get("requeue") or {}).get("count", 0)
    return Problem(
        PODS_READY_TIMEOUT,
        f"requeued {count} time(s): its workers were not all running {timeout_seconds}s "
        f"after admission; tried again from {timestamp(until)}",
    )


def _requeue_at(tj: Mapping[str, Any], running: bool, now: datetime) -> datetime | None:
    """Until when a requeued gang waits before it may be admitted again (None: it may)."""
    if running:
        return None
    requeue = (tj.get("status") or {}).get("requeue") or {}
    at = parse_api_time(requeue.get("requeueAt"))
    return at if isinstance(at, datetime) and at > now else None
