"""Writes the alert rules' generated copies from their one source.

The source is manifests/monitoring/cadre-alerts.rules.yaml, a plain Prometheus rules file
written by hand (comments and all). From it come:

- manifests/monitoring/prometheusrule.yaml: the same groups in a PrometheusRule, for the
  Prometheus Operator;
- charts/cadre/files/cadre-alerts.rules.yaml: the Helm chart's copy (`.Files.Get`).

`python -m cadre.tools.monitoring.alerts` writes them; `--check` only compares, and exits
1 when a committed file differs (CI and tests/unit/test_alert_rules.py run it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

SOURCE: Final = Path("manifests/monitoring/cadre-alerts.rules.yaml")
PROMETHEUS_RULE: Final = Path("manifests/monitoring/prometheusrule.yaml")
CHART_COPY: Final = Path("charts/cadre/files/cadre-alerts.rules.yaml")

COMMAND: Final = "python -m cadre.tools.monitoring.alerts"
HEADER: Final = f"# Generated from {SOURCE} by `{COMMAND}`. Do not edit by hand.\n"
NAME_PREFIX: Final = "Cadre"
REQUIRED_ANNOTATIONS: Final = ("summary", "description", "runbook_url")
LABELS: Final = {"app.kubernetes.io/name": "cadre", "app.kubernetes.io/part-of": "cadre"}


class RulesError(ValueError):
    """The source breaks a convention every Cadre alert keeps."""


def alerts_of(groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group.get("rules") or () if "alert" in rule]


def read_groups(text: str) -> list[dict[str, Any]]:
    """The source's groups, after checking the conventions of docs/alerts.md."""
    document = yaml.safe_load(text)
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        raise RulesError(f"{SOURCE}: expected a rules file, a mapping with a `groups` list")
    groups: list[dict[str, Any]] = document["groups"]
    problems: list[str] = []
    for group in groups:
        if not str(group.get("name", "")).startswith(NAME_PREFIX):
            problems.append(f"group {group.get('name')!r}: its name must start with Cadre")
    for rule in alerts_of(groups):
        name = str(rule["alert"])
        if not name.startswith(NAME_PREFIX):
            problems.append(f"alert {name}: its name must start with Cadre")
        if "severity" not in (rule.get("labels") or {}):
            problems.append(f"alert {name}: no severity label")
        annotations = rule.get("annotations") or {}
        problems += [
            f"alert {name}: no {key} annotation"
            for key in REQUIRED_ANNOTATIONS
            if not annotations.get(key)
        ]
    if problems:
        raise RulesError(f"{SOURCE}: " + "; ".join(problems))
    return groups


class _BlockStyleDumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL expressions) as `|` blocks, as in the source."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def prometheus_rule(groups: list[dict[str, Any]]) -> str:
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "cadre-alerts", "namespace": "cadre-system", "labels": LABELS},
        "spec": {"groups": groups},
    }
    body = yaml.dump(
        document, Dumper=_BlockStyleDumper, sort_keys=False, width=100, allow_unicode=True
    )
    return HEADER + body


def render(source_text: str) -> dict[Path, str]:
    """Each generated file (relative to the repository) and its text."""
    groups = read_groups(source_text)
    return {PROMETHEUS_RULE: prometheus_rule(groups), CHART_COPY: HEADER + source_text}


def stale(root: Path) -> list[Path]:
    """Generated files that are missing or differ from what the source makes."""
    wanted = render((root / SOURCE).read_text(encoding="utf-8"))
    return [
        path
        for path, text in wanted.items()
        if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text
    ]


def write(root: Path) -> list[Path]:
    written = []
    for path, text in render((root / SOURCE).read_text(encoding="utf-8")).items():
        target = root / path
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path.cwd(), help="the repository (default: here)"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a generated file is stale"
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    try:
        if args.check:
            outdated = stale(root)
            for path in outdated:
                print(f"{path} is stale: run `{COMMAND}`", file=sys.stderr)
            return 1 if outdated else 0
        for path in write(root):
            print(f"wrote {path}")
    except (OSError, RulesError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
