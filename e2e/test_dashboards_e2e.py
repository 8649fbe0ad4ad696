"""Every query of every generated Grafana dashboard, evaluated by a real Prometheus that
scrapes a real operator on the whole local cluster.

Two teams of one cohort, with money budgets (steep prices: an a100 GPU costs one unit a
second) and GPU-hour limits. The scenario makes every panel have data: API calls that fail
and are retried and given up (fault injection), a gang that borrows the lender's GPUs, the
lender taking them back (a preemption) and the borrower left queued. Then each panel
target, with Grafana's variables substituted, must be a valid query answering at least
one series. Prometheus scrapes 127.0.0.1 only.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre.tools.monitoring import dashboards
from cadre_process import OperatorProcess, operator_kubeconfig
from localcluster import LocalCluster
from localcluster import prometheus as prom
from waiting import eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
RBS = "/apis/cadre.dev/v1alpha1/resourcebudgets"
RATE_INTERVAL = "1m"
"""For `$__rate_interval`: holds 60 one-second scrapes, the whole scenario's recent past."""
TIME_RANGE = "1h"
"""For `$__range` (the dashboard's time range): longer than the run, as in real use."""

EMPTY_ALLOWED = {
    "cadre_resync_dropped_total": (
        "counts objects a relist finds gone while the cache still holds them: only a "
        "DELETED event missed during a cut watch makes one, which no scenario on a "
        "healthy local cluster can produce on demand; the query is still checked valid"
    ),
}
"""Targets that may answer no series (keyed by the metric they read), and why."""


@pytest.fixture(scope="module")
def operator(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("dashboards")
    config = yaml.safe_load((REPO / "examples" / "operator-config.yaml").read_text())
    for flavor in config["flavors"]:
        if flavor["name"] == "a100":
            flavor["prices"] = {"gpuHour": "3600"}
    config["accounting"] = {"refreshSeconds": 1}
    config.setdefault("controller", {})["resyncSeconds"] = 5  # resyncs within the run
    config_path = workdir / "operator-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    kubeconfig = operator_kubeconfig(cluster, workdir / "kubeconfig")
    op = OperatorProcess(kubeconfig, workdir, config_path, fault_injection=True)
    try:
        yield op.start()
    finally:
        op.stop()


@pytest.fixture(scope="module")
def prometheus(
    operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[prom.PrometheusProcess]:
    if not prom.available():
        pytest.fail(f"no Prometheus at {prom.binary()} (Debian package `prometheus`)")
    server = prom.PrometheusProcess(
        tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{operator.metrics_port}"]
    )
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def cohort(cluster: LocalCluster) -> Iterator[tuple[str, str]]:
    """Two teams (budget name = namespace) sharing 8 a100 GPUs; deleted afterwards."""
    cohort_name = f"dash-{uuid.uuid4().hex[:6]}"
    names = [f"dash-lender-{uuid.uuid4().hex[:6]}", f"dash-borrower-{uuid.uuid4().hex[:6]}"]
    for name in names:
        cluster.create_namespace(name)
        cluster.api.create(
            RBS,
            {
                "apiVersion": "cadre.dev/v1alpha1",
                "kind": "ResourceBudget",
                "metadata": {"name": name},
                "spec": {
                    "namespaces": [name],
                    "cohort": cohort_name,
                    "quota": [{"flavor": "a100", "gpus": 4, "cpu": "64", "memory": "256Gi"}],
                    "spend": {"period": "Monthly", "limit": "1000000", "gpuHours": 10000},
                },
            },
        )
    yield names[0], names[1]
    for name in names:
        cluster.delete_namespace(name, wait=90)  # while the operator runs: finalizers go
        cluster.api.call("DELETE", f"{RBS}/{name}", ok=(404,))


def trainingjob(name: str, workers: int, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "workers": workers,
            "resources": {"flavor": "a100", "gpus": gpus, "cpu": "2", "memory": "8Gi"},
            "podMetadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "600s"}},
        },
    }


def phase_is(cluster: LocalCluster, namespace: str, name: str, phase: str) -> bool:
    path = f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/trainingjobs/{name}"
    code, body = cluster.api.request("GET", path)
    return code == 200 and (body.get("status") or {}).get("phase") == phase


def substitute(expr: str, teams: tuple[str, str]) -> str:
    """Grafana's variables as Grafana would expand them for these two teams."""
    values = {
        "team": "|".join(teams),  # a multi-value variable in a =~ matcher
        "job": prom.JOB,
        "__rate_interval": RATE_INTERVAL,
        "__range": TIME_RANGE,
        "__interval": "15s",
    }
    out = re.sub(
        r"\$\{?(\w+)\}?",
        lambda m: values[m.group(1)],
        expr,
    )
    assert "$" not in out, out
    return out


def targets() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every target of every generated dashboard."""
    found = []
    for board in dashboards.build_all().values():
        for panel in board["panels"]:
            found += [
                (board["title"], panel["title"], t["expr"]) for t in panel.get("targets") or []
            ]
    return found


def test_every_dashboard_query_answers_with_series(
    cluster: LocalCluster,
    operator: OperatorProcess,
    prometheus: prom.PrometheusProcess,
    cohort: tuple[str, str],
) -> None:
    lender, borrower = cohort
    both = f'team=~"{lender}|{borrower}"'
    scraped = eventually(
        "Prometheus scraping the operator",
        lambda: [t for t in prometheus.active_targets() if t["health"] == "up"],
        timeout=30,
    )
    assert {t["labels"]["job"] for t in scraped} == {prom.JOB}
    if prom.default_rules():
        assert prometheus.rule_groups(), "the alert rules file exists but none was loaded"

    # The gang's PodGroup (the reconciler makes it once the admission loop has created the
    # Job) cannot be created: 7 faulty attempts make the first call give up after its
    # retries (cadre_api_failures_total) and the work queue retry it
    # (cadre_workqueue_retries_total).
    operator.inject(verb="POST", resource="podgroups", fault=500, times=7)
    # 2 x 4 GPUs: 4 of its own and 4 borrowed from the idle lender.
    cluster.api.create(
        f"/apis/cadre.dev/v1alpha1/namespaces/{borrower}/trainingjobs", trainingjob("big", 2, 4)
    )
    eventually("borrower Running", lambda: phase_is(cluster, borrower, "big", "Running"), 90)
    eventually(
        "the borrowed GPUs scraped",
        lambda: prometheus.series_count(f"cadre_team_borrowed_gpus{{team={borrower!r}}} > 0"),
        30,
    )
    # The lender wants its own GPUs back: the borrower is preempted, then waits.
    cluster.api.create(
        f"/apis/cadre.dev/v1alpha1/namespaces/{lender}/trainingjobs", trainingjob("own", 1, 4)
    )
    eventually("lender Running", lambda: phase_is(cluster, lender, "own", "Running"), 90)
    for what, expr in (
        ("a preemption", 'cadre_admission_decisions_total{decision="preempt"} > 0'),
        ("the borrower queued", f'cadre_team_workloads{{team="{borrower}", state="queued"}} > 0'),
        ("cost of both teams", f"count by (team) (cadre_cost_total{{{both}}} > 0)"),
        # Two samples of each (a rate's least): a job admitted at once has a young series.
        ("cost rates of both teams", f"count by (team) (rate(cadre_cost_total{{{both}}}[1m]))"),
        ("forecasts of both teams", f"cadre_budget_forecast{{{both}}}"),
        (
            "admissions of both teams",
            f"count by (team) (cadre_time_to_admission_seconds_count{{{both}}})",
        ),
        ("a reconcile retried", "cadre_workqueue_retries_total > 0"),
        ("an API call given up", "cadre_api_failures_total > 0"),
        ("a resync", "cadre_resyncs_total > 0"),
    ):
        need = 2 if "both" in what else 1
        eventually(what, lambda expr=expr, need=need: prometheus.series_count(expr) >= need, 60)

    every_target = targets()
    assert len(every_target) >= 40, every_target
    empty: list[str] = []
    for board, panel, expr in every_target:
        promql = substitute(expr, cohort)
        answer = prometheus.query(promql)
        assert answer.get("status") == "success", (board, panel, promql, answer)
        if not answer["data"]["result"] and not any(m in promql for m in EMPTY_ALLOWED):
            empty.append(f"{board} / {panel}: {promql}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    # The team variable's own query: both teams are offered.
    teams_offered = prometheus.api("label/team/values", **{"match[]": "cadre_budget_limit"})
    assert {lender, borrower} <= set(teams_offered["data"])
