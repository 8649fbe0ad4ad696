"""Cadre's Grafana dashboards, generated from typed code (grafana-foundation-sdk).

`python -m cadre.tools.monitoring.dashboards` writes one JSON file per dashboard into
charts/cadre/files/dashboards/ (the Helm chart wraps them in ConfigMaps) and
manifests/monitoring/grafana-dashboards.yaml (the same as ConfigMaps for Grafana's
dashboard sidecar, for installs without Helm); `--check` writes nothing and exits 1 when
a committed file differs from what the code generates.

Every query reads metrics of docs/metrics.md only (and Prometheus' `up`). Gauges are taken
with `max by (...)`: a standby replica exports the leader-only gauges as 0 or not at all,
so the leader's value wins and a two-replica install shows no doubled series.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import bargauge, gauge, prometheus, stat, table, text
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import timeseries as timeseries_builder
from grafana_foundation_sdk.cog import builder as cog
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import BigValueTextMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

__all__ = [
    "CHART_DIR",
    "DASHBOARDS",
    "MANIFEST",
    "build_all",
    "dashboard_json",
    "main",
    "rendered_files",
    "stale_files",
]

REPO_ROOT = Path(__file__).resolve().parents[4]
CHART_DIR = REPO_ROOT / "charts" / "cadre" / "files" / "dashboards"
MANIFEST = REPO_ROOT / "manifests" / "monitoring" / "grafana-dashboards.yaml"
NAMESPACE = "cadre-system"
SIDECAR_LABEL = {"grafana_dashboard": "1"}
"""The label kube-prometheus-stack's Grafana sidecar looks for (its default)."""
TAGS = ["cadre"]

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
TEAM = 'team=~"$team"'
JOB = 'job=~"$job"'
RATE = "$__rate_interval"

AnyPanel = cog.Builder[model.Panel]


# -- building blocks ------------------------------------------------------------------------
def query(expr: str, legend: str = "") -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id("A")
    return q.legend_format(legend) if legend else q


def instant(expr: str) -> prometheus.Dataquery:
    """A table's query: one value per series, now (or over the time range)."""
    return prometheus.Dataquery().expr(expr).ref_id("A").instant().format(PromQueryFormat.TABLE)


def _targets(panel: Any, queries: Sequence[prometheus.Dataquery]) -> Any:
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(q.ref_id(ref))
    return panel


def timeseries(
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    unit: str = "short",
    span: int = 12,
    height: int = 8,
) -> AnyPanel:
    panel = (
        timeseries_builder.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(height)
        .fill_opacity(10)
    )
    with_queries: AnyPanel = _targets(panel, queries)
    return with_queries


def single_stat(
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    unit: str = "short",
    span: int = 6,
    text_mode: BigValueTextMode = BigValueTextMode.AUTO,
) -> AnyPanel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(5)
        .text_mode(text_mode)
    )
    with_queries: AnyPanel = _targets(panel, queries)
    return with_queries


def thresholds(*steps: tuple[float | None, str]) -> builder.ThresholdsConfig:
    return (
        builder.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def ratio_gauge(title: str, description: str, expr: str, legend: str, span: int = 6) -> AnyPanel:
    return (
        gauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("percentunit")
        .min(0)
        .max(1)
        .span(span)
        .height(5)
        .thresholds(thresholds((None, "green"), (0.8, "orange"), (1.0, "red")))
        .with_target(query(expr, legend))
    )


def ratio_bars(title: str, description: str, expr: str, legend: str, span: int) -> AnyPanel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("percentunit")
        .min(0)
        .max(1)
        .span(span)
        .height(8)
        .thresholds(thresholds((None, "green"), (0.8, "orange"), (0.95, "red")))
        .with_target(query(expr, legend))
    )


def now_table(
    title: str, description: str, queries: Sequence[prometheus.Dataquery], span: int = 24
) -> AnyPanel:
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(span)
        .height(8)
        # One row per label set, a column per query (instead of a table per query).
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    )
    with_queries: AnyPanel = _targets(panel, queries)
    return with_queries


def note(title: str, content: str, span: int = 24, height: int = 4) -> AnyPanel:
    return text.Panel().title(title).content(content).span(span).height(height)


def quantiles(metric: str, matchers: str, by: str = "") -> list[prometheus.Dataquery]:
    """p50, p90 and p99 of a histogram over the selected series."""
    group = f"{by}, le" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [
        query(
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{matchers}}}[{RATE}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    ]


def datasource_variable() -> builder.DatasourceVariable:
    return builder.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(name: str, label: str, source: str, all_teams: bool) -> builder.QueryVariable:
    variable = (
        builder.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({source}, {name})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
    )
    # "All" as a regex: it also matches teams that appear after the dashboard loaded.
    return variable.all_value(".*") if all_teams else variable


@dataclass(frozen=True)
class Dashboard:
    name: str
    """The file is cadre-<name>.json and the uid cadre-<name>: both stay put."""
    title: str
    description: str
    variables: tuple[str, ...]
    """Besides datasource: "team" and/or "job"."""
    panels: Callable[[], list[AnyPanel]]

    @property
    def uid(self) -> str:
        return f"cadre-{self.name}"

    @property
    def filename(self) -> str:
        return f"cadre-{self.name}.json"

    def build(self) -> model.Dashboard:
        board = (
            builder.Dashboard(self.title)
            .uid(self.uid)
            .description(self.description)
            .tags(TAGS)
            .editable()
            .time("now-6h", "now")
            .refresh("30s")
            .timezone("browser")
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .with_variable(datasource_variable())
        )
        if "team" in self.variables:
            board = board.with_variable(
                label_variable("team", "Team", "cadre_budget_limit", all_teams=True)
            )
        if "job" in self.variables:
            board = board.with_variable(
                label_variable("job", "Scrape job", "cadre_leader", all_teams=False)
            )
        for panel in self.panels():
            board = board.with_panel(panel)
        built = board.build()
        # Grafana wants unique panel ids; numbered in layout order, so they are stable.
        for number, built_panel in enumerate(built.panels or [], start=1):
            built_panel.id_val = number
        return built


# -- 1. team spend and budget ---------------------------------------------------------------
def team_spend_panels() -> list[AnyPanel]:
    cost = f"cadre_cost_total{{{TEAM}}}"
    return [
        single_stat(
            "Spent this period",
            "Money spent in the current budget period, in the price list's currency.",
            [query(f'max by (team) (cadre_budget_spend{{{TEAM}, period="current"}})', "{{team}}")],
        ),
        ratio_gauge(
            "Spent of limit",
            "Spent over limit (money or GPU-hours, whichever runs out first).",
            f"max by (team) (cadre_budget_spend_ratio{{{TEAM}}})",
            "{{team}}",
        ),
        single_stat(
            "Budget state",
            "The budget's spend state (cadre_budget_state is 1 for the current one).",
            [
                query(
                    f"max by (team, state) (cadre_budget_state{{{TEAM}}}) == 1",
                    "{{team}}: {{state}}",
                )
            ],
            text_mode=BigValueTextMode.NAME,
        ),
        single_stat(
            "Spent last period",
            "Money spent in the previous budget period.",
            [query(f'max by (team) (cadre_budget_spend{{{TEAM}, period="previous"}})', "{{team}}")],
        ),
        timeseries(
            "Spent, forecast and limit",
            "Spent in the current period, the expected spend at its end, and the limit.",
            [
                query(
                    f'max by (team) (cadre_budget_spend{{{TEAM}, period="current"}})',
                    "{{team}} spent",
                ),
                query(f"max by (team) (cadre_budget_forecast{{{TEAM}}})", "{{team}} forecast"),
                query(f"max by (team) (cadre_budget_limit{{{TEAM}}})", "{{team}} limit"),
            ],
        ),
        timeseries(
            "Burn rate (cost per hour)",
            "How fast each team spends: the rate of cadre_cost_total, per hour.",
            [query(f"sum by (team) (rate({cost}[{RATE}])) * 3600", "{{team}}")],
        ),
        timeseries(
            "GPU-hours used and limit",
            "GPU-hours used in the current period, and the period's GPU-hour limit.",
            [
                query(
                    f'max by (team) (cadre_budget_gpu_hours{{{TEAM}, period="current"}})',
                    "{{team}} used",
                ),
                query(f"max by (team) (cadre_budget_gpu_hours_limit{{{TEAM}}})", "{{team}} limit"),
            ],
        ),
        timeseries(
            "Cost per hour by flavour",
            "The selected teams' spending rate split by GPU flavour.",
            [query(f"sum by (flavor) (rate({cost}[{RATE}])) * 3600", "{{flavor}}")],
        ),
        now_table(
            "Cost by team, namespace and flavour (time range)",
            "What each namespace spent on each flavour within the dashboard's time range.",
            [instant(f"sum by (team, namespace, flavor) (increase({cost}[$__range]))")],
            span=12,
        ),
        note(
            "Cost per workload",
            "Cost per TrainingJob and ModelDeployment is **not a metric** (a label per "
            "workload would not be bounded): it is in each object's status, "
            "`status.cost` and `status.gpuHours`.\n\n"
            "```\nkubectl get trainingjobs -A\nkubectl get modeldeployments -A\n```\n\n"
            "`cadre_cost_total` counts while an operator process runs; the budget "
            "figures above come from the budgets' ledgers and survive restarts.",
            span=12,
            height=8,
        ),
    ]


# -- 2. GPU fleet ---------------------------------------------------------------------------
def gpu_fleet_panels() -> list[AnyPanel]:
    def by_team(metric: str) -> str:
        return f"max by (team, flavor) ({metric}{{{TEAM}}})"

    def team_total(metric: str) -> str:
        return f"sum by (team) ({by_team(metric)})"

    return [
        ratio_bars(
            "GPU allocation by flavour",
            "GPUs admitted to teams over the GPUs on schedulable nodes, per flavour.",
            "max by (flavor) (cadre_flavor_allocated_gpus)"
            " / (max by (flavor) (cadre_flavor_capacity_gpus) > 0)",
            "{{flavor}}",
            span=8,
        ),
        timeseries(
            "GPUs: capacity and allocated by flavour",
            "Capacity: GPUs on schedulable nodes; allocated: GPUs admitted after the last pass.",
            [
                query("max by (flavor) (cadre_flavor_capacity_gpus)", "{{flavor}} capacity"),
                query("max by (flavor) (cadre_flavor_allocated_gpus)", "{{flavor}} allocated"),
            ],
            span=16,
        ),
        timeseries(
            "GPUs in use by team and flavour",
            "GPUs admitted to each team now.",
            [query(by_team("cadre_team_usage_gpus"), "{{team}} {{flavor}}")],
        ),
        timeseries(
            "GPUs borrowed by team and flavour",
            "Admitted GPUs beyond the team's guarantee (lent by its cohort; reclaimed when "
            "the lender needs them).",
            [query(by_team("cadre_team_borrowed_gpus"), "{{team}} {{flavor}}")],
        ),
        now_table(
            "GPUs now: in use, guaranteed, borrowed",
            "Per team and flavour: admitted GPUs, the guarantee (quota) and what is borrowed.",
            [
                instant(by_team("cadre_team_usage_gpus")),
                instant(by_team("cadre_team_quota_gpus")),
                instant(by_team("cadre_team_borrowed_gpus")),
            ],
        ),
        timeseries(
            "CPU cores: in use, guaranteed, borrowed by team",
            "CPU cores admitted, guaranteed and borrowed, summed over flavours.",
            [
                query(team_total("cadre_team_usage_cpu_cores"), "{{team}} in use"),
                query(team_total("cadre_team_quota_cpu_cores"), "{{team}} guaranteed"),
                query(team_total("cadre_team_borrowed_cpu_cores"), "{{team}} borrowed"),
            ],
        ),
        timeseries(
            "Memory: in use, guaranteed, borrowed by team",
            "Memory admitted, guaranteed and borrowed, summed over flavours.",
            [
                query(team_total("cadre_team_usage_memory_bytes"), "{{team}} in use"),
                query(team_total("cadre_team_quota_memory_bytes"), "{{team}} guaranteed"),
                query(team_total("cadre_team_borrowed_memory_bytes"), "{{team}} borrowed"),
            ],
            unit="bytes",
        ),
    ]


# -- 3. queue -------------------------------------------------------------------------------
def queue_panels() -> list[AnyPanel]:
    decisions = "cadre_admission_decisions_total"
    return [
        single_stat(
            "Queued now",
            "Workloads of the selected teams waiting for admission.",
            [query(f'sum(max by (team) (cadre_team_workloads{{{TEAM}, state="queued"}}))')],
        ),
        single_stat(
            "Waiting after the last pass",
            "Workloads (every team) the last admission pass left waiting.",
            [query("max(cadre_admission_pending_workloads)")],
        ),
        single_stat(
            "Admissions (time range)",
            "Gangs admitted within the dashboard's time range.",
            [query(f'sum(increase({decisions}{{decision="admit"}}[$__range]))')],
        ),
        single_stat(
            "Preemptions (time range)",
            "Workloads preempted (suspended for higher priority or a lender's reclaim).",
            [query(f'sum(increase({decisions}{{decision="preempt"}}[$__range]))')],
        ),
        timeseries(
            "Queued workloads by team",
            'cadre_team_workloads{state="queued"}: the team\'s queue length.',
            [query(f'max by (team) (cadre_team_workloads{{{TEAM}, state="queued"}})', "{{team}}")],
        ),
        timeseries(
            "Admitted workloads by team",
            "Workloads holding an admission (running or starting).",
            [
                query(
                    f'max by (team) (cadre_team_workloads{{{TEAM}, state="admitted"}})', "{{team}}"
                )
            ],
        ),
        timeseries(
            "Time to admission (selected teams)",
            "From a workload's creation to its gang's admission: p50, p90 and p99.",
            quantiles("cadre_time_to_admission_seconds", TEAM),
            unit="s",
        ),
        timeseries(
            "Time to admission p90 by team",
            "The 90th percentile of the wait per team.",
            [
                query(
                    "histogram_quantile(0.9, sum by (team, le) "
                    f"(rate(cadre_time_to_admission_seconds_bucket{{{TEAM}}}[{RATE}])))",
                    "{{team}}",
                )
            ],
            unit="s",
        ),
        timeseries(
            "Admission decisions per second",
            "Decisions applied, by kind: admit, preempt.",
            [query(f"sum by (decision) (rate({decisions}[{RATE}]))", "{{decision}}")],
            unit="ops",
        ),
        timeseries(
            "Preemptions and held-back passes per second",
            "Preemptions applied; passes whose admissions waited because a victim's "
            "suspension failed.",
            [
                query(f'sum(rate({decisions}{{decision="preempt"}}[{RATE}]))', "preemptions"),
                query(f"sum(rate(cadre_admission_passes_held_back_total[{RATE}]))", "held back"),
            ],
            unit="ops",
        ),
    ]


# -- 4. operator health ---------------------------------------------------------------------
def operator_health_panels() -> list[AnyPanel]:
    requests = f"cadre_api_requests_total{{{JOB}}}"
    errors = f'cadre_api_requests_total{{{JOB}, code!~"2.."}}'
    return [
        single_stat(
            "Replicas up",
            "Operator replicas Prometheus scrapes successfully.",
            [query(f"sum(up{{{JOB}}})")],
        ),
        (
            stat.Panel()
            .title("Leaders")
            .description("Replicas holding the leader's Lease: 1 is healthy.")
            .datasource(DATASOURCE)
            .span(6)
            .height(5)
            .thresholds(thresholds((None, "red"), (1, "green"), (2, "red")))
            .with_target(query(f"sum(max by (instance) (cadre_leader{{{JOB}}}))"))
        ),
        single_stat(
            "API error ratio",
            "Share of the operator's API requests answered other than 2xx (or timed out).",
            [query(f"sum(rate({errors}[{RATE}])) / sum(rate({requests}[{RATE}]))")],
            unit="percentunit",
        ),
        single_stat(
            "Work queue depth",
            "Keys waiting in the operator's work queues.",
            [query(f"sum(cadre_workqueue_depth{{{JOB}}})")],
        ),
        timeseries(
            "Replicas: up and leader",
            "Per replica: scraped (up) and holding the Lease (leader).",
            [
                query(f"max by (instance) (up{{{JOB}}})", "{{instance}} up"),
                query(f"max by (instance) (cadre_leader{{{JOB}}})", "{{instance}} leader"),
            ],
        ),
        timeseries(
            "API requests per second by verb and code",
            "Every attempt the operator sends to the Kubernetes API (not Kopf's watches).",
            [query(f"sum by (verb, code) (rate({requests}[{RATE}]))", "{{verb}} {{code}}")],
            unit="reqps",
        ),
        timeseries(
            "API errors per second by code and resource",
            "Attempts answered other than 2xx, or that timed out or failed to connect.",
            [
                query(
                    f"sum by (code, resource) (rate({errors}[{RATE}]))",
                    "{{code}} {{resource}}",
                )
            ],
            unit="reqps",
        ),
        timeseries(
            "API call latency (retries included)",
            "Time of one API call, its retries included: p50, p90, p99.",
            quantiles("cadre_api_request_duration_seconds", JOB),
            unit="s",
        ),
        timeseries(
            "API retries and give-ups per second",
            "Attempts retried, and calls given up after their retries.",
            [
                query(
                    f"sum by (verb, resource) (rate(cadre_api_retries_total{{{JOB}}}[{RATE}]))",
                    "retried {{verb}} {{resource}}",
                ),
                query(
                    f"sum by (verb, resource) (rate(cadre_api_failures_total{{{JOB}}}[{RATE}]))",
                    "gave up {{verb}} {{resource}}",
                ),
            ],
            unit="ops",
        ),
        timeseries(
            "Reconcile retries per second by queue",
            "Reconciles that failed and were queued again with backoff.",
            [
                query(
                    f"sum by (queue) (rate(cadre_workqueue_retries_total{{{JOB}}}[{RATE}]))",
                    "{{queue}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Work queue depth by queue",
            "Keys waiting in each work queue.",
            [query(f"max by (queue) (cadre_workqueue_depth{{{JOB}}})", "{{queue}}")],
        ),
        timeseries(
            "Admission pass duration",
            "One admission pass (snapshot and scheduling, without API writes): p50, p90, p99.",
            quantiles("cadre_admission_pass_seconds", JOB),
            unit="s",
        ),
        timeseries(
            "Garbage collector time by generation",
            "Share of each second that Python's collector held the operator (the event loop "
            "waits through it), by generation; 2 is a full collection, which scans the cache.",
            [
                query(
                    f"sum by (generation) (rate(cadre_gc_pause_seconds_sum{{{JOB}}}[{RATE}]))",
                    "generation {{generation}}",
                )
            ],
            unit="percentunit",
        ),
        timeseries(
            "Cache objects by table",
            "Entries in each table of the operator's cache (a leak shows here).",
            [query(f"max by (table) (cadre_cache_objects{{{JOB}}})", "{{table}}")],
        ),
        timeseries(
            "Resyncs and dropped objects per second",
            "Relists of the cluster, and objects a relist found gone (missed DELETED events).",
            [
                query(f"sum(rate(cadre_resyncs_total{{{JOB}}}[{RATE}]))", "resyncs"),
                query(
                    f"sum by (kind) (rate(cadre_resync_dropped_total{{{JOB}}}[{RATE}]))",
                    "dropped {{kind}}",
                ),
            ],
            unit="ops",
        ),
        timeseries(
            "Accounting and self-healing per second",
            "Budget refresh rounds, pods settled into ledgers, and objects repaired "
            "(unlabelled Jobs and pods, Jobs unsuspended by someone else).",
            [
                query(
                    f"sum(rate(cadre_budget_refreshes_total{{{JOB}}}[{RATE}]))", "budget refreshes"
                ),
                query(f"sum(rate(cadre_pods_settled_total{{{JOB}}}[{RATE}]))", "pods settled"),
                query(
                    f"sum(rate(cadre_jobs_unlabelled_total{{{JOB}}}[{RATE}]))"
                    f" + sum(rate(cadre_pods_unlabelled_total{{{JOB}}}[{RATE}]))"
                    f" + sum(rate(cadre_unadmitted_jobs_suspended_total{{{JOB}}}[{RATE}]))",
                    "repairs",
                ),
            ],
            unit="ops",
            span=24,
        ),
    ]


DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard(
        "team-spend",
        "Cadre / Team spend and budget",
        "Per team: money spent against the budget, forecast, burn rate and cost by "
        "namespace and flavour.",
        ("team",),
        team_spend_panels,
    ),
    Dashboard(
        "gpu-fleet",
        "Cadre / GPU fleet",
        "GPU capacity and allocation per flavour; usage, guarantee and borrowing per team.",
        ("team",),
        gpu_fleet_panels,
    ),
    Dashboard(
        "queue",
        "Cadre / Queue",
        "Workloads waiting per team, time to admission, admission decisions and preemptions.",
        ("team",),
        queue_panels,
    ),
    Dashboard(
        "operator-health",
        "Cadre / Operator health",
        "Replicas and leader, Kubernetes API traffic, errors and latency, work queues, "
        "admission passes, garbage collector, cache and resyncs.",
        ("job",),
        operator_health_panels,
    ),
)


# -- rendering ------------------------------------------------------------------------------
def dashboard_json(board: Dashboard) -> str:
    return json.dumps(board.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def build_all() -> dict[str, dict[str, Any]]:
    """Every dashboard as Grafana's JSON model, by file name."""
    return {b.filename: json.loads(dashboard_json(b)) for b in DASHBOARDS}


class _BlockStyleDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks: the ConfigMaps' JSON stays readable in a diff."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def configmaps_yaml(rendered: dict[str, str]) -> str:
    docs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"cadre-dashboard-{board.name}",
                "namespace": NAMESPACE,
                "labels": {**SIDECAR_LABEL, "app.kubernetes.io/part-of": "cadre"},
                # Read by the sidecar when its folderAnnotation is set to grafana_folder.
                "annotations": {"grafana_folder": "Cadre"},
            },
            "data": {board.filename: rendered[board.filename]},
        }
        for board in DASHBOARDS
    ]
    header = (
        "# Generated by `python -m cadre.tools.monitoring.dashboards`; do not edit.\n"
        "# Cadre's Grafana dashboards for Grafana's dashboard sidecar (label grafana_dashboard).\n"
    )
    body = yaml.dump_all(docs, Dumper=_BlockStyleDumper, sort_keys=False, width=1000)
    return header + body


def rendered_files(chart_dir: Path = CHART_DIR, manifest: Path = MANIFEST) -> dict[Path, str]:
    """Every generated file and its content."""
    rendered = {b.filename: dashboard_json(b) for b in DASHBOARDS}
    files = {chart_dir / name: content for name, content in rendered.items()}
    files[manifest] = configmaps_yaml(rendered)
    return files


def stale_files(files: dict[Path, str]) -> list[Path]:
    """The files missing or differing from what the code generates."""
    return [
        path for path, content in files.items() if not path.exists() or path.read_text() != content
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cadre.tools.monitoring.dashboards", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )
    args = parser.parse_args(argv)
    files = rendered_files()
    stale = stale_files(files)
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(REPO_ROOT)}", file=sys.stderr)
        if stale:
            print("run: .venv/bin/python -m cadre.tools.monitoring.dashboards", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
