"""The generated Grafana dashboards: committed files up to date, queries on every panel,
only catalogued metrics, stable uids, unique titles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre.tools.monitoring import dashboards

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "docs" / "metrics.md"
UIDS = {
    "cadre-team-spend.json": "cadre-team-spend",
    "cadre-gpu-fleet.json": "cadre-gpu-fleet",
    "cadre-queue.json": "cadre-queue",
    "cadre-operator-health.json": "cadre-operator-health",
}
"""Links and bookmarks point at these: a change breaks them."""

# Words of PromQL that are not metric names (functions, aggregations, operators).
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "bool", "rate", "increase", "irate", "delta",
    "histogram_quantile", "clamp_min", "clamp_max", "vector", "scalar", "abs", "topk",
    "bottomk", "time", "label_values",
}  # fmt: skip
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def catalogued_metrics() -> dict[str, str]:
    """Metric name -> type, from the table of docs/metrics.md."""
    rows = re.findall(r"^\| `(cadre_[a-z0-9_]+)` \| (\w+) \|", CATALOGUE.read_text(), re.M)
    return dict(rows)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: what is left once strings, label matchers,
    ranges, grouping clauses, numbers and PromQL's own words are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {w for w in words if w not in PROMQL_WORDS}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels") or [])  # inside rows
    return out


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    return dashboards.build_all()


def test_committed_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cadre.tools.monitoring.dashboards", "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_check_finds_drift(tmp_path: Path) -> None:
    files = dashboards.rendered_files(tmp_path / "chart", tmp_path / "grafana-dashboards.yaml")
    assert len(files) == len(dashboards.DASHBOARDS) + 1
    assert dashboards.stale_files(files) == list(files)  # nothing written yet
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    assert dashboards.stale_files(files) == []
    edited = next(iter(files))
    edited.write_text(edited.read_text().replace('"title"', '"Title"', 1))
    assert dashboards.stale_files(files) == [edited]


def test_uids_are_stable_and_titles_unique(boards: dict[str, dict[str, Any]]) -> None:
    assert {name: b["uid"] for name, b in boards.items()} == UIDS
    titles = [b["title"] for b in boards.values()]
    assert len(set(titles)) == len(titles)
    for name, board in boards.items():
        panel_titles = [p["title"] for p in panels(board)]
        duplicates = {t for t in panel_titles if panel_titles.count(t) > 1}
        assert not duplicates, (name, duplicates)
        ids = [p["id"] for p in panels(board)]
        assert len(set(ids)) == len(ids) and 0 not in ids, name


def test_every_panel_has_a_query(boards: dict[str, dict[str, Any]]) -> None:
    for name, board in boards.items():
        for panel in panels(board):
            if panel["type"] in ("text", "row"):
                continue  # words only
            targets = panel.get("targets") or []
            assert targets, (name, panel["title"])
            for target in targets:
                assert target.get("expr", "").strip(), (name, panel["title"], target)
                assert target["refId"], (name, panel["title"], target)
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_queries_read_only_catalogued_metrics(boards: dict[str, dict[str, Any]]) -> None:
    catalogue = catalogued_metrics()
    assert len(catalogue) > 30  # the table was read
    used: set[str] = set()
    for name, board in boards.items():
        for panel in panels(board):
            for target in panel.get("targets") or []:
                for metric in metric_names(target["expr"]):
                    base = metric
                    for suffix in HISTOGRAM_SUFFIXES:
                        if metric.endswith(suffix) and catalogue.get(metric[: -len(suffix)]):
                            base = metric[: -len(suffix)]
                            assert catalogue[base] == "histogram", (name, metric)
                    assert base == "up" or base in catalogue, (name, panel["title"], metric)
                    used.add(base)
    # The brief's centre pieces are all on some panel.
    for metric in (
        "cadre_cost_total",
        "cadre_flavor_capacity_gpus",
        "cadre_flavor_allocated_gpus",
        "cadre_time_to_admission_seconds",
        "cadre_admission_decisions_total",
        "cadre_leader",
        "up",
    ):
        assert metric in used


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.9, sum by (team, le) (rate(cadre_time_to_admission_seconds_bucket"
        '{team=~"$team", x="a{b}"}[$__rate_interval]))) / on (team) group_left up'
    )
    assert metric_names(expr) == {"cadre_time_to_admission_seconds_bucket", "up"}


def test_variables(boards: dict[str, dict[str, Any]]) -> None:
    for board in boards.values():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        exprs = " ".join(t["expr"] for p in panels(board) for t in p.get("targets") or [])
        if "$team" in exprs:
            assert variables["team"]["query"] == "label_values(cadre_budget_limit, team)"
        if "$job" in exprs:
            assert variables["job"]["query"] == "label_values(cadre_leader, job)"


def test_configmaps_carry_the_sidecar_label_and_the_json() -> None:
    docs = list(yaml.safe_load_all(dashboards.MANIFEST.read_text()))
    assert len(docs) == len(dashboards.DASHBOARDS)
    for doc, board in zip(docs, dashboards.DASHBOARDS, strict=True):
        assert doc["kind"] == "ConfigMap"
        assert doc["metadata"]["namespace"] == "cadre-system"
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert doc["data"] == {board.filename: dashboards.dashboard_json(board)}
