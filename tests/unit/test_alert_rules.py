"""The alert rules (manifests/monitoring/cadre-alerts.rules.yaml): their generated copies
are current, promtool accepts them and their tests pass, every alert is tested firing and
silent, and every metric they read is in docs/metrics.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre.tools.monitoring import alerts

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / alerts.SOURCE
TESTS = sorted((REPO / "tests" / "alerts").glob("*.test.yaml"))
METRICS_DOC = REPO / "docs" / "metrics.md"
ALERTS_DOC = REPO / "docs" / "alerts.md"

# Series the rules may read without Cadre exporting them.
NOT_CADRES = re.compile(r"^(up|ALERTS|DCGM_\w+)$")
_HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAMES = re.compile(r"(?<![\w:])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")  # not a function call
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
_TEMPLATE_QUERY = re.compile(r"`([^`]*)`")


def groups() -> list[dict[str, Any]]:
    return alerts.read_groups(SOURCE.read_text(encoding="utf-8"))


def alert_names() -> list[str]:
    return [str(rule["alert"]) for rule in alerts.alerts_of(groups())]


def promql_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (its functions, label names, label
    values and durations left out)."""
    for pattern in (_QUOTED, _MATCHERS, _RANGES, _LABEL_LISTS):
        expr = pattern.sub(" ", expr)
    return {name for name in _NAMES.findall(expr) if name.lower() not in _KEYWORDS}


def documented_metrics() -> set[str]:
    text = METRICS_DOC.read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(cadre_[a-z_]+)` \|", text, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (Debian and Ubuntu: apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the alert rules' tests")
        pytest.skip(reason)
    return found


def test_the_generated_files_are_current() -> None:
    assert alerts.main(["--root", str(REPO), "--check"]) == 0, (
        "run `.venv/bin/python -m cadre.tools.monitoring.alerts`"
    )


def test_the_check_finds_a_stale_copy_and_a_write_fixes_it(tmp_path: Path) -> None:
    (tmp_path / alerts.SOURCE).parent.mkdir(parents=True)
    shutil.copy(SOURCE, tmp_path / alerts.SOURCE)
    assert alerts.main(["--root", str(tmp_path), "--check"]) == 1  # nothing generated yet
    assert alerts.main(["--root", str(tmp_path)]) == 0
    assert alerts.main(["--root", str(tmp_path), "--check"]) == 0
    copy = tmp_path / alerts.CHART_COPY
    copy.write_text(copy.read_text(encoding="utf-8") + "# edited by hand\n", encoding="utf-8")
    assert alerts.main(["--root", str(tmp_path), "--check"]) == 1


def test_the_prometheus_rule_carries_the_sources_groups() -> None:
    rule = yaml.safe_load((REPO / alerts.PROMETHEUS_RULE).read_text(encoding="utf-8"))
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert (rule["metadata"]["name"], rule["metadata"]["namespace"]) == (
        "cadre-alerts",
        "cadre-system",
    )
    assert rule["metadata"]["labels"] == {
        "app.kubernetes.io/name": "cadre",
        "app.kubernetes.io/part-of": "cadre",
    }
    assert rule["spec"]["groups"] == groups()
    chart_copy = yaml.safe_load((REPO / alerts.CHART_COPY).read_text(encoding="utf-8"))
    assert chart_copy == yaml.safe_load(SOURCE.read_text(encoding="utf-8"))


def test_an_alert_without_severity_or_runbook_is_refused() -> None:
    source = SOURCE.read_text(encoding="utf-8")
    broken = source.replace("severity: critical", "priority: critical", 1)
    with pytest.raises(alerts.RulesError, match="no severity label"):
        alerts.read_groups(broken)
    broken = re.sub(r"\n\s+runbook_url: \S+", "", source, count=1)
    with pytest.raises(alerts.RulesError, match="no runbook_url annotation"):
        alerts.read_groups(broken)


def test_promtool_checks_the_rules(promtool: str, tmp_path: Path) -> None:
    spec = yaml.safe_load((REPO / alerts.PROMETHEUS_RULE).read_text(encoding="utf-8"))["spec"]
    as_rules_file = tmp_path / "from-prometheusrule.rules.yaml"
    as_rules_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
    for path in (SOURCE, REPO / alerts.CHART_COPY, as_rules_file):
        done = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("test_file", TESTS, ids=[p.name for p in TESTS])
def test_promtool_runs_the_alert_tests(promtool: str, test_file: Path) -> None:
    done = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test") or ():
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = set(alert_names())
    assert names, "no alert in the rules file"
    assert not names - firing, f"never shown firing: {sorted(names - firing)}"
    assert not names - silent, f"never shown silent: {sorted(names - silent)}"
    assert (firing | silent) <= names, f"tests of unknown alerts: {(firing | silent) - names}"


def test_every_metric_the_rules_read_is_in_the_catalogue() -> None:
    recorded = {str(rule["record"]) for g in groups() for rule in g["rules"] if "record" in rule}
    read: set[str] = set()
    for group in groups():
        for rule in group["rules"]:
            read |= promql_names(str(rule["expr"]))
            for template in (rule.get("annotations") or {}).values():
                for query in _TEMPLATE_QUERY.findall(str(template)):
                    read |= promql_names(query)
    assert "cadre_budget_state" in read and "cadre_team_workloads" in read  # the parser works
    documented = documented_metrics()
    missing = {
        name
        for name in read - recorded
        if not NOT_CADRES.match(name)
        and name not in documented
        and _HISTOGRAM_SUFFIX.sub("", name) not in documented  # a histogram's series
    }
    assert not missing, f"read by the rules, not in docs/metrics.md: {sorted(missing)}"


def test_the_promql_name_parser_skips_functions_labels_and_durations() -> None:
    expr = (
        'sum by (queue) (rate(x_total{queue="a b", job=~".*"}[5m])) * 60 > 3 '
        "and on (team) max_over_time(y:z:w[1h]) unless absent(up) or vector(1e3)"
    )
    assert promql_names(expr) == {"x_total", "y:z:w", "up"}


def test_every_runbook_url_is_a_heading_of_docs_alerts() -> None:
    text = ALERTS_DOC.read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 _-]", "", title.strip().lower()).replace(" ", "-")
        for title in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    }
    for rule in alerts.alerts_of(groups()):
        url = str(rule["annotations"]["runbook_url"])
        base, _, anchor = url.partition("#")
        assert base.endswith("/docs/alerts.md"), url
        assert anchor == str(rule["alert"]).lower() and anchor in anchors, url
