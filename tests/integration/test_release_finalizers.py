"""`cadre release-finalizers` against a real API server: pods held by Cadre's accounting
finalizer are charged to their team, then released, when no operator does it (an
uninstall, or an operator absent longer than the bound); while an operator leads, the
command does nothing. It runs under the operator's ServiceAccount (manifests/rbac.yaml).

No kubelet runs here: the pods are objects whose container states the test writes to
their status, as a node would.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre_process import EXAMPLE_CONFIG, OperatorProcess, operator_kubeconfig
from localcluster import LocalCluster
from trainingjobs import BUDGETS, TJS, get, trainingjob
from waiting import eventually

GPU_SECOND = Decimal(1)  # an a100 GPU-hour at 3600


@pytest.fixture
def config(tmp_path: Path) -> Path:
    doc = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for flavor in doc["flavors"]:
        flavor["prices"] = {"gpuHour": "3600"} if flavor["name"] == "a100" else {}
    doc["leaderElection"] = {
        "leaseName": f"release-{uuid.uuid4().hex[:6]}",
        "leaseDurationSeconds": 6,
        "renewDeadlineSeconds": 4,
        "retryPeriodSeconds": 1,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def a100_node(apiserver: LocalCluster) -> Iterator[str]:
    name = f"a100-{uuid.uuid4().hex[:8]}"
    apiserver.api.create(
        "/api/v1/nodes",
        {"metadata": {"name": name, "labels": {"cadre.dev/flavor": "a100"}}},
    )
    yield name
    apiserver.api.call("DELETE", f"/api/v1/nodes/{name}", ok=(404,))


@pytest.fixture
def budget(apiserver: LocalCluster, namespace: str) -> Iterator[str]:
    name = f"team-{uuid.uuid4().hex[:8]}"
    apiserver.api.create(
        BUDGETS,
        {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ResourceBudget",
            "metadata": {"name": name},
            "spec": {"namespaces": [namespace], "quota": [{"flavor": "a100", "gpus": 8}]},
        },
    )
    apiserver.api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "default"}}
    )
    yield name
    apiserver.api.call("DELETE", f"{BUDGETS}/{name}", ok=(404,))


def held_pod(
    apiserver: LocalCluster, namespace: str, node: str, name: str, state: dict[str, Any]
) -> str:
    """A pod of a Cadre Job holding the finalizer, with 2 GPUs, its container in `state`."""
    pods = f"/api/v1/namespaces/{namespace}/pods"
    created = apiserver.api.create(
        pods,
        {
            "metadata": {
                "name": name,
                "labels": {
                    "cadre.dev/trainingjob": "gone-job",
                    "app.kubernetes.io/managed-by": "cadre",
                },
                "finalizers": ["cadre.dev/accounting"],
            },
            "spec": {
                "nodeName": node,
                "containers": [
                    {
                        "name": "worker",
                        "image": "train:1",
                        "resources": {
                            "requests": {"nvidia.com/gpu": "2"},
                            "limits": {"nvidia.com/gpu": "2"},
                        },
                    }
                ],
            },
        },
    )
    status = {
        "phase": "Running" if "running" in state else "Failed",
        "containerStatuses": [
            {
                "name": "worker",
                "image": "train:1",
                "imageID": "",
                "ready": "running" in state,
                "restartCount": 0,
                "state": state,
            }
        ],
    }
    apiserver.api.patch(f"{pods}/{name}/status", {"status": status})
    return str(created["metadata"]["uid"])


def release(kubeconfig: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cadre.tools.cli",
            "release-finalizers",
            "--config",
            str(config),
            "--kubeconfig",
            str(kubeconfig),
            "--log-format",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ago(seconds: float) -> str:
    """A time `seconds` before now, as a pod status gives it: a charge is counted in the
    budget's current period, so a fixed date stops counting when the month turns."""
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ledger(apiserver: LocalCluster, budget: str) -> tuple[list[str], Decimal]:
    """The pods the budget's ledger has settled, and what they cost."""
    status = apiserver.api.get(f"{BUDGETS}/{budget}").get("status") or {}
    settled = (status.get("ledger") or {}).get("settled") or {}
    pods = list((status.get("ledger") or {}).get("settledPods") or [])
    return pods, Decimal(settled.get("cost") or "0")


def test_pods_deleted_while_no_operator_runs_are_charged_then_released(
    apiserver: LocalCluster,
    *,
    namespace: str,
    budget: str,
    a100_node: str,
    config: Path,
    tmp_path: Path,
) -> None:
    kubeconfig = operator_kubeconfig(apiserver, tmp_path / "kubeconfig")
    finished = {"terminated": {"startedAt": ago(200), "finishedAt": ago(100), "exitCode": 0}}
    done = held_pod(apiserver, namespace, a100_node, "done-0", finished)
    running = held_pod(
        apiserver,
        namespace,
        a100_node,
        "running-0",
        {"running": {"startedAt": ago(200)}},
    )
    pods = f"/api/v1/namespaces/{namespace}/pods"
    apiserver.api.call("DELETE", f"{pods}/done-0", {"gracePeriodSeconds": 0})
    deleting = apiserver.api.get(f"{pods}/done-0")
    assert deleting["metadata"]["deletionTimestamp"]  # held: no operator to release it

    # The bound: deleted pods held longer than it are charged and released; the running
    # one (not deleted) is left alone.
    result = release(kubeconfig, config, "--held-longer-than", "0s")
    assert result.returncode == 0, result.stderr
    assert "1 pod(s) charged to their teams and released" in result.stdout
    assert not apiserver.api.exists(f"{pods}/done-0")
    settled, cost = ledger(apiserver, budget)
    assert done in settled
    assert cost == 2 * 100 * GPU_SECOND
    assert apiserver.api.get(f"{pods}/running-0")["metadata"]["finalizers"]

    # An uninstall: every held pod, a running one charged up to now.
    result = release(kubeconfig, config, "--all")
    assert result.returncode == 0, result.stderr
    assert not apiserver.api.get(f"{pods}/running-0")["metadata"].get("finalizers")
    settled, cost_after = ledger(apiserver, budget)
    assert running in settled
    assert cost_after > cost


def test_nothing_is_done_while_an_operator_leads(
    apiserver: LocalCluster,
    *,
    namespace: str,
    budget: str,
    a100_node: str,
    config: Path,
    tmp_path: Path,
) -> None:
    kubeconfig = operator_kubeconfig(apiserver, tmp_path / "kubeconfig")
    op = OperatorProcess(kubeconfig, tmp_path / "op", config).start()
    try:
        eventually("leading", op.leading)
        result = release(kubeconfig, config, "--all", "--lease-wait", "3")
        assert result.returncode == 0, result.stderr
        assert "holds the leader Lease" in result.stdout
        assert op.leading()
    finally:
        op.stop()


def test_a_pod_whose_label_is_removed_is_still_released_by_the_operator(
    apiserver: LocalCluster,
    *,
    namespace: str,
    budget: str,
    a100_node: str,
    config: Path,
    tmp_path: Path,
) -> None:
    """The operator's pod watch selects on app.kubernetes.io/managed-by=cadre: a pod whose
    labels are removed leaves it (a DELETED event, though the pod is there). It is read by
    name from then on, so when it is deleted its charge is recorded and its finalizer
    released."""
    kubeconfig = operator_kubeconfig(apiserver, tmp_path / "kubeconfig")
    finished = {
        "terminated": {
            "startedAt": ago(130),
            "finishedAt": ago(100),
            "exitCode": 0,
        }
    }
    uid = held_pod(apiserver, namespace, a100_node, "stray-0", finished)
    path = f"/api/v1/namespaces/{namespace}/pods/stray-0"
    op = OperatorProcess(kubeconfig, tmp_path / "op", config).start()
    try:
        eventually("leading", op.leading)
        eventually("the pod in the cache", lambda: op.readiness()["cache"].get("pods"))
        apiserver.api.patch(
            path,
            {
                "metadata": {
                    "labels": {"cadre.dev/trainingjob": None, "app.kubernetes.io/managed-by": None}
                }
            },
        )
        eventually("noticed", lambda: op.metric("cadre_pods_unlabelled_total") == 1)
        apiserver.api.call("DELETE", path, {"gracePeriodSeconds": 0})
        eventually("released and gone", lambda: not apiserver.api.exists(path))
        settled, cost = ledger(apiserver, budget)
        assert uid in settled
        assert cost == 2 * 30 * GPU_SECOND
    finally:
        op.stop()


def test_the_cronjob_of_the_bound_is_accepted_by_the_api_server(
    apiserver: LocalCluster, tmp_path: Path
) -> None:
    operator_kubeconfig(apiserver, tmp_path / "kubeconfig")  # the namespace and the account
    manifest = Path(__file__).resolve().parents[2] / "manifests" / "finalizer-release.yaml"
    result = apiserver.kubectl("apply", "--dry-run=server", "-f", str(manifest))
    assert "cadre-finalizer-release" in result.stdout


def test_a_job_whose_label_is_removed_is_replaced_and_holds_its_quota_meanwhile(
    apiserver: LocalCluster, *, namespace: str, team: str, t4_node: str, tmp_path: Path
) -> None:
    """The Job watch selects on cadre.dev/trainingjob too: a Job that leaves it (its label
    removed, with the admission policies absent) is not taken as gone. Read by name, it
    is Cadre's child tampered with: deleted by UID, and a new one made from the spec."""
    kubeconfig = operator_kubeconfig(apiserver, tmp_path / "kubeconfig")
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    op = OperatorProcess(kubeconfig, tmp_path / "op").start()
    try:
        eventually("leading", op.leading)
        apiserver.api.create(TJS.format(ns=namespace), trainingjob("relabel", workers=1))
        first = eventually("its Job", lambda: get(apiserver, f"{jobs}/relabel"))
        apiserver.api.patch(
            f"{jobs}/relabel", {"metadata": {"labels": {"cadre.dev/trainingjob": None}}}
        )
        eventually("noticed", lambda: op.metric("cadre_jobs_unlabelled_total") == 1)
        eventually(
            "a new Job, labelled",
            lambda: (
                (j := get(apiserver, f"{jobs}/relabel"))
                and j["metadata"]["uid"] != first["metadata"]["uid"]
                and j["metadata"]["labels"].get("cadre.dev/trainingjob") == "relabel"
                and j
            ),
        )
    finally:
        op.stop()
