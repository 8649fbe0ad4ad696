"""ModelDeployments in the admission snapshot (cadre.core.cluster.snapshot and .serving):
the gang of replicas.min, the extras it wants, what it holds (admitted, or running if
more), and the states that hold quota without being admissible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cadre.core.api.config import OperatorConfig, parse_config
from cadre.core.cluster.snapshot import build_snapshot
from cadre.core.cluster.store import Store, serving_key
from cadre.core.scheduling import Resources, WorkloadKind, schedule
from cadre.core.serving.observed import ServingPod
from cadre.core.training import build_job

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NS = "vision-research"
UID = "md-uid-1"


@pytest.fixture
def config() -> OperatorConfig:
    return parse_config((EXAMPLES / "operator-config.yaml").read_text())


def store_with(*mds: dict[str, Any], quota: int = 4) -> Store:
    store = Store()
    store.upsert_budget(
        {
            "metadata": {"name": "vision"},
            "spec": {"namespaces": [NS], "quota": [{"flavor": "t4", "gpus": quota}]},
        }
    )
    store.upsert_node(
        {
            "metadata": {"name": "n1", "labels": {"cadre.dev/flavor": "t4"}},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "nvidia.com/gpu": "8"}},
        }
    )
    for md in mds:
        store.upsert_modeldeployment(md)
    return store


def md(
    name: str = "fraud",
    *,
    minimum: int = 2,
    maximum: int | None = None,
    admission: dict[str, Any] | None = None,
    uid: str = UID,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"uri": "s3://models/fraud/v7"},
        "runtime": {"image": "serve:1"},
        "replicas": {"min": minimum, "max": maximum or minimum},
        "resources": {"flavor": "t4", "gpus": 1, "cpu": "2", "memory": "4Gi"},
    }
    if maximum is not None and maximum > minimum:
        body["autoscaling"] = {"metric": "cpu", "target": 70}
    body.update(spec)
    status: dict[str, Any] = {}
    if admission is not None:
        status["admission"] = {"uid": uid, "flavor": "t4", "team": "vision", **admission}
        status["admittedAt"] = "2026-11-30T01:00:00Z"
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid,
            "generation": 1,
            "creationTimestamp": "2026-11-30T00:00:00Z",
        },
        "spec": body,
        "status": status,
    }


def test_a_new_model_deployment_asks_for_its_gang(config: OperatorConfig) -> None:
    build = build_snapshot(store_with(md()), config)
    (workload,) = build.snapshot.workloads
    assert workload.key == serving_key(f"{NS}/fraud")
    assert workload.kind == WorkloadKind.MODEL_DEPLOYMENT
    assert (workload.pods, workload.extra_replicas, workload.admitted) == (2, 0, False)
    assert workload.per_pod == Resources(1, 2000, 4 << 30)
    assert workload.training_may_preempt is False  # the config's default
    (admission,) = schedule(build.snapshot).admitted
    assert admission.gang and admission.usage == Resources(2, 4000, 8 << 30)


def test_an_admitted_one_holds_its_gang_and_extras(config: OperatorConfig) -> None:
    store = store_with(md(admission={"replicas": 2, "extraReplicas": 1}, maximum=4))
    (workload,) = build_snapshot(store, config).snapshot.workloads
    assert (workload.pods, workload.admitted, workload.admitted_extra) == (2, True, 1)
    # no autoscaler recommendation yet: it keeps what is admitted, and wants no more
    assert workload.extra_replicas == 1


def test_pods_beyond_the_admission_are_counted_until_gone(config: OperatorConfig) -> None:
    store = store_with(md(admission={"replicas": 2, "extraReplicas": 0}))
    for i in range(3):  # someone scaled the Deployment by hand
        pod = ServingPod(f"p{i}", f"fraud-{i}", "stable", True, False, False, None)
        store.upsert_serving_pod(f"{NS}/fraud", pod)
    (workload,) = build_snapshot(store, config).snapshot.workloads
    assert workload.pods + workload.admitted_extra == 3


def test_replicas_still_stopping_hold_quota_and_the_gang_waits(config: OperatorConfig) -> None:
    store = store_with(md())  # revoked: no admission, one pod still stopping
    store.upsert_serving_pod(
        f"{NS}/fraud", ServingPod("p0", "fraud-0", "stable", False, True, False, None)
    )
    build = build_snapshot(store, config)
    (workload,) = build.snapshot.workloads
    assert (workload.pods, workload.admitted, workload.preemptible) == (1, True, False)
    assert build.problems[serving_key(f"{NS}/fraud")].reason == "Stopping"


def test_a_stopped_one_holds_nothing_once_its_pods_are_gone(config: OperatorConfig) -> None:
    build = build_snapshot(store_with(md(stopped=True)), config)
    assert build.snapshot.workloads == ()
    view = build.serving[serving_key(f"{NS}/fraud")]
    assert view.wanted == 0


def test_an_unknown_flavour_is_a_problem_not_a_workload(config: OperatorConfig) -> None:
    bad = md()
    bad["spec"]["resources"]["flavor"] = "h200"
    build = build_snapshot(store_with(bad), config)
    assert build.snapshot.workloads == ()
    assert build.problems[serving_key(f"{NS}/fraud")].reason == "UnknownFlavour"


def test_training_and_serving_share_one_team_quota(config: OperatorConfig) -> None:
    store = store_with(md(admission={"replicas": 2, "extraReplicas": 0}), quota=3)
    train = {
        "metadata": {
            "name": "train",
            "namespace": NS,
            "uid": "tj-1",
            "generation": 1,
            "creationTimestamp": "2026-11-30T00:00:00Z",
        },
        "spec": {"image": "t:1", "workers": 2, "resources": {"flavor": "t4", "gpus": 1}},
    }
    store.upsert_trainingjob(train)
    job = build_job(train, name="train", namespace=NS, uid="tj-1", team="vision", config=config)
    job["metadata"]["uid"] = "job-1"
    store.upsert_job(job)
    result = schedule(build_snapshot(store, config).snapshot)
    assert result.admitted == ()  # 2 of the team's 3 GPUs serve: the gang of 2 waits
    (pending,) = result.pending
    assert pending.key == f"{NS}/train"
