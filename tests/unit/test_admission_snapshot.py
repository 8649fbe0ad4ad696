"""The admission adapter: store -> the core's Snapshot (cadre.core.cluster.snapshot, pure)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cadre.core.api.config import OperatorConfig, parse_config
from cadre.core.api.names import ANNOTATION_ADMISSION, ANNOTATION_SPEC_HASH
from cadre.core.api.trainingjob import TrainingJobSpec
from cadre.core.budget.teams import budget_scope, resolve_team
from cadre.core.cluster.snapshot import build_snapshot, team_of_budget
from cadre.core.cluster.store import Store
from cadre.core.scheduling import Limits, Reason, Resources, schedule
from cadre.core.training import BuildError, admission_record, build_job, gang_request
from cadre.core.training.job import placement_digest
from cadre.core.training.lifecycle import SPEC_CHANGED

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GIB = 1 << 30


@pytest.fixture
def config() -> OperatorConfig:
    return parse_config((EXAMPLES / "operator-config.yaml").read_text())


def node(
    name: str, flavor: str, gpus: int, cpu: str = "48", memory: str = "192Gi"
) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        alloc["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {"name": name, "labels": {"cadre.dev/flavor": flavor}},
        "status": {"allocatable": alloc},
    }


def tj(
    name: str,
    namespace: str = "vision-research",
    *,
    workers: int = 1,
    flavor: str | None = "t4",
    gpus: int = 1,
    priority: str | None = None,
    suspend: bool = False,
    created: str = "2026-11-27T03:00:00Z",
    **extra_meta: Any,
) -> dict[str, Any]:
    resources: dict[str, Any] = {"gpus": gpus, "cpu": "4", "memory": "16Gi"}
    if flavor is not None:
        resources["flavor"] = flavor
    spec: dict[str, Any] = {
        "image": "train:1",
        "workers": workers,
        "resources": resources,
        "suspend": suspend,
    }
    if priority is not None:
        spec["priority"] = priority
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": created,
            "resourceVersion": "1",
            **extra_meta,
        },
        "spec": spec,
    }


def job(
    name: str,
    namespace: str = "vision-research",
    *,
    suspend: bool = True,
    condition: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True"}]
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"job-{name}",
            "labels": {"cadre.dev/trainingjob": name},
            "resourceVersion": "1",
            "ownerReferences": [
                {"kind": "TrainingJob", "name": name, "uid": f"uid-{name}", "controller": True}
            ],
        },
        "spec": {"suspend": suspend},
        "status": status,
    }


def example_store() -> Store:
    store = Store()
    for doc in yaml.safe_load_all((EXAMPLES / "budgets.yaml").read_text()):
        if doc["kind"] == "ResourceBudget":
            store.upsert_budget(doc)
        else:
            store.upsert_namespace(doc)
    for i in range(2):
        store.upsert_node(node(f"t4-{i}", "t4", 4))
    for i in range(4):
        store.upsert_node(node(f"a100-{i}", "a100", 8, cpu="96", memory="1152Gi"))
    store.upsert_node(node("cpu-0", "cpu-only", 0, cpu="32", memory="128Gi"))
    return store


def built_job(store: Store, trainingjob: dict[str, Any]) -> dict[str, Any] | None:
    """The Job the TrainingJob's spec builds (as the reconciler would)."""
    metadata = trainingjob["metadata"]
    namespace = metadata["namespace"]
    scopes = [budget_scope(b) for b in store.budgets.values()]
    team = resolve_team(namespace, store.namespaces.get(namespace), scopes).team
    config = parse_config((EXAMPLES / "operator-config.yaml").read_text())
    try:
        built = build_job(
            trainingjob,
            name=metadata["name"],
            namespace=namespace,
            uid=metadata["uid"],
            team=team,
            config=config,
        )
    except BuildError:
        return None
    return built


def add(store: Store, trainingjob: dict[str, Any], with_job: dict[str, Any] | None = None) -> None:
    """The TrainingJob; with `with_job`, its Job as its spec builds it, and when that Job
    runs, the admission in the TrainingJob's status that names it (as Cadre makes them).
    Without, the TrainingJob waits: a waiting job has no Job."""
    if with_job is None:
        store.upsert_trainingjob(trainingjob)
        return
    built = built_job(store, trainingjob)
    if built is not None:
        spec_hash = built["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
        with_job["metadata"].setdefault("annotations", {})[ANNOTATION_SPEC_HASH] = spec_hash
        with_job["spec"] = {**built["spec"], "suspend": with_job["spec"]["suspend"]}
    if not with_job["spec"]["suspend"]:
        ident = f"adm-{trainingjob['metadata']['name']}"
        with_job["metadata"].setdefault("annotations", {})[ANNOTATION_ADMISSION] = ident
        status = dict(
            trainingjob.get("status")
            or {"phase": "Running", "admittedAt": trainingjob["metadata"]["creationTimestamp"]}
        )
        request = gang_request(TrainingJobSpec.model_validate(trainingjob["spec"]))
        admission = dict(
            status.get("admission") or {"flavor": request.flavor, **admission_record(request)}
        )
        admission.pop("jobUID", None)
        admission.update(id=ident, jobDigest=placement_digest(with_job["spec"]))
        trainingjob = {**trainingjob, "status": {**status, "admission": admission}}
    store.upsert_trainingjob(trainingjob)
    store.upsert_job(with_job)


def test_capacity_from_nodes_counts_the_flavours_gpu_resource(config: OperatorConfig) -> None:
    store = example_store()
    cordoned = node("t4-cordoned", "t4", 4)
    cordoned["spec"] = {"unschedulable": True}
    store.upsert_node(cordoned)
    store.upsert_node(node("stray", "none", 8))
    capacity = {f.name: f.capacity for f in build_snapshot(store, config).snapshot.flavours}
    assert capacity["t4"] == Resources(8, 96_000, 384 * GIB)
    assert capacity["a100"] == Resources(32, 384_000, 4 * 1152 * GIB)
    assert capacity["cpu-only"] == Resources(0, 32_000, 128 * GIB)


def test_teams_from_budgets() -> None:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "budgets.yaml").read_text())]
    vision = team_of_budget(next(d for d in docs if d["metadata"]["name"] == "vision"))
    assert vision.cohort == "research"
    quotas = {q.flavour: q for q in vision.quotas}
    assert quotas["a100"].nominal == Limits(16, None, None)
    assert quotas["a100"].borrowing_limit == Limits(16, None, None)
    assert quotas["a100"].lending_limit is None
    assert quotas["cpu-only"].nominal == Limits(0, 32_000, 128 * GIB)
    nlp_doc = next(d for d in docs if d["metadata"]["name"] == "nlp")
    assert team_of_budget(nlp_doc).quotas[0].lending_limit is None
    nlp_doc["spec"]["quota"][0]["lendingLimit"] = {"gpus": 8, "cpu": "500m"}
    nlp = team_of_budget(nlp_doc)
    assert nlp.queueing.value == "StrictFIFO"
    assert nlp.fair_share_weight == 2
    assert {q.flavour: q for q in nlp.quotas}["a100"].lending_limit == Limits(8, 500, None)


def test_workload_fields(config: OperatorConfig) -> None:
    store = example_store()
    add(store, tj("big", workers=4, flavor="a100", gpus=8, priority="high"))
    build = build_snapshot(store, config)
    (w,) = build.snapshot.workloads
    assert w.key == "vision-research/big"
    assert w.team == "vision"
    assert w.flavour == "a100"
    assert w.pods == 4
    assert w.per_pod == Resources(8, 4000, 16 * GIB)
    assert w.priority == 1000
    assert not w.admitted
    assert build.info["vision-research/big"].gpus == 32
    assert build.info["vision-research/big"].team == "vision"


def test_which_trainingjobs_are_workloads(config: OperatorConfig) -> None:
    store = example_store()
    store.upsert_trainingjob(tj("no-children-yet"))
    add(store, tj("queued"))
    add(store, tj("running"), job("running", suspend=False))
    add(store, tj("done"), job("done", suspend=False, condition="Complete"))
    add(store, tj("failed"), job("failed", suspend=False, condition="Failed"))
    add(store, tj("suspended", suspend=True))
    add(store, tj("suspending", suspend=True), job("suspending", suspend=False))
    add(
        store,
        tj("deleting", deletionTimestamp="2026-11-27T03:01:00Z"),
        job("deleting", suspend=False),
    )
    workloads = {w.key.split("/")[1]: w for w in build_snapshot(store, config).snapshot.workloads}
    # A waiting job has no Job: Cadre creates it at admission.
    assert set(workloads) == {"no-children-yet", "queued", "running", "suspending"}
    assert not workloads["queued"].admitted
    assert workloads["running"].admitted
    assert workloads["suspending"].admitted  # holds its quota until its Job is suspended


def test_problems_are_not_given_to_the_core(config: OperatorConfig) -> None:
    store = example_store()
    store.upsert_namespace({"metadata": {"name": "nobody", "labels": {}}})
    add(store, tj("orphan", "nobody"))
    add(store, tj("cpu-no-flavour", flavor=None, gpus=0))
    add(store, tj("unknown-flavour", flavor="h100"))
    add(store, tj("unknown-priority", priority="urgent"))
    build = build_snapshot(store, config)
    assert build.snapshot.workloads == ()
    reasons = {k.split("/")[1]: p.reason for k, p in build.problems.items()}
    assert reasons == {
        "orphan": "NoBudget",
        "cpu-no-flavour": "FlavourRequired",
        "unknown-flavour": "UnknownFlavour",
        "unknown-priority": "UnknownPriority",
    }
    assert "nobody" in build.problems["nobody/orphan"].message


def test_unbudgeted_namespaces_run(config: OperatorConfig) -> None:
    config = config.model_copy(update={"unbudgeted_namespaces": "Run"})
    store = example_store()
    store.upsert_namespace({"metadata": {"name": "nobody"}})
    add(store, tj("orphan", "nobody"))
    add(store, tj("orphan-running", "nobody"), job("orphan-running", "nobody", suspend=False))
    build = build_snapshot(store, config)
    assert build.unbudgeted == ("nobody/orphan",)
    assert build.snapshot.workloads == ()
    assert not build.problems


def test_gang_larger_than_quota_waits_with_reason(config: OperatorConfig) -> None:
    store = example_store()
    # With its borrowing limit lowered to 8, vision may use 16 a100 GPUs plus 8 borrowed:
    # 4 x 8 = 32 never fits (the cluster has 32).
    for doc in yaml.safe_load_all((EXAMPLES / "budgets.yaml").read_text()):
        if doc["kind"] == "ResourceBudget" and doc["metadata"]["name"] == "vision":
            doc["spec"]["quota"][0]["borrowingLimit"] = {"gpus": 8}
            store.upsert_budget(doc)
    add(store, tj("huge", workers=4, flavor="a100", gpus=8))
    add(store, tj("small", flavor="a100", gpus=8, created="2026-11-27T03:00:01Z"))
    result = schedule(build_snapshot(store, config).snapshot)
    assert [a.key for a in result.admitted] == ["vision-research/small"]
    (pending,) = result.pending
    assert pending.key == "vision-research/huge"
    assert pending.reason == Reason.EXCEEDS_QUOTA
    assert pending.message


def test_running_jobs_count_after_a_restart(config: OperatorConfig) -> None:
    """A new store filled from the API: unsuspended Jobs are admitted, so the quota they
    hold is not given away again."""
    store = example_store()
    # vision's t4: 4 nominal + the 4 nlp lends = 8 = every t4 GPU of the cluster.
    add(store, tj("a", workers=4), job("a", suspend=False))
    add(store, tj("b", workers=4), job("b", suspend=False))
    add(store, tj("c", workers=1, created="2026-11-27T02:00:00Z"))
    result = schedule(build_snapshot(store, config).snapshot)
    assert result.admitted == ()
    assert result.victims == ()
    assert [p.key for p in result.pending] == ["vision-research/c"]


def edit_spec(store: Store, key: str, image: str | None = None, **resources: Any) -> None:
    """What an editor does to a running job's spec where the admission policy
    cadre-trainingjob-shape is not installed: a new generation, the Job unchanged."""
    edited = copy.deepcopy(store.trainingjobs[key])
    workers = resources.pop("workers", None)
    if workers is not None:
        edited["spec"]["workers"] = workers
    if image is not None:
        edited["spec"]["image"] = image
    edited["spec"]["resources"].update(resources)
    edited["metadata"]["generation"] += 1
    edited["metadata"]["resourceVersion"] = str(int(edited["metadata"]["resourceVersion"]) + 1)
    store.upsert_trainingjob(edited)


def test_a_running_job_is_counted_for_what_its_admission_holds(config: OperatorConfig) -> None:
    """A spec edited under a running Job (the policy not installed) is never counted: the
    job is stopped and queued again (SpecChanged), before anything is admitted."""
    store = example_store()
    add(store, tj("a", workers=2, gpus=4), job("a", suspend=False))  # all 8 t4 GPUs
    edit_spec(store, "vision-research/a", image="train:2")  # not what it holds
    build = build_snapshot(store, config)
    (held,) = build.snapshot.workloads
    assert held.admitted and held.pods == 2 and held.per_pod.gpus == 4
    assert build.invalid_running == ()

    edit_spec(store, "vision-research/a", gpus=1)  # 8 GPUs run, 2 would be counted
    build = build_snapshot(store, config)
    assert build.invalid_running == ("vision-research/a",)
    assert build.snapshot.workloads == ()
    problem = build.problems["vision-research/a"]
    assert problem.reason == SPEC_CHANGED
    assert "its Job was stopped" in problem.message


@pytest.mark.parametrize(
    ("edit", "stopped"),
    [({"cpu": "8"}, False), ({"gpus": 2}, True), ({"flavor": "a100"}, True)],
)
def test_an_earlier_admission_is_compared_by_flavour_and_gpus(
    config: OperatorConfig, edit: dict[str, Any], stopped: bool
) -> None:
    """An admission written before it recorded workers and perWorker holds a flavour and
    a number of GPUs: a spec that changes either is stopped, one that changes CPU is not."""
    store = example_store()
    earlier = tj("a", workers=2, gpus=4)
    earlier["status"] = {
        "phase": "Running",
        "admittedAt": "2026-11-27T03:00:00Z",
        "admission": {"flavor": "t4", "gpus": 8},
    }
    add(store, earlier, job("a", suspend=False))
    edit_spec(store, "vision-research/a", **edit)
    assert build_snapshot(store, config).invalid_running == (("vision-research/a",) * stopped)


RESOURCES = st.fixed_dictionaries(
    {
        "workers": st.integers(1, 3),
        "gpus": st.integers(0, 4),
        "cpu": st.sampled_from(["4", "4000m", "2", "500m"]),
        "memory": st.sampled_from(["16Gi", "16384Mi", "8Gi"]),
    }
)


@settings(max_examples=60, deadline=None)
@given(admitted=RESOURCES, edited=RESOURCES)
def test_an_edited_spec_is_counted_as_admitted_or_stopped(
    admitted: dict[str, Any], edited: dict[str, Any]
) -> None:
    """Whatever an editor does to a running job's workers and resources, the pass counts
    it for exactly what its admission holds, or stops it before admitting anything: never
    for what its spec asks now (issue #15: the CRD rule moved to an admission policy)."""
    config = parse_config((EXAMPLES / "operator-config.yaml").read_text())
    store = example_store()
    first = tj("a", workers=admitted["workers"], gpus=admitted["gpus"])
    first["spec"]["resources"].update(cpu=admitted["cpu"], memory=admitted["memory"])
    add(store, first, job("a", suspend=False))  # admitted for its first spec
    holds = gang_request(TrainingJobSpec.model_validate(first["spec"]))
    edit_spec(store, "vision-research/a", **edited)
    build = build_snapshot(store, config)
    if build.invalid_running:
        assert build.invalid_running == ("vision-research/a",)
        assert build.snapshot.workloads == ()
        return
    (counted,) = build.snapshot.workloads
    assert counted.admitted
    assert (counted.pods, counted.per_pod) == (
        holds.pods,
        Resources(holds.gpus_per_pod, holds.cpu_milli_per_pod, holds.memory_bytes_per_pod),
    )


def test_cache_keeps_parsed_specs_per_generation(config: OperatorConfig) -> None:
    store = example_store()
    add(store, tj("a"))
    cache: dict[Any, Any] = {}
    build_snapshot(store, config, cache)
    # Each node as the pass reads it (one parse for capacity and placement), the parsed
    # spec, the hash of the Job that spec builds for its team, and the waiting job's
    # outcome (tests/unit/test_snapshot_memo.py).
    nodes = [("node parts", name) for name in store.nodes]
    assert [k for k in cache if k[0] == "node parts"] == nodes
    assert [k for k in cache if k[0] != "node parts"] == [
        ("vision-research/a", "uid-a", 1),
        ("vision-research/a", "uid-a", 1, "vision"),
        ("waiting", "vision-research/a"),
    ]
    changed = tj("a", workers=2)
    changed["metadata"].update(generation=2, resourceVersion="2")
    store.upsert_trainingjob(changed)
    # A waiting job has no Job to rebuild: the pass decides on the new spec at once.
    (w,) = build_snapshot(store, config, cache).snapshot.workloads
    assert w.pods == 2
    assert ("vision-research/a", "uid-a", 2) in cache


def test_cached_nodes_follow_the_store(config: OperatorConfig) -> None:
    """A node is parsed once and kept until the store replaces its record: a cordoned
    node's GPUs leave the flavour's capacity in the next pass, with the cache kept."""
    store = example_store()
    cache: dict[Any, Any] = {}

    def a100_gpus() -> int:
        flavours = build_snapshot(store, config, cache).snapshot.flavours
        return next(f.capacity.gpus for f in flavours if f.name == "a100")

    assert a100_gpus() == 32
    assert a100_gpus() == 32  # from the cache
    cordoned = node("a100-0", "a100", 8, cpu="96", memory="1152Gi")
    cordoned["spec"] = {"unschedulable": True}
    store.upsert_node(cordoned)
    assert a100_gpus() == 24
    store.upsert_node(node("a100-0", "a100", 8, cpu="96", memory="1152Gi"))
    assert a100_gpus() == 32


def test_invalid_budget_is_skipped(config: OperatorConfig) -> None:
    store = example_store()
    store.upsert_budget(
        {"metadata": {"name": "broken"}, "spec": {"quota": [{"flavor": "t4", "gpus": -1}]}}
    )
    teams = {t.name for t in build_snapshot(store, config).snapshot.teams}
    assert teams == {"nlp", "vision"}
