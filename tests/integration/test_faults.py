"""Every write the operator makes, failed on purpose, still ends in the right state with no
further event: the reconciler and the loop retry from what they observe.

The operator runs with `--enable-fault-injection`: a rule makes the next N attempts of
one kind of call fail (429, 500, 503, a timeout, a network error, a lost answer). N is
larger than the client's own retries (2 here), so the call gives up and the work queue's
backoff (or the loop's next pass) has to bring it home. The tests play the Job
controller (no kubelet runs here) by writing the Job's status; after that write nothing
else happens in the cluster, so only a retry can finish the story.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre_process import EXAMPLE_CONFIG, OperatorProcess, operator_kubeconfig
from localcluster import LocalCluster
from trainingjobs import TJS, get, merge_patch, trainingjob
from waiting import eventually

TIMEOUT = 90  # several give-ups and backoffs in a row


@pytest.fixture(scope="module")
def operator(
    apiserver: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("faults")
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    # Give up soon (2 retries, short backoff): the work queue's retries are under test.
    config["api"] = {"timeoutSeconds": 5, "retries": 2, "backoffMaxSeconds": 0.2}
    config["admission"]["positionRefreshSeconds"] = 5
    path = Path(workdir / "config.yaml")
    path.write_text(yaml.safe_dump(config))
    kubeconfig = operator_kubeconfig(apiserver, workdir / "kubeconfig")
    op = OperatorProcess(kubeconfig, workdir, path, fault_injection=True).start()
    try:
        yield op
        assert op.alive(), op.log_tail()
    finally:
        op.stop()


def job_path(namespace: str, name: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"


def phase(apiserver: LocalCluster, namespace: str, name: str) -> str | None:
    obj = get(apiserver, f"{TJS.format(ns=namespace)}/{name}") or {}
    return (obj.get("status") or {}).get("phase")


def finish_job(apiserver: LocalCluster, namespace: str, name: str, *, failed: str = "") -> None:
    """Write the Job's status as the Job controller would when it ends."""
    job = apiserver.api.get(job_path(namespace, name))
    now = "2026-11-29T00:00:10Z"
    if failed:
        conditions = [
            {
                "type": "FailureTarget",
                "status": "True",
                "reason": "PodFailurePolicy",
                "message": failed,
                "lastTransitionTime": now,
            },
            {
                "type": "Failed",
                "status": "True",
                "reason": "PodFailurePolicy",
                "message": failed,
                "lastTransitionTime": now,
            },
        ]
        status: dict[str, Any] = {"failed": 1, "conditions": conditions}
    else:
        workers = job["spec"]["completions"]
        conditions = [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now},
        ]
        status = {
            "succeeded": workers,
            "completedIndexes": f"0-{workers - 1}" if workers > 1 else "0",
            "conditions": conditions,
            "completionTime": now,
        }
    status["startTime"] = "2026-11-29T00:00:00Z"
    merge_patch(apiserver, job_path(namespace, name) + "/status", {"status": status})


def admitted_job(apiserver: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    return eventually(
        f"{name}'s Job unsuspended",
        lambda: (
            (j := get(apiserver, job_path(namespace, name))) and j["spec"]["suspend"] is False and j
        ),
        timeout=TIMEOUT,
    )


def test_children_are_created_after_creates_fail(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    operator.inject(verb="POST", resource="jobs", fault=500, times=7)
    operator.inject(verb="POST", resource="services", fault="network", times=4)
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("kids"))
    admitted_job(apiserver, namespace, "kids")
    assert get(apiserver, f"/api/v1/namespaces/{namespace}/services/kids")
    assert operator.faults()["rules"] == []


def test_a_lost_create_answer_makes_no_second_job(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    operator.inject(verb="POST", resource="jobs", fault="lost-response", times=1)
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("once", workers=1))
    admitted_job(apiserver, namespace, "once")
    jobs = apiserver.api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    assert [j["metadata"]["name"] for j in jobs] == ["once"]


def test_admission_goes_through_when_unsuspending_fails(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    operator.inject(verb="PATCH", resource="jobs", fault=429, times=7)
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("late"))
    admitted_job(apiserver, namespace, "late")
    eventually("Admitted", lambda: phase(apiserver, namespace, "late") == "Admitted")


def test_a_finished_job_reaches_succeeded_when_every_status_write_failed_once(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("done", workers=1))
    admitted_job(apiserver, namespace, "done")
    eventually("Admitted", lambda: phase(apiserver, namespace, "done") == "Admitted")
    operator.inject(verb="PUT", resource="trainingjobs/status", fault=500, times=9)
    finish_job(apiserver, namespace, "done")  # the last event of this Job
    eventually(
        "Succeeded", lambda: phase(apiserver, namespace, "done") == "Succeeded", timeout=TIMEOUT
    )


def test_a_gang_restart_is_counted_once_when_deleting_the_failed_job_fails(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    doc = trainingjob("again", workers=1)
    doc["spec"]["retries"] = 2
    apiserver.api.create(TJS.format(ns=namespace), doc)
    first = admitted_job(apiserver, namespace, "again")
    operator.inject(verb="DELETE", resource="jobs", fault=503, times=7)
    finish_job(
        apiserver,
        namespace,
        "again",
        failed=f"Container worker for pod {namespace}/again-0-abcde failed with exit code 3 "
        "matching FailJob rule at index 1",
    )
    second = eventually(
        "a new Job",
        lambda: (
            (j := get(apiserver, job_path(namespace, "again")))
            and j["metadata"]["uid"] != first["metadata"]["uid"]
            and j
        ),
        timeout=TIMEOUT,
    )
    status = (get(apiserver, f"{TJS.format(ns=namespace)}/again") or {})["status"]
    assert status["restarts"] == 1  # counted once, however often the delete was tried
    assert status["restartedJobUID"] == first["metadata"]["uid"]
    assert second["metadata"]["uid"] != first["metadata"]["uid"]


def test_ttl_deletes_the_trainingjob_when_deleting_timed_out(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    doc = trainingjob("brief", workers=1)
    doc["spec"]["ttlAfterFinished"] = "1s"
    apiserver.api.create(TJS.format(ns=namespace), doc)
    admitted_job(apiserver, namespace, "brief")
    operator.inject(verb="DELETE", resource="trainingjobs", fault="timeout", times=7)
    finish_job(apiserver, namespace, "brief")
    eventually(
        "the TrainingJob deleted",
        lambda: get(apiserver, f"{TJS.format(ns=namespace)}/brief") is None,
        timeout=TIMEOUT,
    )


def test_suspend_goes_through_when_the_network_fails(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("pause", workers=1))
    admitted_job(apiserver, namespace, "pause")
    operator.inject(verb="DELETE", resource="jobs", fault="network", times=7)
    merge_patch(apiserver, f"{TJS.format(ns=namespace)}/pause", {"spec": {"suspend": True}})
    eventually(
        "the Job deleted and phase Suspended",
        lambda: (
            get(apiserver, job_path(namespace, "pause")) is None
            and phase(apiserver, namespace, "pause") == "Suspended"
        ),
        timeout=TIMEOUT,
    )


def test_budget_status_is_written_after_its_writes_failed(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    operator.inject(verb="PATCH", resource="resourcebudgets/status", fault=503, times=7)
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("counted", workers=2))
    admitted_job(apiserver, namespace, "counted")

    def usage() -> int:
        budget = apiserver.api.get(f"/apis/cadre.dev/v1alpha1/resourcebudgets/{team}")
        return int(((budget.get("status") or {}).get("usage") or {}).get("t4", {}).get("gpus", 0))

    eventually("the budget's usage", lambda: usage() == 2, timeout=TIMEOUT)
