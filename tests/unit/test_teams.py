"""Which ResourceBudget a namespace belongs to (cadre.core.budget.teams, pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre.core.budget.teams import BudgetScope, budget_scope, resolve_team, selector_matches

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def budget(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


def scopes(*budgets: dict[str, Any]) -> list[BudgetScope]:
    return [budget_scope(b) for b in budgets]


def test_listed_namespace() -> None:
    s = scopes(budget("vision", namespaces=["vision-research", "vision-prod"]))
    assert resolve_team("vision-prod", {}, s).team == "vision"
    assert resolve_team("other", {}, s).team is None


def test_selector_match_labels() -> None:
    s = scopes(budget("nlp", namespaceSelector={"matchLabels": {"cadre.dev/team": "nlp"}}))
    assert resolve_team("nlp-research", {"cadre.dev/team": "nlp"}, s).team == "nlp"
    assert resolve_team("x", {"cadre.dev/team": "vision"}, s).team is None
    assert resolve_team("x", {}, s).team is None


def test_unknown_labels_match_no_selector_but_a_list_still_works() -> None:
    s = scopes(
        budget("nlp", namespaceSelector={}),
        budget("vision", namespaces=["v"]),
    )
    assert resolve_team("v", None, s).team == "vision"
    assert resolve_team("n", None, s).team is None
    assert resolve_team("n", {}, s).team == "nlp"  # an empty selector matches everything


@pytest.mark.parametrize(
    ("expression", "labels", "expected"),
    [
        ({"key": "tier", "operator": "In", "values": ["gpu", "tpu"]}, {"tier": "gpu"}, True),
        ({"key": "tier", "operator": "In", "values": ["gpu"]}, {"tier": "cpu"}, False),
        ({"key": "tier", "operator": "In", "values": ["gpu"]}, {}, False),
        ({"key": "tier", "operator": "NotIn", "values": ["gpu"]}, {"tier": "cpu"}, True),
        ({"key": "tier", "operator": "NotIn", "values": ["gpu"]}, {}, True),
        ({"key": "tier", "operator": "NotIn", "values": ["gpu"]}, {"tier": "gpu"}, False),
        ({"key": "tier", "operator": "Exists"}, {"tier": ""}, True),
        ({"key": "tier", "operator": "Exists"}, {}, False),
        ({"key": "tier", "operator": "DoesNotExist"}, {}, True),
        ({"key": "tier", "operator": "DoesNotExist"}, {"tier": "x"}, False),
        ({"key": "tier", "operator": "Bogus"}, {"tier": "x"}, False),
    ],
)
def test_match_expressions(
    expression: dict[str, Any], labels: dict[str, str], expected: bool
) -> None:
    assert selector_matches({"matchExpressions": [expression]}, labels) is expected


def test_match_labels_and_expressions_must_all_hold() -> None:
    selector = {
        "matchLabels": {"team": "nlp"},
        "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}],
    }
    assert selector_matches(selector, {"team": "nlp", "env": "prod"})
    assert not selector_matches(selector, {"team": "nlp", "env": "dev"})
    assert not selector_matches(selector, {"team": "cv", "env": "prod"})


def test_conflicts_list_wins_over_selector_then_name_order() -> None:
    s = scopes(
        budget("zeta", namespaces=["shared"]),
        budget("alpha", namespaceSelector={"matchLabels": {"x": "1"}}),
        budget("beta", namespaces=["shared"]),
    )
    resolution = resolve_team("shared", {"x": "1"}, s)
    assert resolution.team == "beta"
    assert resolution.conflicts == ("alpha", "zeta")
    # Order of the budgets does not matter.
    assert resolve_team("shared", {"x": "1"}, list(reversed(s))) == resolution


def test_budget_with_both_fields_uses_the_list() -> None:
    # The CRD forbids both; if one slips through, the list is the narrower reading.
    scope = budget_scope(budget("b", namespaces=["a"], namespaceSelector={}))
    assert scope.namespaces == frozenset({"a"})
    assert scope.selector is None


def test_examples_budgets() -> None:
    docs = list(yaml.safe_load_all((EXAMPLES / "budgets.yaml").read_text()))
    budgets = [d for d in docs if d["kind"] == "ResourceBudget"]
    namespaces = {
        d["metadata"]["name"]: d["metadata"]["labels"] for d in docs if d["kind"] == "Namespace"
    }
    s = scopes(*budgets)
    assert resolve_team("vision-research", namespaces["vision-research"], s).team == "vision"
    assert resolve_team("nlp-research", namespaces["nlp-research"], s).team == "nlp"
    assert resolve_team("default", {}, s).team is None
