"""ModelDeployments on the whole local cluster (kube-controller-manager's Deployment,
ReplicaSet and autoscaler controllers, kube-scheduler, KWOK pods that become Ready): the
example serves on its flavour, a canary takes its share of replicas and is promoted
without the ready count ever dropping below replicas.min, serving and training share one
team quota (QuotaLimited until a TrainingJob finishes; training never preempts serving's
floor), stopping and deleting give the quota back, a failing download says why, and the
cost is exact after an operator restart.

No metrics pipeline runs here (no metrics-server: it would scrape kubelets KWOK does not
have), so the autoscaler controller cannot compute a recommendation; where a test needs
the autoscaler to ask for more, it writes the autoscaler's status as the controller
would (ScalingLimited/TooManyReplicas at its maximum) and scales the Deployment through
its scale subresource, as the controller does.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre_process import OperatorProcess, operator_kubeconfig, running_operator
from localcluster import LocalCluster
from waiting import eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
RBS = "/apis/cadre.dev/v1alpha1/resourcebudgets"
T4_GPU_SECOND = Decimal("0.5")


def mds(namespace: str) -> str:
    return f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/modeldeployments"


def tjs(namespace: str) -> str:
    return f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/trainingjobs"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="module")
def config_path(workdir: Path) -> Path:
    """The example config with a t4 GPU at 0.5 a second, spend refreshed every second."""
    config = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    for flavor in config["flavors"]:
        flavor["prices"] = {"gpuHour": "1800"} if flavor["name"] == "t4" else {}
    config["accounting"] = {"refreshSeconds": 1}
    path = workdir / "operator-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def operator(cluster: LocalCluster, workdir: Path, config_path: Path) -> Iterator[OperatorProcess]:
    kubeconfig = operator_kubeconfig(cluster, workdir / "kubeconfig")
    with running_operator(kubeconfig, workdir / "op", config_path) as op:
        yield op


@pytest.fixture
def team(cluster: LocalCluster) -> Iterator[Callable[..., tuple[str, str]]]:
    """make(gpus) -> (budget, namespace): a team with `gpus` t4 GPUs of quota."""
    made: list[tuple[str, str]] = []

    def make(gpus: int = 4) -> tuple[str, str]:
        name = f"serve-{uuid.uuid4().hex[:6]}"
        namespace = cluster.create_namespace(name)
        cluster.wait_default_service_account(namespace)
        cluster.api.create(
            RBS,
            {
                "apiVersion": "cadre.dev/v1alpha1",
                "kind": "ResourceBudget",
                "metadata": {"name": name},
                "spec": {"namespaces": [namespace], "quota": [{"flavor": "t4", "gpus": gpus}]},
            },
        )
        made.append((name, namespace))
        return name, namespace

    yield make
    for name, namespace in made:
        cluster.delete_namespace(namespace, wait=90)  # the operator releases the finalizers
        cluster.api.call("DELETE", f"{RBS}/{name}", ok=(404,))


def modeldeployment(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"uri": "s3://models/fraud/v7", "format": "onnx"},
        "runtime": {"image": "ghcr.io/acme/serve:2.1", "port": 8080},
        "replicas": {"min": 2, "max": 2},
        "resources": {"flavor": "t4", "gpus": 1, "cpu": "2", "memory": "8Gi"},
    }
    body.update(spec)
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": body,
    }


def status_of(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    code, body = cluster.api.request("GET", f"{mds(namespace)}/{name}")
    return (body.get("status") or {}) if code == 200 else {}


def phase_is(cluster: LocalCluster, namespace: str, name: str, *phases: str) -> Callable[[], Any]:
    return lambda: (s := status_of(cluster, namespace, name)).get("phase") in phases and s


def serving_pods(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.api.get(
        f"/api/v1/namespaces/{namespace}/pods?labelSelector=cadre.dev%2Fmodeldeployment%3D{name}"
    )["items"]
    return items


def ready_pods(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        p
        for p in serving_pods(cluster, namespace, name)
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions") or []
        )
    ]


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def trainingjob(name: str, gpus: int, delay: str, priority: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": "ghcr.io/acme/train:1.4",
        "command": ["python", "train.py"],
        "workers": 1,
        "resources": {"flavor": "t4", "gpus": gpus, "cpu": "2", "memory": "8Gi"},
        "podMetadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": delay}},
    }
    if priority is not None:
        spec["priority"] = priority
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def tj_phase(cluster: LocalCluster, namespace: str, name: str) -> str | None:
    code, body = cluster.api.request("GET", f"{tjs(namespace)}/{name}")
    return (body.get("status") or {}).get("phase") if code == 200 else None


def test_the_example_serves_on_its_flavour_with_its_url(
    operator: OperatorProcess, cluster: LocalCluster, team: Callable[..., tuple[str, str]]
) -> None:
    _, namespace = team(4)
    example = yaml.safe_load((REPO / "examples" / "modeldeployment-canary.yaml").read_text())
    example["metadata"]["namespace"] = namespace
    cluster.api.create(mds(namespace), example)
    status = eventually("Ready", phase_is(cluster, namespace, "fraud-scorer", "Ready"), timeout=90)
    assert status["url"] == f"http://fraud-scorer.{namespace}.svc:8080"
    pods = ready_pods(cluster, namespace, "fraud-scorer")
    assert len(pods) == 2, pods  # replicas.min 2: one stable, one canary (10% of 2)
    assert {p["metadata"]["labels"]["cadre.dev/track"] for p in pods} == {"stable", "canary"}
    assert all(p["spec"]["nodeName"].startswith("kwok-t4-") for p in pods)
    init = pods[0]["spec"]["initContainers"][0]
    assert (init["name"], init["args"][0]) in (
        ("storage-initializer", "s3://models/fraud/v7"),
        ("storage-initializer", "s3://models/fraud/v8"),
    )
    assert status["model"]["state"] == "Loaded"
    assert status["canary"]["split"] == "50% (1/2)"
    assert status["ready"] == "2/2"


def test_a_canary_takes_its_share_and_promotion_keeps_min_ready(
    operator: OperatorProcess, cluster: LocalCluster, team: Callable[..., tuple[str, str]]
) -> None:
    _, namespace = team(6)  # room for the surge replica of the rolling updates
    canary = {"model": {"uri": "s3://models/fraud/v8"}, "trafficPercent": 25}
    cluster.api.create(
        mds(namespace), modeldeployment("ranker", replicas={"min": 4, "max": 4}, canary=canary)
    )
    status = eventually(
        "25% on the canary",
        lambda: (
            (s := status_of(cluster, namespace, "ranker")).get("canary", {}).get("trafficPercent")
            == 25
            and s.get("phase") == "Ready"
            and s
        ),
        timeout=90,
    )
    assert status["canary"]["split"] == "25% (1/4)"
    tracks = [
        p["metadata"]["labels"]["cadre.dev/track"] for p in ready_pods(cluster, namespace, "ranker")
    ]
    assert sorted(tracks) == ["canary", "stable", "stable", "stable"]

    # Promote: the canary's model becomes the model, the canary goes. Sample the ready
    # count all along.
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(len(ready_pods(cluster, namespace, "ranker")))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        cluster.api.patch(
            f"{mds(namespace)}/ranker",
            {"spec": {"model": {"uri": "s3://models/fraud/v8"}, "canary": None}},
        )

        def promoted() -> bool:
            pods = ready_pods(cluster, namespace, "ranker")
            uris = {p["spec"]["containers"][0]["env"][0]["value"] for p in pods}
            status = status_of(cluster, namespace, "ranker")
            return (
                len(pods) == 4
                and uris == {"s3://models/fraud/v8"}
                and all(p["metadata"]["labels"]["cadre.dev/track"] == "stable" for p in pods)
                and status.get("phase") == "Ready"
                and condition(status, "Progressing").get("status") == "False"
            )

        eventually("promoted", promoted, timeout=120)
    finally:
        done.set()
        sampler.join()
    assert samples and min(samples) >= 4, samples
    print(f"\nready pods during promotion: {len(samples)} samples, min {min(samples)}")
    eventually(
        "the surge replica released",
        lambda: status_of(cluster, namespace, "ranker")["admission"]["extraReplicas"] == 0,
        timeout=30,
    )


def test_serving_and_training_share_the_quota_and_training_cannot_take_the_floor(
    operator: OperatorProcess, cluster: LocalCluster, team: Callable[..., tuple[str, str]]
) -> None:
    _, namespace = team(4)
    cluster.api.create(tjs(namespace), trainingjob("train", 2, "25s"))
    eventually(
        "train Running", lambda: tj_phase(cluster, namespace, "train") == "Running", timeout=60
    )
    cluster.api.create(
        mds(namespace),
        modeldeployment(
            "scorer", replicas={"min": 2, "max": 4}, autoscaling={"metric": "cpu", "target": 60}
        ),
    )
    eventually("scorer Ready", phase_is(cluster, namespace, "scorer", "Ready"), timeout=90)
    hpas = f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/scorer"
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments/scorer"

    def autoscaler_wants_more() -> None:
        hpa = cluster.api.get(hpas)
        top = hpa["spec"]["maxReplicas"]
        cluster.api.patch(
            f"{hpas}/status",
            {
                "status": {
                    "currentReplicas": top,
                    "desiredReplicas": top,
                    "conditions": [
                        {
                            "type": "ScalingLimited",
                            "status": "True",
                            "reason": "TooManyReplicas",
                            "message": "the desired replica count is more than the maximum "
                            "replica count",
                            "lastTransitionTime": "2026-11-30T00:00:00Z",
                        }
                    ],
                }
            },
        )
        cluster.api.patch(f"{deployments}/scale", {"spec": {"replicas": top}})

    # The team's 4 GPUs: 2 train, 2 serve. The autoscaler asks for more: QuotaLimited.
    autoscaler_wants_more()
    status = eventually(
        "QuotaLimited", phase_is(cluster, namespace, "scorer", "QuotaLimited"), timeout=30
    )
    assert condition(status, "QuotaLimited")["message"].startswith("3 replicas wanted, 2 admitted")
    # A high-priority job of the same team cannot take serving's floor.
    cluster.api.create(tjs(namespace), trainingjob("urgent", 3, "5s", priority="high"))
    eventually(
        "urgent Queued", lambda: tj_phase(cluster, namespace, "urgent") == "Queued", timeout=30
    )
    assert len(ready_pods(cluster, namespace, "scorer")) == 2
    # `train` finishes: its GPUs go to whoever comes first; the extras go one at a time.
    eventually(
        "train Succeeded", lambda: tj_phase(cluster, namespace, "train") == "Succeeded", timeout=60
    )
    cluster.api.call("DELETE", f"{tjs(namespace)}/urgent")

    def three_serving() -> bool:
        autoscaler_wants_more()
        return len(ready_pods(cluster, namespace, "scorer")) >= 3

    eventually("a third replica", three_serving, timeout=60)


def test_stopped_and_deleted_give_the_quota_back(
    operator: OperatorProcess, cluster: LocalCluster, team: Callable[..., tuple[str, str]]
) -> None:
    _, namespace = team(2)
    cluster.api.create(mds(namespace), modeldeployment("idle"))
    eventually("idle Ready", phase_is(cluster, namespace, "idle", "Ready"), timeout=90)
    cluster.api.create(tjs(namespace), trainingjob("waits", 2, "2s"))
    eventually(
        "waits Queued", lambda: tj_phase(cluster, namespace, "waits") == "Queued", timeout=30
    )
    cluster.api.patch(f"{mds(namespace)}/idle", {"spec": {"stopped": True}})
    eventually("idle Stopped", phase_is(cluster, namespace, "idle", "Stopped"), timeout=30)
    eventually("its pods gone", lambda: not serving_pods(cluster, namespace, "idle"), timeout=60)
    eventually(
        "waits admitted",
        lambda: tj_phase(cluster, namespace, "waits") in ("Running", "Succeeded"),
        timeout=30,
    )
    assert cluster.api.exists(f"/api/v1/namespaces/{namespace}/services/idle")
    # Deleting: the quota it would take back is free too.
    eventually(
        "waits Succeeded", lambda: tj_phase(cluster, namespace, "waits") == "Succeeded", timeout=60
    )
    cluster.api.patch(f"{mds(namespace)}/idle", {"spec": {"stopped": False}})
    eventually("idle Ready again", phase_is(cluster, namespace, "idle", "Ready"), timeout=90)
    cluster.api.create(tjs(namespace), trainingjob("next", 2, "2s"))
    eventually("next Queued", lambda: tj_phase(cluster, namespace, "next") == "Queued", timeout=30)
    cluster.api.call("DELETE", f"{mds(namespace)}/idle")
    eventually(
        "next admitted",
        lambda: tj_phase(cluster, namespace, "next") in ("Running", "Succeeded"),
        timeout=90,
    )


def test_a_failing_download_shows_failed_to_load_with_the_reason(
    operator: OperatorProcess, cluster: LocalCluster, team: Callable[..., tuple[str, str]]
) -> None:
    _, namespace = team(2)
    message = "botocore.exceptions.NoCredentialsError: Unable to locate credentials"
    cluster.api.create(
        mds(namespace),
        modeldeployment(
            "broken",
            podMetadata={
                "annotations": {
                    "kwok.cadre.dev/init-exit-code": "1",
                    "kwok.cadre.dev/init-message": message,
                }
            },
        ),
    )
    status = eventually(
        "FailedToLoad",
        lambda: (
            (s := status_of(cluster, namespace, "broken")).get("model", {}).get("state")
            == "FailedToLoad"
            and s
        ),
        timeout=90,
    )
    assert message in status["model"]["message"]
    assert "model download failed (Error, exit code 1)" in status["model"]["message"]
    assert status["phase"] == "Degraded"
    assert condition(status, "Ready")["reason"] == "ModelFailedToLoad"


def test_cost_is_exact_after_an_operator_restart(
    operator: OperatorProcess, cluster: LocalCluster, team: Callable[..., tuple[str, str]]
) -> None:
    """Serving pods are charged like training pods: the operator SIGKILLed mid-run and the
    model deleted while it is down, the restarted operator settles every pod to the cent."""
    budget, namespace = team(2)
    cluster.api.create(mds(namespace), modeldeployment("billed"))
    eventually("billed Ready", phase_is(cluster, namespace, "billed", "Ready"), timeout=90)
    eventually(
        "charged while it runs",
        lambda: Decimal(status_of(cluster, namespace, "billed").get("cost") or "0") > 1,
        timeout=30,
    )
    operator.kill()
    cluster.api.call("DELETE", f"{mds(namespace)}/billed")
    # The garbage collector deletes the Deployment, its ReplicaSet, then the pods: they
    # stay, stopped, held by Cadre's finalizer until their cost is recorded.
    held = eventually(
        "the pods stopped and held",
        lambda: (
            (pods := serving_pods(cluster, namespace, "billed"))
            and all(p["metadata"].get("deletionTimestamp") for p in pods)
            and all(p["status"].get("phase") == "Failed" for p in pods)
            and pods
        ),
        timeout=60,
    )
    assert all("cadre.dev/accounting" in p["metadata"]["finalizers"] for p in held)
    operator.start()
    eventually(
        "the pods released", lambda: not serving_pods(cluster, namespace, "billed"), timeout=60
    )
    expected = Decimal(0)
    for pod in held:
        for status in pod["status"]["containerStatuses"]:
            done = status["state"]["terminated"]
            seconds = (_time(done["finishedAt"]) - _time(done["startedAt"])).total_seconds()
            expected += Decimal(str(seconds)) * T4_GPU_SECOND

    def spent() -> Decimal:
        body = cluster.api.get(f"{RBS}/{budget}")
        return Decimal(((body.get("status") or {}).get("spend") or {}).get("spent") or "-1")

    eventually(
        "settled to the cent", lambda: spent() == expected.quantize(Decimal("0.01")), timeout=30
    )
    print(f"\nserving pods killed with the operator down: by hand {expected}, budget {spent()}")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
