"""`cadre status` as a subprocess against the real kube-apiserver, with the operator
running (so the budgets' and jobs' statuses are real), as an admin and as a team member
whose kubeconfig reads only what manifests/roles.yaml gives team members.

Two teams in one cohort on one 8-GPU t4 node: `alpha` (4 t4 guaranteed, a 100 USD
budget) runs 2 GPUs and queues an 8-GPU job; `beta` (2 t4) runs a 4-GPU job by borrowing
2 of alpha's idle GPUs. Run with -s to see the captured output (it is the one in
README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cadre_process import (
    OperatorProcess,
    operator_kubeconfig,
    running_operator,
    service_account_kubeconfig,
)
from localcluster import LocalCluster
from trainingjobs import BUDGETS, TJS, get, trainingjob
from waiting import eventually

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Teams:
    alpha: str
    beta: str
    alpha_ns: str
    beta_ns: str


@pytest.fixture(scope="module")
def operator(
    apiserver: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("status-operator")
    kubeconfig = operator_kubeconfig(apiserver, workdir / "kubeconfig")
    with running_operator(kubeconfig, workdir) as op:
        yield op
        assert op.alive(), op.log_tail()


def _budget(name: str, namespace: str, gpus: int, limit: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "namespaces": [namespace],
        "cohort": "research",
        "quota": [{"flavor": "t4", "gpus": gpus}],
    }
    if limit is not None:
        spec["spend"] = {"limit": limit, "whenExceeded": "Queue"}
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ResourceBudget",
        "metadata": {"name": name},
        "spec": spec,
    }


def _phase(apiserver: LocalCluster, namespace: str, name: str, phase: str) -> dict[str, Any]:
    return eventually(
        f"{namespace}/{name} {phase}",
        lambda: (
            (o := get(apiserver, f"{TJS.format(ns=namespace)}/{name}"))
            and (o.get("status") or {}).get("phase") == phase
            and o
        ),
    )


@pytest.fixture(scope="module")
def teams(apiserver: LocalCluster, operator: OperatorProcess) -> Iterator[Teams]:
    suffix = uuid.uuid4().hex[:6]
    t = Teams(f"alpha-{suffix}", f"beta-{suffix}", f"alpha-{suffix}", f"beta-{suffix}")
    node = f"t4-status-{suffix}"
    for ns in (t.alpha_ns, t.beta_ns):
        apiserver.create_namespace(ns)
    apiserver.api.create(BUDGETS, _budget(t.alpha, t.alpha_ns, 4, "100"))
    apiserver.api.create(BUDGETS, _budget(t.beta, t.beta_ns, 2, None))
    capacity = {"cpu": "48", "memory": "192Gi", "nvidia.com/gpu": "8", "pods": "110"}
    apiserver.api.create(
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node, "labels": {"cadre.dev/flavor": "t4"}},
            "status": {"capacity": capacity, "allocatable": capacity},
        },
    )
    try:
        apiserver.api.create(TJS.format(ns=t.alpha_ns), trainingjob("fits", workers=2))
        _phase(apiserver, t.alpha_ns, "fits", "Admitted")
        apiserver.api.create(TJS.format(ns=t.beta_ns), trainingjob("borrows", workers=4))
        _phase(apiserver, t.beta_ns, "borrows", "Admitted")
        apiserver.api.create(TJS.format(ns=t.alpha_ns), trainingjob("too-big", workers=8))
        _phase(apiserver, t.alpha_ns, "too-big", "Queued")

        def budgets_written() -> bool:
            alpha = (get(apiserver, f"{BUDGETS}/{t.alpha}") or {}).get("status") or {}
            beta = (get(apiserver, f"{BUDGETS}/{t.beta}") or {}).get("status") or {}
            return (
                (alpha.get("usage") or {}).get("t4", {}).get("gpus") == 2
                and alpha.get("queued") == 1
                and (beta.get("usage") or {}).get("t4", {}).get("borrowedGpus") == 2
                and "spend" in alpha
            )

        eventually("both budgets' status", budgets_written)
        yield t
    finally:
        for ns in (t.alpha_ns, t.beta_ns):
            apiserver.delete_namespace(ns)
        for name in (t.alpha, t.beta):
            apiserver.api.call("DELETE", f"{BUDGETS}/{name}", ok=(404,))
        apiserver.api.call("DELETE", f"/api/v1/nodes/{node}", ok=(404,))


def _member_kubeconfig(
    apiserver: LocalCluster, namespace: str, user: str, path: Path, *, budget_viewer: bool
) -> Path:
    """A ServiceAccount standing for a team member: `edit` in their namespace (with
    cadre-edit bound beside it, since no kube-controller-manager aggregates it here) and,
    as roles.yaml says the platform does for team members, `cadre-budget-viewer`."""
    api = apiserver.api
    api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": user}},
    )
    subject = {"kind": "ServiceAccount", "name": user, "namespace": namespace}
    for role in ("edit", "cadre-edit"):
        api.create(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"{user}-{role}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [subject],
            },
        )
    if budget_viewer:
        api.create(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{namespace}-{user}-budget-viewer"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cadre-budget-viewer",
                },
                "subjects": [subject],
            },
        )
    service_account_kubeconfig(apiserver, namespace, user, path, context_namespace=namespace)
    # RBAC is served from the authorizer's informers: wait until the bindings are in force
    # (exit 3: something shown, not everything readable).
    eventually(
        "the member's RBAC in force", lambda: cadre_status(path, "-o", "json").returncode == 3
    )
    return path


def cadre_status(kubeconfig: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "TERM": "dumb", "PYTHONPATH": str(REPO / "operator")}
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cadre.tools.cli",
            "status",
            "--kubeconfig",
            str(kubeconfig),
            "--no-color",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_admin_sees_both_teams_with_borrowing_spend_and_the_oldest_waiting_job(
    apiserver: LocalCluster, teams: Teams
) -> None:
    result = cadre_status(apiserver.kubeconfig)
    print(f"\n$ cadre status   # as the admin\n{result.stdout}{result.stderr}")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "Teams (money in USD)" in out
    alpha_row = next(line for line in out.splitlines() if line.startswith(teams.alpha))
    assert alpha_row.split()[1:6] == ["t4", "2/4", "0", "0.00", "100"], alpha_row
    assert alpha_row.split()[-2:] == ["Ok", "1"], alpha_row
    beta_row = next(line for line in out.splitlines() if line.startswith(teams.beta))
    # 4 in use of 2 guaranteed: 2 borrowed from alpha's idle quota.
    assert beta_row.split()[1:4] == ["t4", "4/2", "2"], beta_row
    assert f"tj {teams.alpha_ns}/too-big" in out
    assert "Not everything could be read" not in out


def test_admin_team_filter_and_json_keys(apiserver: LocalCluster, teams: Teams) -> None:
    result = cadre_status(apiserver.kubeconfig, "--team", teams.alpha, "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"schemaVersion", "generatedAt", "complete", "teams", "unreadable", "notes"}
    assert data["complete"] is True and data["unreadable"] == []
    (alpha,) = data["teams"]
    assert set(alpha) == {
        "name", "cohort", "namespaces", "budgetReadable", "workloadsComplete",
        "unreadNamespaces", "flavours", "spend", "admitted", "queued", "oldestWaiting",
    }  # fmt: skip
    assert alpha["flavours"] == [
        {"flavour": "t4", "quotaGpus": 4, "usedGpus": 2, "borrowedGpus": 0}
    ]
    assert alpha["queued"] == 1 and alpha["admitted"] == 1
    spend = alpha["spend"]
    assert (spend["currency"], spend["limit"], spend["state"]) == ("USD", "100", "Ok")
    waiting = alpha["oldestWaiting"]
    assert (waiting["kind"], waiting["namespace"], waiting["name"]) == (
        "TrainingJob",
        teams.alpha_ns,
        "too-big",
    )
    assert "t4" in waiting["reason"] and waiting["position"] == 1

    missing = cadre_status(apiserver.kubeconfig, "--team", "no-such-team")
    assert missing.returncode == 1
    assert "no team no-such-team" in missing.stdout


def test_team_member_sees_their_team_and_what_they_may_not_read(
    apiserver: LocalCluster, teams: Teams, tmp_path: Path
) -> None:
    kubeconfig = _member_kubeconfig(
        apiserver, teams.alpha_ns, "alice", tmp_path / "alice", budget_viewer=True
    )
    result = cadre_status(kubeconfig)
    print(f"\n$ cadre status   # as a member of {teams.alpha}\n{result.stdout}{result.stderr}")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert f"tj {teams.alpha_ns}/too-big" in out
    assert "could not read trainingjobs cluster-wide: forbidden" in out
    assert f"team {teams.beta}: workloads in {teams.beta_ns} not readable" in out

    data = json.loads(cadre_status(kubeconfig, "-o", "json").stdout)
    assert data["complete"] is False
    by_name = {t["name"]: t for t in data["teams"]}
    assert by_name[teams.alpha]["workloadsComplete"] is True
    assert by_name[teams.alpha]["queued"] == 1
    # The other team's figures come from its budget (readable cluster-wide).
    assert by_name[teams.beta]["workloadsComplete"] is False
    assert by_name[teams.beta]["flavours"][0]["borrowedGpus"] == 2
    assert {(u["resource"], u["namespace"], u["status"]) for u in data["unreadable"]} == {
        ("trainingjobs", None, 403),
        ("modeldeployments", None, 403),
    }


def test_member_without_the_budget_viewer_still_sees_their_workloads(
    apiserver: LocalCluster, teams: Teams, tmp_path: Path
) -> None:
    kubeconfig = _member_kubeconfig(
        apiserver, teams.alpha_ns, "bob", tmp_path / "bob", budget_viewer=False
    )
    result = cadre_status(kubeconfig, "-o", "json")
    assert result.returncode == 3, result.stdout + result.stderr
    data = json.loads(result.stdout)
    (alpha,) = data["teams"]
    assert alpha["name"] == teams.alpha and alpha["budgetReadable"] is False
    assert alpha["oldestWaiting"]["name"] == "too-big"
    unreadable = {(u["resource"], u["status"]) for u in data["unreadable"]}
    assert ("resourcebudgets", 403) in unreadable
    assert (f"resourcebudgets/{teams.alpha}", 403) in unreadable


def test_unusable_kubeconfig_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    result = cadre_status(broken)
    assert result.returncode == 1
    assert "cadre status: cannot use the kubeconfig" in result.stderr
    assert "Traceback" not in result.stderr
