"""`cadre run` against a real kube-apiserver (no controllers, no scheduler): a TrainingJob
waits with a Queued status and its reason and no children; admitted when capacity
appears, it gets its Indexed Job (running) and headless Service; it suspends and
resumes; creating children twice is idempotent. The operator runs as a subprocess, as
in production."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from cadre.controller.client import ApiClient
from cadre.core.api.config import parse_config
from cadre.core.training import build_training_job_children
from cadre_process import EXAMPLE_CONFIG, OperatorProcess, operator_kubeconfig, running_operator
from localcluster import LocalCluster
from trainingjobs import TJS, admitted_reason, condition, get, merge_patch, trainingjob
from waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def operator(
    apiserver: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator under the ServiceAccount and RBAC of manifests/rbac.yaml."""
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = operator_kubeconfig(apiserver, workdir / "kubeconfig")
    with running_operator(kubeconfig, workdir) as op:
        yield op
        assert op.alive(), op.log_tail()


def test_a_queued_trainingjob_has_a_queued_status_and_no_children(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str
) -> None:
    """No node has a t4 GPU: the job waits, and says why. A waiting job is its status
    alone: Cadre creates its Job and Service when it admits it."""
    writes_before = operator.quiet_writes()
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("resnet", workers=2))
    tj = eventually(
        "status Queued",
        lambda: (
            (o := get(apiserver, f"{TJS.format(ns=namespace)}/resnet"))
            and (o.get("status") or {}).get("phase") == "Queued"
            and o
        ),
    )
    status = tj["status"]
    assert status["observedGeneration"] == 1
    assert status["team"] == team
    assert status["gpus"] == 2
    assert "t4" in status["queue"]["reason"], status
    assert status["queue"]["position"] == 1
    admitted = condition(tj, "Admitted")
    assert admitted is not None
    assert admitted["status"] == "False"
    assert admitted["observedGeneration"] == 1
    assert admitted["reason"] in ("ExceedsCapacity", "CapacityExhausted"), admitted
    # The operator writes no finalizer and no bookkeeping annotation on the user's object.
    assert not tj["metadata"].get("finalizers")
    assert not [a for a in tj["metadata"].get("annotations") or {} if a.startswith("cadre.dev")]
    assert get(apiserver, f"/apis/batch/v1/namespaces/{namespace}/jobs/resnet") is None
    assert get(apiserver, f"/api/v1/namespaces/{namespace}/services/resnet") is None
    # One status write and the Queued Event.
    writes = operator.quiet_writes(quiet=1.5) - writes_before
    assert writes == 2, operator.api_requests(ok_only=True)


def test_an_admitted_gang_gets_its_job_service_and_pod_group(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    """Admitted, a gang's children are created: the Indexed Job, running at once and named
    by the admission; the headless Service; and, as the API server here serves
    scheduling.k8s.io/v1alpha2 (GenericWorkload, as the local cluster runs), a PodGroup
    that asks kube-scheduler for all three workers at once, owned by the Job."""
    created = apiserver.api.create(TJS.format(ns=namespace), trainingjob("gang", workers=3))
    uid = created["metadata"]["uid"]
    job = eventually(
        "the Job", lambda: get(apiserver, f"/apis/batch/v1/namespaces/{namespace}/jobs/gang")
    )
    spec = job["spec"]
    assert spec["suspend"] is False
    assert (spec["completionMode"], spec["parallelism"], spec["completions"]) == ("Indexed", 3, 3)
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "TrainingJob",
        "gang",
        uid,
        True,
    )
    labels = job["metadata"]["labels"]
    assert labels["cadre.dev/team"] == team
    assert labels["cadre.dev/trainingjob"] == "gang"
    tj = get(apiserver, f"{TJS.format(ns=namespace)}/gang") or {}
    admission = tj["status"]["admission"]
    assert job["metadata"]["annotations"]["cadre.dev/admission"] == admission["id"]

    service = get(apiserver, f"/api/v1/namespaces/{namespace}/services/gang")
    assert service is not None
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["uid"] == uid

    # The PodGroup of this admission (a later Job of the gang gets its own).
    group_name = f"gang-{admission['id'][:8]}"
    assert spec["template"]["spec"]["schedulingGroup"] == {"podGroupName": group_name}
    group = eventually(
        "the PodGroup",
        lambda: get(
            apiserver,
            f"/apis/scheduling.k8s.io/v1alpha2/namespaces/{namespace}/podgroups/{group_name}",
        ),
    )
    assert group["spec"]["schedulingPolicy"] == {"gang": {"minCount": 3}}
    (owner,) = group["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Job", job["metadata"]["uid"])
    assert operator.metric("cadre_native_gang_scheduling") == 1


def test_creating_children_again_is_idempotent(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    created = apiserver.api.create(TJS.format(ns=namespace), trainingjob("again"))
    first = eventually(
        "the Job", lambda: get(apiserver, f"/apis/batch/v1/namespaces/{namespace}/jobs/again")
    )
    tj = get(apiserver, f"{TJS.format(ns=namespace)}/again") or {}
    config = parse_config(EXAMPLE_CONFIG.read_text())
    children = build_training_job_children(
        created,
        name="again",
        namespace=namespace,
        uid=created["metadata"]["uid"],
        team=team,
        config=config,
        admission_id=tj["status"]["admission"]["id"],
    )

    async def create_twice() -> list[tuple[dict[str, Any], bool]]:
        client = ApiClient.connect(str(apiserver.kubeconfig))
        try:
            return [await client.create(obj) for obj in (*children.objects(), *children.objects())]
        finally:
            await client.close()

    results = asyncio.run(create_twice())
    assert [was_created for _, was_created in results] == [False, False, False, False]
    job_uids = {obj["metadata"]["uid"] for obj, _ in results if obj["kind"] == "Job"}
    assert job_uids == {first["metadata"]["uid"]}
    jobs = apiserver.api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    assert [j["metadata"]["name"] for j in jobs] == ["again"]


def test_admitted_when_capacity_appears_then_suspend_and_resume(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    writes_before = operator.quiet_writes()
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("fits", workers=2))
    tj_path = f"{TJS.format(ns=namespace)}/fits"
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/fits"

    tj = eventually(
        "status Admitted",
        lambda: (
            (o := get(apiserver, tj_path))
            and (o.get("status") or {}).get("phase") == "Admitted"
            and o
        ),
    )
    # The admission is written first, then the Job is created, running.
    eventually("Job running", lambda: apiserver.api.get(job_path)["spec"]["suspend"] is False)
    status = tj["status"]
    assert status["admittedAt"]
    assert "queue" not in status
    admitted = condition(tj, "Admitted")
    assert admitted is not None
    assert (admitted["status"], admitted["reason"]) == ("True", "Admitted")
    # One status write, then Service + Job + the gang's PodGroup (the API server here
    # serves PodGroups), and the Admitted event.
    writes = operator.quiet_writes(quiet=1.5) - writes_before
    print(f"\nAPI writes from create to Admitted: {writes:.0f}")
    assert writes == 5, operator.api_requests(ok_only=True)
    events = apiserver.api.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    mine = [e for e in events if e["involvedObject"]["name"] == "fits"]
    assert [(e["reason"], e["type"]) for e in mine] == [("Admitted", "Normal")]

    # Suspend: the admission is given back and the Job deleted.
    merge_patch(apiserver, tj_path, {"spec": {"suspend": True}})
    eventually("Job deleted", lambda: get(apiserver, job_path) is None)
    tj = eventually(
        "status Suspended",
        lambda: (o := get(apiserver, tj_path)) and o["status"].get("phase") == "Suspended" and o,
    )
    assert tj["status"]["observedGeneration"] == 2
    assert condition(tj, "Admitted")["reason"] == "Suspended"  # type: ignore[index]
    assert "admission" not in tj["status"]

    # Resume: queued again, and admitted again since it fits: a new Job.
    merge_patch(apiserver, tj_path, {"spec": {"suspend": False}})
    eventually(
        "admitted again",
        lambda: (o := get(apiserver, tj_path)) and o["status"].get("phase") == "Admitted",
    )
    eventually(
        "a Job running",
        lambda: (get(apiserver, job_path) or {}).get("spec", {}).get("suspend") is False,
    )


def test_gang_larger_than_quota_stays_queued(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("huge", workers=3, gpus=2))
    tj = eventually(
        "status Queued",
        lambda: (
            (o := get(apiserver, f"{TJS.format(ns=namespace)}/huge"))
            and (o.get("status") or {}).get("phase") == "Queued"
            and o
        ),
    )
    assert condition(tj, "Admitted")["reason"] == "ExceedsQuota"  # type: ignore[index]
    assert team in tj["status"]["queue"]["reason"]
    assert get(apiserver, f"/apis/batch/v1/namespaces/{namespace}/jobs/huge") is None


def test_a_spec_changed_while_queued_is_decided_on_as_it_is_now(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str
) -> None:
    """No node: the job waits, may still change, and its status follows the new spec (it
    has no Job to rebuild)."""
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("reshaped", workers=2))
    tj_path = f"{TJS.format(ns=namespace)}/reshaped"
    eventually(
        "Queued",
        lambda: (get(apiserver, tj_path) or {}).get("status", {}).get("phase") == "Queued",
    )
    merge_patch(apiserver, tj_path, {"spec": {"workers": 3}})
    status = eventually(
        "status of generation 2",
        lambda: (
            (s := (get(apiserver, tj_path) or {}).get("status") or {}).get("observedGeneration")
            == 2
            and s
        ),
    )
    assert status["gpus"] == 3
    assert get(apiserver, f"/apis/batch/v1/namespaces/{namespace}/jobs/reshaped") is None


@pytest.mark.usefixtures("operator", "team", "t4_node", "without_shape_policy")
def test_a_running_jobs_spec_changed_without_the_policy_is_stopped_and_admitted_anew(
    apiserver: LocalCluster, namespace: str
) -> None:
    """Where the admission policy is not installed, an editor can shrink a running job's
    spec. The operator never counts it for the spec instead of what runs: it stops the Job
    (reason SpecChanged), then admits the job again for what its spec asks now."""
    apiserver.api.create(TJS.format(ns=namespace), trainingjob("edited", workers=2))
    tj_path = f"{TJS.format(ns=namespace)}/edited"
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/edited"
    first = eventually(
        "admitted",
        lambda: (o := get(apiserver, tj_path)) and o["status"].get("phase") == "Admitted" and o,
    )
    admission = first["status"]["admission"]
    assert (admission["workers"], admission["gpus"]) == (2, 2), admission
    eventually("its Job", lambda: get(apiserver, job_path) is not None)

    # The policy's binding may take a moment to leave the API server's informer.
    eventually(
        "the edit accepted",
        lambda: (
            apiserver.api.request(
                "PATCH",
                tj_path,
                {"spec": {"workers": 1}},
                content_type="application/merge-patch+json",
            )[0]
            == 200
        ),
    )
    stopped = admitted_reason(apiserver, tj_path, "SpecChanged")
    assert "its Job was stopped" in condition(stopped, "Admitted")["message"]  # type: ignore[index]
    again = eventually(
        "admitted for one worker",
        lambda: (
            (o := get(apiserver, tj_path))
            and ((o.get("status") or {}).get("admission") or {}).get("workers") == 1
            and o
        ),
        state=lambda: ((get(apiserver, tj_path) or {}).get("status"), get(apiserver, job_path)),
    )
    assert again["status"]["admission"]["id"] != admission["id"]
    job = eventually(
        "a Job of one worker",
        lambda: (j := get(apiserver, job_path)) and j["spec"]["parallelism"] == 1 and j,
    )
    assert (
        job["metadata"]["annotations"]["cadre.dev/admission"] == again["status"]["admission"]["id"]
    )


def test_recreated_trainingjob_replaces_the_children_of_the_deleted_one(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    """No garbage collector runs here: the operator itself removes the children left by
    a deleted TrainingJob of the same name, and creates the new one's."""
    tjs = TJS.format(ns=namespace)
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/phoenix"
    service_path = f"/api/v1/namespaces/{namespace}/services/phoenix"
    old_uid = apiserver.api.create(tjs, trainingjob("phoenix", workers=2))["metadata"]["uid"]
    eventually("the first Job", lambda: get(apiserver, job_path))
    apiserver.api.call("DELETE", f"{tjs}/phoenix")
    new_uid = apiserver.api.create(tjs, trainingjob("phoenix", workers=2))["metadata"]["uid"]
    assert new_uid != old_uid

    def owned_by_new(path: str) -> bool:
        obj = get(apiserver, path)
        return obj is not None and obj["metadata"]["ownerReferences"][0]["uid"] == new_uid

    eventually("the new Service", lambda: owned_by_new(service_path), timeout=20)
    eventually("the new Job", lambda: owned_by_new(job_path), timeout=20)
    eventually(
        "status Admitted",
        lambda: (
            ((get(apiserver, f"{tjs}/phoenix") or {}).get("status") or {}).get("phase")
            == "Admitted"
        ),
    )


def test_a_team_cannot_jump_the_line_past_its_budgets_max_priority(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    """A job naming the highest priority of the operator config waits, with what to do,
    when its team's budget caps it (spec.maxPriority, writable by platform admins only)."""
    merge_patch(
        apiserver,
        f"/apis/cadre.dev/v1alpha1/resourcebudgets/{team}",
        {"spec": {"maxPriority": "normal"}},
    )
    urgent = trainingjob("urgent", workers=1)
    urgent["spec"]["priority"] = "high"
    apiserver.api.create(TJS.format(ns=namespace), urgent)
    path = f"{TJS.format(ns=namespace)}/urgent"
    waiting = admitted_reason(apiserver, path, "PriorityNotAllowed")
    assert waiting["status"]["phase"] == "Queued"
    assert "lower spec.priority" in waiting["status"]["queue"]["reason"]
    # Within the cap, it is admitted.
    merge_patch(apiserver, path, {"spec": {"priority": "normal"}})
    eventually(
        "admitted at normal",
        lambda: ((get(apiserver, path) or {}).get("status") or {}).get("phase") == "Admitted",
    )
