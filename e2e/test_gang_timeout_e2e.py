"""A gang admitted whose workers cannot all start says which wait and why (issue #14
item 4), and gives its GPUs back (Kueue's waitForPodsReady, item 3), on the whole local
cluster.

The operator runs with admission.nodePlacement off (a cluster whose node autoscaler adds
nodes for pending pods): admission counts a flavour's capacity in sum and does not see
pods Cadre does not manage. A foreign pod holds 2 GPUs of one t4 node, so a 2 x 4 t4 gang
is admitted that kube-scheduler cannot place whole: the waiting worker is named with the
scheduler's message. The local cluster schedules gangs natively (a PodGroup per
multi-worker Job, issue #14 item 2): kube-scheduler binds neither worker, where without it
one would run and hold 4 GPUs for nothing. Past admission.waitForPodsReady.timeoutSeconds
the operator deletes its Job, sends it back to the queue with the reason and a backoff, and
once the foreign pod is gone it is admitted again and runs. (With placement on, the
default, the same gang is never admitted: test_placement_e2e.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from burst import trainingjob
from cadre_process import OperatorProcess
from localcluster import LocalCluster
from squatter import squatting
from waiting import eventually

pytestmark = pytest.mark.e2e

GROUP = "/apis/cadre.dev/v1alpha1"
TIMEOUT_SECONDS = 15  # long enough to read the waiting worker's reason first
BACKOFF_SECONDS = 15  # long enough to see the gang stopped before it is tried again


@pytest.fixture
def operator(
    kubeconfig: Path, tmp_path: Path, config: Callable[..., Path]
) -> Iterator[OperatorProcess]:
    readiness = {
        "timeoutSeconds": TIMEOUT_SECONDS,
        "backoffBaseSeconds": BACKOFF_SECONDS,
        "backoffMaxSeconds": 30,
    }
    admission = {"waitForPodsReady": readiness, "nodePlacement": False}
    op = OperatorProcess(kubeconfig, tmp_path, config(admission=admission))
    try:
        yield op.start()
    finally:
        op.stop()


@pytest.fixture
def squatter(cluster: LocalCluster) -> Iterator[str]:
    with squatting(cluster, "t4", 2) as path:
        yield path


def gang(name: str) -> dict[str, Any]:
    return trainingjob(name, "timeout", "t4", "600s", workers=2, gpus=4, cpu="4", memory="16Gi")


def test_a_gang_whose_workers_cannot_all_start_gives_its_gpus_back_and_runs_later(
    operator: OperatorProcess, cluster: LocalCluster, team: str, squatter: str
) -> None:
    tjs = f"{GROUP}/namespaces/{team}/trainingjobs"
    cluster.api.create(tjs, gang("big"))
    path = f"{tjs}/big"

    def status() -> dict[str, Any]:
        return dict(cluster.api.get(path).get("status") or {})

    def condition(type_: str) -> dict[str, Any]:
        return next((c for c in status().get("conditions") or [] if c["type"] == type_), {})

    pods = f"/api/v1/namespaces/{team}/pods?labelSelector=cadre.dev%2Ftrainingjob%3Dbig"
    bound_while_waiting: list[int] = []

    def says_why() -> dict[str, Any]:
        items = cluster.api.get(pods)["items"]
        bound_while_waiting.append(sum(1 for p in items if p["spec"].get("nodeName")))
        state = status()
        running = next((c for c in state.get("conditions") or [] if c["type"] == "Running"), {})
        return state if running.get("reason") == "WorkersUnschedulable" else {}

    waiting = eventually("the status says which workers wait, and why", says_why)
    running = next(c for c in waiting["conditions"] if c["type"] == "Running")
    print(f"\nRunning condition: {running['message']}")
    assert waiting["phase"] == "Admitted"
    assert waiting["queue"] == {"reason": running["message"]}  # kubectl get tj -o wide
    # the whole gang or nothing: neither worker is bound beside the foreign pod
    assert running["message"].startswith("0/2 workers scheduled; "), running
    group_name = f"big-{waiting['admission']['id'][:8]}"  # the PodGroup of this admission
    group = cluster.api.get(
        f"/apis/scheduling.k8s.io/v1alpha2/namespaces/{team}/podgroups/{group_name}"
    )
    assert group["spec"]["schedulingPolicy"] == {"gang": {"minCount": 2}}

    def events(reason: str) -> list[dict[str, Any]]:
        items = cluster.api.get(
            f"/api/v1/namespaces/{team}/events?fieldSelector=involvedObject.name=big"
        )["items"]
        return [e for e in items if e["reason"] == reason]

    # A Warning Event says so, once (with the scheduler's first words: with a gang, often
    # that it holds the pods for their group; the condition above has its latest). The
    # operator posts it after the status write, so it may come a moment after the status.
    unschedulable = eventually(
        "a WorkersUnschedulable Event", lambda: events("WorkersUnschedulable")
    )
    assert {e["type"] for e in unschedulable} == {"Warning"}, unschedulable
    assert all(e["message"].startswith("0/2 workers scheduled; ") for e in unschedulable)

    requeued = eventually(
        "requeued past the timeout",
        lambda: status() if (status().get("requeue") or {}).get("count") else None,
        timeout=TIMEOUT_SECONDS + 30,
    )
    admitted_condition = condition("Admitted")
    print(f"\nrequeued: {admitted_condition.get('message')}")
    assert requeued["phase"] == "Queued", requeued
    assert admitted_condition["reason"] == "PodsReadyTimeout", admitted_condition
    assert "admission" not in requeued
    assert set(bound_while_waiting) == {0}, "a worker of the gang was bound"
    # Posted after the status write, like the Event above: it may follow the status.
    warnings = eventually("a PodsReadyTimeout Event", lambda: events("PodsReadyTimeout"))
    assert warnings[0]["type"] == "Warning", warnings
    assert f"0/2 workers running {TIMEOUT_SECONDS}s after admission" in warnings[0]["message"]
    # Its GPUs are free: the Job is deleted and every pod of its run is gone.
    job = f"/apis/batch/v1/namespaces/{team}/jobs/big"
    pods = f"/api/v1/namespaces/{team}/pods?labelSelector=cadre.dev%2Ftrainingjob%3Dbig"
    eventually(
        "the gang's pods are gone, its Job deleted",
        lambda: cluster.api.request("GET", job)[0] == 404 and not cluster.api.get(pods)["items"],
        timeout=BACKOFF_SECONDS,
    )
    assert status()["phase"] == "Queued"  # still waiting out its backoff

    # The GPUs come back: every pod of the gang's run is gone (its Job deleted).
    cluster.api.call("DELETE", f"{squatter}?gracePeriodSeconds=0", ok=(404,))
    eventually(
        "admitted again and running once the foreign pod is gone",
        lambda: status().get("phase") == "Running",
        timeout=60,
    )
    final = status()
    assert final["requeue"]["count"] >= 1
    assert "requeueAt" not in final["requeue"]


def test_model_replicas_that_cannot_all_be_scheduled_give_their_gpus_back(
    operator: OperatorProcess, cluster: LocalCluster, team: str, squatter: str
) -> None:
    """The same for a ModelDeployment's replicas.min: 2 replicas of 4 t4 GPUs, one cannot be
    placed beside the foreign pod; past the timeout its admission is taken back, its
    replicas stop, and once the foreign pod is gone it is admitted again and both run."""
    mds = f"{GROUP}/namespaces/{team}/modeldeployments"
    cluster.api.create(
        mds,
        {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "llm"},
            "spec": {
                "model": {"uri": "s3://models/llm/v1", "format": "onnx"},
                "runtime": {"image": "ghcr.io/acme/serve:2.1", "port": 8080},
                "replicas": {"min": 2, "max": 2},
                "resources": {"flavor": "t4", "gpus": 4, "cpu": "2", "memory": "8Gi"},
            },
        },
    )
    path = f"{mds}/llm"
    pods = f"/api/v1/namespaces/{team}/pods?labelSelector=cadre.dev%2Fmodeldeployment%3Dllm"

    def status() -> dict[str, Any]:
        return dict(cluster.api.get(path).get("status") or {})

    eventually("admitted", lambda: "admission" in status())
    try:
        requeued = eventually(
            "requeued past the timeout",
            lambda: status() if (status().get("requeue") or {}).get("count") else None,
            timeout=TIMEOUT_SECONDS + 30,
        )
    except AssertionError:
        print(status(), operator.log_tail())
        raise
    admitted = next(c for c in requeued["conditions"] if c["type"] == "Admitted")
    print(f"\nrequeued: {admitted['message']}")
    assert requeued["phase"] == "Queued", requeued
    assert "admission" not in requeued
    assert admitted["reason"] == "PodsReadyTimeout", admitted
    assert admitted["message"].startswith(f"1/2 replicas scheduled {TIMEOUT_SECONDS}s after")
    assert "Insufficient nvidia.com/gpu" in admitted["message"], admitted
    eventually(
        "its replicas are gone",
        lambda: not cluster.api.get(pods)["items"],
        timeout=BACKOFF_SECONDS,
    )
    assert status()["phase"] == "Queued"  # still waiting out its backoff

    cluster.api.call("DELETE", f"{squatter}?gracePeriodSeconds=0", ok=(404,))

    def both_scheduled() -> bool:
        items = cluster.api.get(pods)["items"]
        bound = [p for p in items if p["spec"].get("nodeName")]
        return "admission" in status() and len(bound) == 2

    eventually("admitted again, both replicas scheduled", both_scheduled, timeout=60)
