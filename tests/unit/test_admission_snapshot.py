"""The admission adapter: store -> the core's Snapshot (cadre.core.cluster.snapshot, pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre.core.api.config import OperatorConfig, parse_config
from cadre.core.api.names import ANNOTATION_ADMISSION, ANNOTATION_SPEC_HASH
from cadre.core.budget.teams import budget_scope, resolve_team
from cadre.core.cluster.snapshot import build_snapshot, team_of_budget
from cadre.core.cluster.store import Store
from cadre.core.scheduling import Limits, Reason, Resources, schedule
from cadre.core.training import BuildError, build_job
from cadre.core.training.job import placement_digest

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
        admission = dict(status.get("admission") or {"flavor": "t4", "gpus": 1})
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
