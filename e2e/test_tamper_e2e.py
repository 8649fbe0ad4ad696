"""A team member with the ordinary `edit` role tries to step around the quota, on the whole
local cluster, with the bindings of Cadre's admission policies removed for this module
(they refuse these requests at the API: tests/integration/test_admission_policies.py).
What the operator does on its own, should the policies be missing: admission lives in
the TrainingJob's status, a Job is compared by what it is, and who pays comes from
records the user cannot edit.

alice is bound to the built-in `edit` ClusterRole in the team's namespace and acts
through kubectl's impersonation (`--as=alice`), so the API server authorizes every
request as hers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre.core.api.config import parse_config
from cadre.core.training import build_job
from cadre_process import POLICIES, OperatorProcess, operator_kubeconfig, running_operator
from localcluster import LocalCluster
from localcluster.cluster import ClusterError
from waiting import eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
RBS = "/apis/cadre.dev/v1alpha1/resourcebudgets"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


@pytest.fixture(scope="module")
def operator(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The example config with an a100 GPU at 1 per second (t4 free) and budgets refreshed
    every second."""
    workdir = tmp_path_factory.mktemp("tamper")
    config = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    for flavor in config["flavors"]:
        flavor["prices"] = {"gpuHour": "3600"} if flavor["name"] == "a100" else {}
    config["accounting"] = {"refreshSeconds": 1}
    path = workdir / "operator-config.yaml"
    path.write_text(yaml.safe_dump(config))
    kubeconfig = operator_kubeconfig(cluster, workdir / "kubeconfig")
    with running_operator(kubeconfig, workdir, path) as op:
        yield op


@pytest.fixture(scope="module", autouse=True)
def policies_off(cluster: LocalCluster, operator: OperatorProcess) -> Iterator[None]:
    """No admission policy binding while this module runs (the operator's own defences
    are what is tested); the install's are applied again afterwards."""
    bindings = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
    for doc in yaml.safe_load_all(POLICIES.read_text()):
        if doc and doc["kind"] == "ValidatingAdmissionPolicyBinding":
            cluster.api.call("DELETE", f"{bindings}/{doc['metadata']['name']}", ok=(404,))
    yield
    cluster.kubectl("apply", "-f", str(POLICIES))


@pytest.fixture
def team(cluster: LocalCluster) -> Iterator[Callable[[], tuple[str, str]]]:
    """make() -> (budget, namespace): 8 a100 GPUs, alice an editor of the namespace."""
    made: list[tuple[str, str]] = []

    def make() -> tuple[str, str]:
        name = f"tamper-{uuid.uuid4().hex[:6]}"
        namespace = cluster.create_namespace(name)
        cluster.wait_default_service_account(namespace)
        cluster.api.create(
            f"{RBAC}/namespaces/{namespace}/rolebindings",
            {
                "metadata": {"name": "alice-edit"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "edit",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}
                ],
            },
        )
        cluster.api.create(
            RBS,
            {
                "apiVersion": "cadre.dev/v1alpha1",
                "kind": "ResourceBudget",
                "metadata": {"name": name},
                "spec": {
                    "namespaces": [namespace],
                    "quota": [{"flavor": "a100", "gpus": 8}, {"flavor": "t4", "gpus": 4}],
                },
            },
        )
        made.append((name, namespace))
        return name, namespace

    yield make
    for name, namespace in made:
        cluster.delete_namespace(namespace, wait=90)
        cluster.api.call("DELETE", f"{RBS}/{name}", ok=(404,))


def tjs(namespace: str) -> str:
    return f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/trainingjobs"


def job_path(namespace: str, name: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"


def trainingjob(name: str, gpus: int, delay: str) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "command": ["python", "train.py"],
            "resources": {"flavor": "a100", "gpus": gpus, "cpu": "2", "memory": "8Gi"},
            "podMetadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": delay}},
        },
    }


def status_of(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = cluster.api.get(f"{tjs(namespace)}/{name}")
    return body.get("status") or {}


def phase(cluster: LocalCluster, namespace: str, name: str, *phases: str) -> Callable[[], Any]:
    return lambda: (s := status_of(cluster, namespace, name)).get("phase") in phases and s


def as_alice(cluster: LocalCluster, namespace: str, *args: str) -> str:
    """Run kubectl as alice, and return what it printed; until the policies' bindings are
    gone everywhere (the API server drops them from its policy cache a moment after the
    delete), tried again."""
    done = eventually(
        f"kubectl {' '.join(args)} as alice",
        lambda: cluster.kubectl("--as=alice", "--namespace", namespace, *args),
        expected=(ClusterError,),
    )
    return str(done.stdout)


def event_reasons(cluster: LocalCluster, namespace: str, name: str) -> set[str]:
    items = cluster.api.get(
        f"/api/v1/namespaces/{namespace}/events?fieldSelector=involvedObject.name%3D{name}"
    )["items"]
    return {e["reason"] for e in items}


def pods_of(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.api.get(
        f"/api/v1/namespaces/{namespace}/pods?labelSelector=cadre.dev%2Ftrainingjob%3D{name}"
    )["items"]
    return items


def test_a_job_an_editor_makes_for_a_queued_job_is_deleted_and_reported(
    operator: OperatorProcess,
    cluster: LocalCluster,
    team: Callable[[], tuple[str, str]],
    tmp_path: Path,
) -> None:
    """A waiting job has no Job (Cadre creates it at admission): to skip the queue, alice
    makes it herself, labelled and owned like Cadre's, running. It holds what it uses
    until it is gone; Cadre deletes it and says so, and the job's turn comes later."""
    budget, namespace = team()
    cluster.api.create(tjs(namespace), trainingjob("first", 8, "300s"))
    eventually("first Running", phase(cluster, namespace, "first", "Running"), timeout=60)
    second = cluster.api.create(tjs(namespace), trainingjob("second", 8, "300s"))
    eventually("second Queued", phase(cluster, namespace, "second", "Queued"), timeout=60)
    assert cluster.api.request("GET", job_path(namespace, "second"))[0] == 404
    before = operator.metric("cadre_unadmitted_jobs_suspended_total") or 0

    # Skip the queue: what `edit` allows, the Job Cadre would make, made by hand.
    config = parse_config((REPO / "examples" / "operator-config.yaml").read_text())
    forged = build_job(
        second,
        name="second",
        namespace=namespace,
        uid=second["metadata"]["uid"],
        team=budget,
        config=config,
    )
    forged["spec"]["suspend"] = False
    manifest = tmp_path / "second-job.json"
    manifest.write_text(json.dumps(forged))
    # The uid from the create's answer: Cadre may delete the Job before a read could see it.
    created = as_alice(cluster, namespace, "create", "-f", str(manifest), "-o", "json")
    forged_uid = json.loads(created)["metadata"]["uid"]

    eventually(
        "alice's Job deleted",
        lambda: (
            (j := cluster.api.request("GET", job_path(namespace, "second")))[0] == 404
            or j[1]["metadata"]["uid"] != forged_uid
        ),
        timeout=30,
    )
    status = eventually(
        "the UnadmittedRun condition",
        lambda: (
            (s := status_of(cluster, namespace, "second"))
            and any(c["type"] == "UnadmittedRun" for c in s.get("conditions") or [])
            and s
        ),
        timeout=30,
    )
    assert status["phase"] == "Queued"
    assert "admission" not in status  # never admitted, never said so
    eventually(
        "the Event",
        lambda: "UnadmittedRunSuspended" in event_reasons(cluster, namespace, "second"),
        timeout=30,
    )
    assert "Admitted" not in event_reasons(cluster, namespace, "second")
    assert (operator.metric("cadre_unadmitted_jobs_suspended_total") or 0) >= before + 1
    # The admitted job is untouched, and its admission is the record in its status,
    # naming its Job by the id the Job carries.
    first = status_of(cluster, namespace, "first")
    assert first["phase"] == "Running"
    first_job = cluster.api.get(job_path(namespace, "first"))
    assert first["admission"]["id"] == first_job["metadata"]["annotations"]["cadre.dev/admission"]
    assert first["admission"]["flavor"] == "a100"
    # Its turn comes the ordinary way.
    cluster.api.call("DELETE", f"{tjs(namespace)}/first")
    admitted = eventually(
        "second admitted",
        phase(cluster, namespace, "second", "Admitted", "Running"),
        timeout=120,
    )
    assert not [c for c in admitted["conditions"] if c["type"] == "UnadmittedRun"]
    # The admission is written before its Job is created: wait for the Job.
    own = eventually(
        "second's own Job",
        lambda: (j := cluster.api.request("GET", job_path(namespace, "second")))[0] == 200 and j[1],
        timeout=30,
    )
    assert own["metadata"]["uid"] != forged_uid
    assert own["metadata"]["annotations"]["cadre.dev/admission"] == admitted["admission"]["id"]


def test_a_running_job_an_editor_shrinks_is_stopped_before_its_gpus_are_given_away(
    operator: OperatorProcess, cluster: LocalCluster, team: Callable[[], tuple[str, str]]
) -> None:
    """The team's 8 a100 GPUs run `big`; `next` (4) waits. alice edits big's spec to 1 GPU
    (without the policy cadre-trainingjob-shape, the API server takes it): counted by its
    spec, big would leave 7 GPUs free while its pod holds 8. Cadre stops big's Job first
    (a Warning SpecChanged), and next is admitted only once big's admission is gone; big
    then runs again as it now asks, with 1 GPU."""
    _, namespace = team()
    cluster.api.create(tjs(namespace), trainingjob("big", 8, "300s"))
    eventually("big Running", phase(cluster, namespace, "big", "Running"), timeout=60)
    first = status_of(cluster, namespace, "big")["admission"]
    assert (first["workers"], first["perWorker"]["gpus"]) == (1, 8)
    cluster.api.create(tjs(namespace), trainingjob("next", 4, "300s"))
    eventually("next Queued", phase(cluster, namespace, "next", "Queued"), timeout=60)

    as_alice(
        cluster,
        namespace,
        "patch",
        "trainingjobs",
        "big",
        "--type=merge",
        "--patch",
        '{"spec": {"resources": {"gpus": 1}}}',
    )
    eventually(
        "the Warning",
        lambda: "SpecChanged" in event_reasons(cluster, namespace, "big"),
        timeout=60,
    )
    (warning,) = [
        e
        for e in cluster.api.get(f"/api/v1/namespaces/{namespace}/events")["items"]
        if e["reason"] == "SpecChanged"
    ]
    assert warning["type"] == "Warning"
    assert "workers or resources changed while it was admitted" in warning["message"]
    admitted = eventually(
        "next admitted", phase(cluster, namespace, "next", "Admitted", "Running"), timeout=60
    )
    stopped_at = warning.get("eventTime") or warning.get("firstTimestamp")
    # Both times are taken by the leader, the Warning's when it wrote big's stop.
    assert _seconds(stopped_at, admitted["admittedAt"]) >= 0, "next admitted before big stopped"
    again = eventually(
        "big admitted for 1 GPU",
        lambda: (
            (s := status_of(cluster, namespace, "big")).get("admission", {}).get("gpus") == 1 and s
        ),
        timeout=120,
    )
    assert again["admission"]["id"] != first["id"]
    eventually(
        "big's new pod asks for 1 GPU",
        lambda: (
            [
                p["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
                for p in pods_of(cluster, namespace, "big")
                if not p["metadata"].get("deletionTimestamp")
            ]
            == ["1"]
        ),
        timeout=60,
    )


def test_relabelled_pods_are_charged_to_their_own_team_at_their_nodes_price(
    operator: OperatorProcess, cluster: LocalCluster, team: Callable[[], tuple[str, str]]
) -> None:
    budget, namespace = team()
    other, _ = team()
    cluster.api.create(tjs(namespace), trainingjob("billed", 2, "8s"))
    eventually("billed Running", phase(cluster, namespace, "billed", "Running"), timeout=60)
    (pod,) = pods_of(cluster, namespace, "billed")
    # Bill another team, at the price of a free flavour.
    as_alice(
        cluster,
        namespace,
        "label",
        "pod",
        pod["metadata"]["name"],
        "--overwrite",
        f"cadre.dev/team={other}",
        "cadre.dev/flavor=t4",
    )
    eventually("billed Succeeded", phase(cluster, namespace, "billed", "Succeeded"), timeout=60)
    (done,) = pods_of(cluster, namespace, "billed")
    assert done["metadata"]["labels"]["cadre.dev/team"] == other
    state = done["status"]["containerStatuses"][0]["state"]["terminated"]
    seconds = _seconds(state["startedAt"], state["finishedAt"])
    expected = Decimal(2) * Decimal(seconds)  # 2 a100 GPUs at 1 per GPU-second

    def spent(name: str) -> Decimal:
        body = cluster.api.get(f"{RBS}/{name}")
        return Decimal(((body.get("status") or {}).get("spend") or {}).get("spent") or "0")

    eventually("charged to its own team", lambda: spent(budget) == expected, timeout=30)
    assert spent(other) == 0


def _seconds(start: str, end: str) -> float:
    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds()


def test_a_pod_that_loses_its_label_is_still_charged_and_released(
    operator: OperatorProcess, cluster: LocalCluster, team: Callable[[], tuple[str, str]]
) -> None:
    budget, namespace = team()
    cluster.api.create(tjs(namespace), trainingjob("strand", 2, "300s"))
    eventually("strand Running", phase(cluster, namespace, "strand", "Running"), timeout=60)
    (pod,) = pods_of(cluster, namespace, "strand")
    name = pod["metadata"]["name"]

    def spent() -> Decimal:
        status = cluster.api.get(f"{RBS}/{budget}").get("status") or {}
        return Decimal((status.get("spend") or {}).get("spent") or "0")

    # Charged live for more than a second first: container times are whole seconds, so a
    # pod stopped within the second it started would rightly cost nothing.
    eventually("charged while it runs", lambda: spent() > 2, timeout=30)
    assert "cadre.dev/accounting" in pod["metadata"]["finalizers"]
    before = operator.metric("cadre_pods_unlabelled_total") or 0
    # Strand a pod: out of the operator's pod watch (it selects on managed-by), holding
    # its finalizer, and without its TrainingJob's label either.
    as_alice(
        cluster,
        namespace,
        "label",
        "pod",
        name,
        "cadre.dev/trainingjob-",
        "app.kubernetes.io/managed-by-",
    )
    eventually(
        "the operator noticed",
        lambda: (operator.metric("cadre_pods_unlabelled_total") or 0) > before,
        timeout=30,
    )
    as_alice(cluster, namespace, "delete", "pod", name, "--wait=false")
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"
    eventually("the pod released and gone", lambda: not cluster.api.exists(path), timeout=60)

    def ledger() -> dict[str, Any]:
        body = cluster.api.get(f"{RBS}/{budget}")
        return dict((body.get("status") or {}).get("ledger") or {})

    # Settled: its charge is in the ledger (the team's only pod; container times are whole
    # seconds). The ledger names a settled pod only until it is seen gone, so the cost is
    # what is checked.
    eventually(
        "its charge in the ledger",
        lambda: Decimal((ledger().get("settled") or {}).get("cost") or "0") > 0,
        timeout=30,
    )
