"""ResourceBudgets on the whole local cluster: cohort borrowing and reclaim, money budgets
that warn, hold new work and suspend running work, and cost that survives an operator
killed mid-job and work deleted while it is down.

The operator runs with the example config but steep prices (an a100 GPU costs 3600 an
hour: one unit of money per GPU-second, so budgets cross their thresholds in seconds)
and budgets refreshed every second. Each test has its own namespaces and budgets.
"""

from __future__ import annotations

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
# Per second on a100: a GPU 1, a CPU core 0.01, a GiB of memory 0.001.
A100_PRICES = {"gpuHour": "3600", "cpuCoreHour": "36", "memoryGiBHour": "3.6"}
GPU_SECOND, CORE_SECOND, GIB_SECOND = Decimal(1), Decimal("0.01"), Decimal("0.001")


@pytest.fixture(scope="module")
def operator(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("budgets")
    config = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    for flavor in config["flavors"]:
        flavor["prices"] = A100_PRICES if flavor["name"] == "a100" else {}
    config["accounting"] = {"refreshSeconds": 1}
    config.setdefault("admission", {})["positionRefreshSeconds"] = 5
    config_path = workdir / "operator-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    kubeconfig = operator_kubeconfig(cluster, workdir / "kubeconfig")
    with running_operator(kubeconfig, workdir, config_path) as op:
        yield op


@pytest.fixture
def teams(cluster: LocalCluster) -> Iterator[Callable[..., tuple[str, str]]]:
    """make(cohort=..., quota=..., spend=...) -> (budget name, namespace); all deleted
    afterwards (their TrainingJobs with them)."""
    made: list[tuple[str, str]] = []

    def make(**spec: Any) -> tuple[str, str]:
        name = f"team-{uuid.uuid4().hex[:6]}"
        namespace = cluster.create_namespace(name)
        cluster.wait_default_service_account(namespace)
        body = {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ResourceBudget",
            "metadata": {"name": name},
            "spec": {"namespaces": [namespace], **spec},
        }
        cluster.api.create(RBS, body)
        made.append((name, namespace))
        return name, namespace

    yield make
    for name, namespace in made:
        # Waited for while the operator runs: the pods' accounting finalizers go with it.
        cluster.delete_namespace(namespace, wait=90)
        cluster.api.call("DELETE", f"{RBS}/{name}", ok=(404,))


def trainingjob(name: str, workers: int, gpus: int, delay: str) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "command": ["python", "train.py"],
            "workers": workers,
            "resources": {"flavor": "a100", "gpus": gpus, "cpu": "2", "memory": "8Gi"},
            "podMetadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": delay}},
        },
    }


def tjs(namespace: str) -> str:
    return f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/trainingjobs"


def tj_status(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    code, body = cluster.api.request("GET", f"{tjs(namespace)}/{name}")
    return (body.get("status") or {}) if code == 200 else {}


def phase(cluster: LocalCluster, namespace: str, name: str, *phases: str) -> Callable[[], Any]:
    return lambda: (s := tj_status(cluster, namespace, name)).get("phase") in phases and s


def budget(cluster: LocalCluster, name: str) -> dict[str, Any]:
    body: dict[str, Any] = cluster.api.get(f"{RBS}/{name}")
    return body


def budget_status(cluster: LocalCluster, name: str) -> dict[str, Any]:
    return budget(cluster, name).get("status") or {}


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or []}


def budget_events(cluster: LocalCluster, name: str) -> list[str]:
    items = cluster.api.get("/api/v1/namespaces/default/events")["items"]
    mine = [e for e in items if e["involvedObject"].get("name") == name]
    mine.sort(key=lambda e: (e.get("firstTimestamp") or "", e["metadata"]["creationTimestamp"]))
    return [e["reason"] for e in mine]


def pods(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.api.get(
        f"/api/v1/namespaces/{namespace}/pods?labelSelector=cadre.dev%2Ftrainingjob%3D{name}"
    )["items"]
    return items


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def cost_from_pods(items: list[dict[str, Any]]) -> Decimal:
    """By hand: each container's terminated startedAt..finishedAt x (its GPUs, CPU cores
    and GiB of memory x their prices)."""
    total = Decimal(0)
    for pod in items:
        requests = pod["spec"]["containers"][0]["resources"]["requests"]
        assert requests["memory"].endswith("Gi")
        per_second = (
            int(requests["nvidia.com/gpu"]) * GPU_SECOND
            + Decimal(requests["cpu"]) * CORE_SECOND
            + Decimal(requests["memory"][:-2]) * GIB_SECOND
        )
        for status in pod["status"]["containerStatuses"]:
            done = status["state"]["terminated"]
            seconds = (_time(done["finishedAt"]) - _time(done["startedAt"])).total_seconds()
            total += Decimal(str(seconds)) * per_second
    return total


def test_cohort_borrowing_then_reclaim(
    operator: OperatorProcess, cluster: LocalCluster, teams: Callable[..., tuple[str, str]]
) -> None:
    cohort = f"c-{uuid.uuid4().hex[:6]}"
    quota = [{"flavor": "a100", "gpus": 4}]
    lender, lender_ns = teams(cohort=cohort, quota=quota)
    borrower, borrower_ns = teams(cohort=cohort, quota=quota)
    # 2 x 4 GPUs: 4 of its own and 4 borrowed from the idle lender.
    cluster.api.create(tjs(borrower_ns), trainingjob("big", 2, 4, "300s"))
    eventually("borrower Running", phase(cluster, borrower_ns, "big", "Running"))
    usage = eventually(
        "borrower's usage in status",
        lambda: (
            (u := budget_status(cluster, borrower).get("usage", {}).get("a100"))
            and u["gpus"] == 8
            and u
        ),
        timeout=15,
    )
    assert usage["borrowedGpus"] == 4
    status = budget_status(cluster, borrower)
    assert (status["admitted"], status["queued"]) == (1, 0)
    assert status["namespaces"] == [borrower_ns]
    # The lender needs its quota back: the borrower is preempted.
    cluster.api.create(tjs(lender_ns), trainingjob("own", 1, 4, "300s"))
    eventually("lender Running", phase(cluster, lender_ns, "own", "Running"))
    victim = eventually("borrower Preempted", phase(cluster, borrower_ns, "big", "Preempted"))
    assert "reclaim" in conditions(victim)["Admitted"]["message"], victim
    eventually(
        "usage after the reclaim",
        lambda: (
            budget_status(cluster, lender).get("usage", {}).get("a100", {}).get("gpus") == 4
            and budget_status(cluster, borrower).get("usage", {}).get("a100", {}).get("gpus") == 0
        ),
        timeout=15,
    )
    assert operator.metric("cadre_team_usage_gpus", team=lender, flavor="a100") == 4
    assert operator.metric("cadre_team_borrowed_gpus", team=borrower, flavor="a100") == 0
    assert operator.metric("cadre_team_quota_gpus", team=borrower, flavor="a100") == 4


def test_crossings_warn_then_hold_new_work_until_the_limit_is_lifted(
    operator: OperatorProcess, cluster: LocalCluster, teams: Callable[..., tuple[str, str]]
) -> None:
    spend = {"limit": "40", "warnAt": [0.5, 0.8], "whenExceeded": "Queue"}
    name, namespace = teams(quota=[{"flavor": "a100", "gpus": 16}], spend=spend)
    # 4 GPUs at 1 per GPU-second (plus 0.028 for CPU and memory): 50% after about 5 s,
    # 80% after 8 s, 100% after 10 s.
    cluster.api.create(tjs(namespace), trainingjob("burner", 1, 4, "25s"))
    eventually("Running", phase(cluster, namespace, "burner", "Running"))
    exceeded = eventually(
        "Exceeded",
        lambda: (
            (s := budget_status(cluster, name)).get("spend", {}).get("state") == "Exceeded" and s
        ),
        timeout=30,
    )
    assert conditions(exceeded)["BudgetExceeded"]["status"] == "True"
    assert conditions(exceeded)["BudgetExceeded"]["reason"] == "NewWorkHeld"
    # Running work goes on under Queue; new work waits with the reason.
    cluster.api.create(tjs(namespace), trainingjob("next", 1, 1, "2s"))
    held = eventually("next Queued", phase(cluster, namespace, "next", "Queued"))
    assert "budget exceeded for this month" in held["queue"]["reason"], held
    assert tj_status(cluster, namespace, "burner")["phase"] == "Running"
    events = eventually(
        "three crossing events",
        lambda: len(e := budget_events(cluster, name)) >= 3 and e,
        timeout=10,
    )
    assert events == ["BudgetWarning", "BudgetWarning", "BudgetExceeded"], events
    # Two more spend refreshes (the spend grows): no new event without a new crossing.
    operator.wait_metric_increase("cadre_budget_refreshes_total", by=2)
    assert budget_events(cluster, name) == events
    described = cluster.kubectl("describe", "rb", name).stdout
    assert "BudgetExceeded" in described[described.index("Events:") :], described
    # The platform team lifts the limit: the queue moves.
    code, body = cluster.api.request(
        "PATCH",
        f"{RBS}/{name}",
        {"spec": {"spend": {"limit": "100000"}}},
        content_type="application/merge-patch+json",
    )
    assert code == 200, body
    eventually("next runs", phase(cluster, namespace, "next", "Running", "Succeeded"), timeout=20)
    # The budget's status and Event are written apart from the admission: wait on them.
    eventually("a BudgetOk Event", lambda: budget_events(cluster, name)[-1] == "BudgetOk")
    assert conditions(budget_status(cluster, name))["BudgetExceeded"]["status"] == "False"


def test_suspend_policy_suspends_running_work(
    operator: OperatorProcess, cluster: LocalCluster, teams: Callable[..., tuple[str, str]]
) -> None:
    spend = {"limit": "12", "whenExceeded": "Suspend"}
    name, namespace = teams(quota=[{"flavor": "a100", "gpus": 16}], spend=spend)
    cluster.api.create(tjs(namespace), trainingjob("spender", 2, 2, "300s"))
    eventually("Running", phase(cluster, namespace, "spender", "Running"))
    stopped = eventually(
        "suspended by the budget", phase(cluster, namespace, "spender", "Preempted"), timeout=30
    )
    admitted = conditions(stopped)["Admitted"]
    assert admitted["reason"] == "BudgetExceeded", admitted
    assert "budget exceeded" in admitted["message"]
    eventually("its pods gone", lambda: pods(cluster, namespace, "spender") == [], timeout=30)
    status = budget_status(cluster, name)
    assert conditions(status)["BudgetExceeded"]["reason"] == "WorkSuspended"
    # Everything the pods ran is charged: spend is frozen once they are gone.
    spent = Decimal(status["spend"]["spent"])
    assert spent >= 12
    operator.wait_metric_increase("cadre_budget_refreshes_total", by=2)
    assert Decimal(budget_status(cluster, name)["spend"]["spent"]) == spent


def test_operator_killed_mid_job_and_work_deleted_while_it_is_down_cost_to_the_cent(
    operator: OperatorProcess, cluster: LocalCluster, teams: Callable[..., tuple[str, str]]
) -> None:
    name, namespace = teams(quota=[{"flavor": "a100", "gpus": 16}])
    cluster.api.create(tjs(namespace), trainingjob("steady", 2, 2, "6s"))
    eventually("Running", phase(cluster, namespace, "steady", "Running"))

    def spent() -> Decimal:
        return Decimal(budget_status(cluster, name).get("spend", {}).get("spent") or "-1")

    eventually("some spend recorded", lambda: spent() > 0)
    operator.kill()  # SIGKILL mid-job
    operator.start()
    eventually("Succeeded", phase(cluster, namespace, "steady", "Succeeded"), timeout=60)
    expected = cost_from_pods(pods(cluster, namespace, "steady"))

    eventually("spend caught up", lambda: spent() == expected.quantize(Decimal("0.01")))
    from_metrics = operator.metric("cadre_budget_spend", team=name, period="current")
    print(
        f"\nscripted run (2 workers x (2 a100 GPUs, 2 cores, 8Gi) at 3600/GPU-hour, "
        f"36/core-hour, 3.6/GiB-hour, operator SIGKILLed mid-job): by hand from pod "
        f"timestamps {expected} -> {expected:.2f}; "
        f"budget status {spent()}; metric cadre_budget_spend {from_metrics}"
    )
    assert from_metrics is not None
    assert Decimal(str(from_metrics)).quantize(Decimal("0.01")) == expected.quantize(
        Decimal("0.01")
    )

    # Second job: deleted while the operator is down. Its pods stay (Cadre's finalizer)
    # until the restarted operator has charged them.
    cluster.api.create(tjs(namespace), trainingjob("doomed", 1, 4, "300s"))
    eventually("doomed Running", phase(cluster, namespace, "doomed", "Running"))
    # Charged live for more than a second first: container times are whole seconds, so
    # a pod killed within the second it started would rightly cost nothing.
    eventually(
        "doomed charged while it runs",
        lambda: spent() > expected.quantize(Decimal("0.01")) + 8 * GPU_SECOND,
        timeout=30,
    )
    operator.kill()
    cluster.api.call("DELETE", f"{tjs(namespace)}/doomed")
    # The garbage collector deletes the Job, then its pods: they stay, Terminating, held by
    # Cadre's finalizer until their cost is recorded.
    held = eventually(
        "the pods deleted (Terminating)",
        lambda: (
            (p := pods(cluster, namespace, "doomed"))
            and all(x["metadata"].get("deletionTimestamp") for x in p)
            and p
        ),
    )
    assert all("cadre.dev/accounting" in x["metadata"]["finalizers"] for x in held)
    operator.start()
    eventually("the pods released", lambda: pods(cluster, namespace, "doomed") == [], timeout=60)
    # The pod was stopped when the garbage collector deleted it (finishedAt), or at the
    # latest when the operator came back: its charge is between.
    final = eventually(
        "settled",
        lambda: (s := spent()) > expected.quantize(Decimal("0.01")) and s,
        timeout=20,
    )
    ledger = budget_status(cluster, name)["ledger"]
    assert Decimal(ledger["settled"]["cost"]) > 0
    operator.wait_metric_increase("cadre_budget_refreshes_total", by=2)
    assert spent() == final  # nothing charged twice after the restart


def test_a_namespace_in_two_budgets_is_a_conflict_on_both_and_its_work_waits(
    operator: OperatorProcess, cluster: LocalCluster, teams: Callable[..., tuple[str, str]]
) -> None:
    first, namespace = teams(quota=[{"flavor": "a100", "gpus": 8}])
    second = f"team-{uuid.uuid4().hex[:6]}"
    cluster.api.create(
        RBS,
        {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ResourceBudget",
            "metadata": {"name": second},
            "spec": {"namespaces": [namespace], "quota": [{"flavor": "a100", "gpus": 8}]},
        },
    )
    try:
        cluster.api.create(tjs(namespace), trainingjob("contested", 1, 1, "2s"))
        held = eventually("Queued", phase(cluster, namespace, "contested", "Queued"))
        assert conditions(held)["Admitted"]["reason"] == "NamespaceConflict", held
        for name, other in ((first, second), (second, first)):
            conflict = eventually(
                f"conflict on {name}",
                lambda name=name: (
                    (  # type: ignore[misc]
                        c := conditions(budget_status(cluster, name)).get("NamespaceConflict")
                    )
                    and c["status"] == "True"
                    and c
                ),
                timeout=15,
            )
            assert other in conflict["message"] and namespace in conflict["message"]
        # One budget lets the namespace go: the work runs.
        cluster.api.call("DELETE", f"{RBS}/{second}")
        eventually(
            "runs", phase(cluster, namespace, "contested", "Running", "Succeeded"), timeout=20
        )
    finally:
        cluster.api.call("DELETE", f"{RBS}/{second}", ok=(404,))
