"""docs/metrics.md against what the operator process registers: every metric, its type
and its labels, and Prometheus' naming rules with bounded labels."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

import cadre.controller.runtime.context
import cadre.controller.runtime.main  # noqa: F401
from cadre.controller.team_metrics import FAMILIES

CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>cadre_[a-z_]+)` \| (?P<type>\w+) \| (?P<labels>[^|]+) \|")
BOUNDED_LABELS = frozenset(
    {
        "team",
        "namespace",
        "flavor",
        "state",
        "period",
        "decision",
        "kind",
        "table",
        "queue",
        "verb",
        "resource",
        "code",
        "generation",
    }
)


def registered() -> dict[str, tuple[str, frozenset[str]]]:
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for collector in list(REGISTRY._collector_to_names):
        name: Any = getattr(collector, "_name", None)
        if not isinstance(name, str) or not name.startswith("cadre"):
            continue
        kind = str(collector._type)  # type: ignore[attr-defined]
        shown = name + "_total" if kind == "counter" else name
        out[shown] = (kind, frozenset(collector._labelnames))  # type: ignore[attr-defined]
    for family in FAMILIES:  # the per-team families, served after the registry
        out[family.sample_name] = (family.kind, frozenset(family.labelnames))
    return out


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for line in CATALOGUE.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            raw = match["labels"].strip()
            labels = frozenset() if raw == "—" else frozenset(x.strip() for x in raw.split(","))
            out[match["name"]] = (match["type"], labels)
    return out


def test_the_catalogue_is_what_the_process_exports() -> None:
    exported, written = registered(), documented()
    assert sorted(exported) == sorted(written), (
        f"not in docs/metrics.md: {sorted(set(exported) - set(written))}; "
        f"documented but not exported: {sorted(set(written) - set(exported))}"
    )
    for name, (kind, labels) in exported.items():
        assert written[name] == (kind, labels), name


def test_names_follow_prometheus_rules_and_labels_are_bounded() -> None:
    for name, (kind, labels) in registered().items():
        assert name.startswith("cadre_"), name
        assert (kind == "counter") == name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith(("_seconds", "_bytes")), name
        assert labels <= BOUNDED_LABELS, (name, labels - BOUNDED_LABELS)


def test_admission_decisions_are_exported_before_the_first_one() -> None:
    # increase() over a counter series born at 1 is empty: the dashboard's preemption
    # panels showed no data after the first preemption (the runtime, imported above,
    # imports the admission loop).
    for decision in ("admit", "preempt", "requeue"):
        value = REGISTRY.get_sample_value("cadre_admission_decisions_total", {"decision": decision})
        assert value is not None, decision
