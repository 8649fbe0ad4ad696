"""The CRDs' CEL rules (x-kubernetes-validations), evaluated offline.

Rules are evaluated where the API server evaluates them: at the schema node
that declares them, with `self` bound to the (defaulted) value there, once per
list item for rules under `items`. Transition rules (those using oldSelf) only
run on updates, so an offline check of a new manifest skips them, as the API
server does on create.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from cadre.tools.validation.schema import FieldError, Schema, join

_ENV = celpy.Environment()


@lru_cache(maxsize=256)
def _program(rule: str) -> Any:
    return _ENV.program(_ENV.compile(rule))


def is_transition_rule(rule: str) -> bool:
    return "oldSelf" in rule


def check_rules(value: Any, schema: Schema, path: str) -> Iterator[FieldError]:
    """Every CEL rule in schema that value breaks, with the rule's message and path."""
    for rule in schema.get("x-kubernetes-validations", []):
        if is_transition_rule(rule["rule"]):
            continue
        yield from _evaluate(rule, value, path)
    if isinstance(value, dict):
        properties: Schema = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                yield from check_rules(item, properties[name], join(path, name))
            elif isinstance(schema.get("additionalProperties"), dict):
                yield from check_rules(item, schema["additionalProperties"], join(path, name))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from check_rules(item, schema["items"], join(path, index))


def _evaluate(rule: dict[str, Any], value: Any, path: str) -> Iterator[FieldError]:
    where = (path + rule["fieldPath"]).lstrip(".") if rule.get("fieldPath") else path
    try:
        verdict = _program(rule["rule"]).evaluate({"self": json_to_cel(value)})
    except CELEvalError as err:
        yield FieldError(where, f"rule {rule['rule']!r} could not be evaluated: {err}")
        return
    if isinstance(verdict, CELEvalError):
        yield FieldError(where, f"rule {rule['rule']!r} could not be evaluated: {verdict}")
    elif not bool(verdict):
        yield FieldError(where, rule.get("message") or f"failed rule: {rule['rule']}")
