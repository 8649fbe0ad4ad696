"""Which team (ResourceBudget) a namespace belongs to. Pure: wire dicts in, names out.

A ResourceBudget names its namespaces either as a list (`spec.namespaces`) or with a label
selector (`spec.namespaceSelector`). When several budgets claim one namespace the choice
is deterministic: a budget that lists the namespace by name wins over one that selects it
by labels, then the alphabetically first name wins; the others are reported as conflicts
so the operator can say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BudgetScope", "TeamResolution", "budget_scope", "resolve_team", "selector_matches"]


@dataclass(frozen=True, slots=True)
class BudgetScope:
    """The namespaces part of one ResourceBudget."""

    name: str
    namespaces: frozenset[str] | None = None
    selector: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TeamResolution:
    team: str | None
    """The budget the namespace is charged to; None when no budget covers it."""
    conflicts: tuple[str, ...] = ()
    """Other budgets that also claim the namespace (ignored), sorted."""


def budget_scope(budget: Mapping[str, Any]) -> BudgetScope:
    """The scope of a ResourceBudget wire dict (a budget with neither field covers nothing)."""
    spec = budget.get("spec") or {}
    names = spec.get("namespaces")
    selector = spec.get("namespaceSelector")
    return BudgetScope(
        name=str((budget.get("metadata") or {}).get("name", "")),
        namespaces=frozenset(str(n) for n in names) if names is not None else None,
        selector=selector if names is None and isinstance(selector, Mapping) else None,
    )


def _requirement_matches(requirement: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = str(requirement.get("key", ""))
    operator = requirement.get("operator")
    values = set(requirement.get("values") or ())
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False  # an unknown operator matches nothing (the CRD enum forbids it)


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every expression
    must hold; an empty selector matches every namespace."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_requirement_matches(r, labels) for r in selector.get("matchExpressions") or ())


def resolve_team(
    namespace: str, labels: Mapping[str, str] | None, scopes: Iterable[BudgetScope]
) -> TeamResolution:
    """The team of `namespace` (with its `labels`; None if unknown: selectors then match
    nothing) among the budgets' scopes."""
    by_name: list[str] = []
    by_selector: list[str] = []
    for scope in scopes:
        if scope.namespaces is not None:
            if namespace in scope.namespaces:
                by_name.append(scope.name)
        elif (
            scope.selector is not None
            and labels is not None
            and selector_matches(scope.selector, labels)
        ):
            by_selector.append(scope.name)
    ranked = sorted(by_name) + sorted(by_selector)
    if not ranked:
        return TeamResolution(None)
    return TeamResolution(ranked[0], tuple(sorted(ranked[1:])))
