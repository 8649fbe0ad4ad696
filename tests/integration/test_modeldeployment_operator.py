"""`cadre run` with ModelDeployments against a real kube-apiserver (no controllers: the
tests play the Deployment controller and the autoscaler by writing their status). A
ModelDeployment gets its Service and Deployments, is admitted against its team's quota
before any replica may run, grows one replica at a time as its autoscaler asks until the
quota stops it (QuotaLimited, with the numbers), stops without being deleted, and splits
its replicas for a canary. The operator runs as a subprocess under its ServiceAccount."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from modeldeployments import MDS, modeldeployment

from cadre_process import OperatorProcess, operator_kubeconfig, running_operator
from localcluster import LocalCluster
from trainingjobs import condition, get, merge_patch
from waiting import eventually

pytestmark = pytest.mark.integration

DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"
HPAS = "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers"


@pytest.fixture(autouse=True)
def _delete_modeldeployments(apiserver: LocalCluster, namespace: str) -> Iterator[None]:
    """No controllers here (nor a namespace deleter): what a test leaves would be
    reconciled by every later module's operator."""
    yield
    apiserver.api.call("DELETE", MDS.format(ns=namespace), ok=(404,))


@pytest.fixture(scope="module")
def operator(
    apiserver: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = operator_kubeconfig(apiserver, workdir / "kubeconfig")
    with running_operator(kubeconfig, workdir) as op:
        yield op
        assert op.alive(), op.log_tail()


def md_status(apiserver: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    obj = get(apiserver, f"{MDS.format(ns=namespace)}/{name}") or {}
    return dict(obj.get("status") or {})


def deployment(apiserver: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    return get(apiserver, f"{DEPLOYMENTS.format(ns=namespace)}/{name}")


def play_deployment_controller(
    apiserver: LocalCluster, namespace: str, name: str, ready: int | None = None
) -> None:
    """What the Deployment controller and kubelets would report: every replica is there,
    on the current template, and `ready` (default: all) of them are ready."""
    obj = deployment(apiserver, namespace, name)
    assert obj is not None
    replicas = int(obj["spec"]["replicas"])
    status = {
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas if ready is None else ready,
        "availableReplicas": replicas if ready is None else ready,
    }
    merge_patch(
        apiserver,
        f"{DEPLOYMENTS.format(ns=namespace)}/{name}/status",
        {"status": status},
    )


def test_admitted_before_it_runs_then_ready_with_its_url(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    created = apiserver.api.create(MDS.format(ns=namespace), modeldeployment("fraud"))
    uid = created["metadata"]["uid"]
    service = eventually(
        "the Service", lambda: get(apiserver, f"/api/v1/namespaces/{namespace}/services/fraud")
    )
    assert service["spec"]["selector"] == {"cadre.dev/modeldeployment": "fraud"}
    assert service["metadata"]["ownerReferences"][0]["uid"] == uid

    status = eventually(
        "admission", lambda: (s := md_status(apiserver, namespace, "fraud")).get("admission") and s
    )
    assert status["admission"] == {
        "uid": uid,
        "team": team,
        "flavor": "t4",
        "replicas": 2,
        "extraReplicas": 0,
        "gpusPerReplica": 1,
    }
    stable = eventually(
        "2 replicas",
        lambda: (
            (d := deployment(apiserver, namespace, "fraud")) and d["spec"]["replicas"] == 2 and d
        ),
    )
    template = stable["spec"]["template"]
    assert template["metadata"]["finalizers"] == ["cadre.dev/accounting"]
    assert template["spec"]["nodeSelector"] == {"cadre.dev/flavor": "t4"}
    assert stable["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert status["phase"] in ("Loading", "Queued")

    play_deployment_controller(apiserver, namespace, "fraud")
    status = eventually(
        "Ready", lambda: (s := md_status(apiserver, namespace, "fraud"))["phase"] == "Ready" and s
    )
    assert status["url"] == f"http://fraud.{namespace}.svc:8080"
    assert status["ready"] == "2/2"
    assert status["replicas"] == {"admitted": 2, "desired": 2, "ready": 2}
    assert (condition({"status": status}, "Ready") or {})["status"] == "True"


def test_a_team_without_room_queues_the_gang_with_a_reason(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    apiserver.api.create(
        MDS.format(ns=namespace), modeldeployment("big", replicas={"min": 5, "max": 5})
    )
    status = eventually(
        "Queued",
        lambda: (s := md_status(apiserver, namespace, "big")).get("phase") == "Queued" and s,
    )
    assert "t4" in status["queue"]["reason"], status
    assert "admission" not in status
    stable = eventually("the Deployment", lambda: deployment(apiserver, namespace, "big"))
    assert stable["spec"]["replicas"] == 0  # nothing runs before admission


def test_the_autoscaler_grows_it_one_replica_at_a_time_until_the_quota_stops_it(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    apiserver.api.create(
        MDS.format(ns=namespace),
        modeldeployment(
            "scorer",
            replicas={"min": 2, "max": 8},
            autoscaling={"metric": "cpu", "target": 60},
        ),
    )
    hpa_path = f"{HPAS.format(ns=namespace)}/scorer"
    hpa = eventually("the autoscaler", lambda: get(apiserver, hpa_path))
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 2)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "scorer",
    }

    def autoscaler_wants_more() -> bool:
        """The autoscaler held at its maximum (what `kubectl describe hpa` shows)."""
        current = get(apiserver, hpa_path)
        assert current is not None
        top = current["spec"]["maxReplicas"]
        merge_patch(
            apiserver,
            f"{hpa_path}/status",
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
        return True

    # The team has 4 t4 GPUs: 2 more replicas are admitted, one at a time, then no more.
    for expected in (3, 4):
        autoscaler_wants_more()
        eventually(
            f"the autoscaler may run {expected}",
            lambda e=expected: (get(apiserver, hpa_path) or {})["spec"]["maxReplicas"] == e,
        )
    autoscaler_wants_more()
    # the autoscaler scales its target to its maximum (through the scale subresource)
    merge_patch(
        apiserver, f"{DEPLOYMENTS.format(ns=namespace)}/scorer/scale", {"spec": {"replicas": 4}}
    )
    play_deployment_controller(apiserver, namespace, "scorer")
    status = eventually(
        "QuotaLimited",
        lambda: (
            (s := md_status(apiserver, namespace, "scorer")).get("phase") == "QuotaLimited" and s
        ),
        timeout=30,
    )
    limited = condition({"status": status}, "QuotaLimited")
    assert limited is not None and limited["status"] == "True"
    assert limited["message"].startswith("5 replicas wanted, 4 admitted: "), limited
    assert status["admission"]["extraReplicas"] == 2

    def limited_events() -> list[dict[str, Any]]:
        return list(
            apiserver.api.call(
                "GET", f"/api/v1/namespaces/{namespace}/events?fieldSelector=reason%3DQuotaLimited"
            )["items"]
        )

    # the Event follows the status write by a moment: wait for it, then it is the only one
    eventually("the QuotaLimited Event", limited_events)
    assert len(limited_events()) == 1, [
        (e["message"], e.get("eventTime") or e.get("firstTimestamp")) for e in limited_events()
    ]


def test_stopped_releases_the_quota_and_keeps_the_service(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    path = f"{MDS.format(ns=namespace)}/idle"
    apiserver.api.create(MDS.format(ns=namespace), modeldeployment("idle"))
    eventually("admission", lambda: md_status(apiserver, namespace, "idle").get("admission"))
    merge_patch(apiserver, path, {"spec": {"stopped": True}})
    status = eventually(
        "Stopped, its admission released",
        lambda: (
            (s := md_status(apiserver, namespace, "idle")).get("phase") == "Stopped"
            and "admission" not in s
            and s
        ),
    )
    assert (condition({"status": status}, "Admitted") or {})["reason"] == "Stopped"
    eventually(
        "0 replicas",
        lambda: (deployment(apiserver, namespace, "idle") or {})["spec"]["replicas"] == 0,
    )
    assert get(apiserver, f"/api/v1/namespaces/{namespace}/services/idle") is not None
    # the freed quota admits another model at once
    apiserver.api.create(
        MDS.format(ns=namespace), modeldeployment("other", replicas={"min": 4, "max": 4})
    )
    eventually(
        "the other admitted", lambda: md_status(apiserver, namespace, "other").get("admission")
    )


def test_a_canary_at_25_percent_of_4_replicas_runs_one_canary_pod(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    apiserver.api.create(
        MDS.format(ns=namespace),
        modeldeployment(
            "ranker",
            replicas={"min": 4, "max": 4},
            canary={"model": {"uri": "s3://models/ranker/v2"}, "trafficPercent": 25},
        ),
    )
    stable = eventually(
        "stable at 3",
        lambda: (
            (d := deployment(apiserver, namespace, "ranker")) and d["spec"]["replicas"] == 3 and d
        ),
    )
    canary = eventually(
        "canary at 1",
        lambda: (
            (d := deployment(apiserver, namespace, "ranker-canary"))
            and d["spec"]["replicas"] == 1
            and d
        ),
    )
    env = {
        e["name"]: e.get("value")
        for e in canary["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODEL_URI"] == "s3://models/ranker/v2"
    assert stable["spec"]["selector"]["matchLabels"]["cadre.dev/track"] == "stable"
    play_deployment_controller(apiserver, namespace, "ranker")
    play_deployment_controller(apiserver, namespace, "ranker-canary")
    status = eventually(
        "the split",
        lambda: (
            (s := md_status(apiserver, namespace, "ranker")).get("canary", {}).get("trafficPercent")
            == 25
            and s
        ),
    )
    assert status["canary"]["split"] == "25% (1/4)"
    assert status["canary"]["replicas"] == {"admitted": 1, "desired": 1, "ready": 1}


def test_an_unknown_flavour_fails_with_what_to_fix(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str
) -> None:
    body = modeldeployment("lost")
    body["spec"]["resources"]["flavor"] = "h200"
    apiserver.api.create(MDS.format(ns=namespace), body)
    status = eventually(
        "Failed",
        lambda: (s := md_status(apiserver, namespace, "lost")).get("phase") == "Failed" and s,
    )
    admitted = condition({"status": status}, "Admitted")
    assert admitted is not None and admitted["reason"] == "UnknownFlavour", status
    assert "h200" in admitted["message"]
