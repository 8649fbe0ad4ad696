"""Offline structural-schema checks and defaulting, as the API server does them.

The API server first applies the schema's defaults, then checks types, enums,
bounds, patterns and list semantics, then runs the CEL rules. Doing the same
here lets `cadre validate` give the verdict `kubectl apply` would give, without
a cluster. Unknown fields are reported too (the server would prune them
silently, which hides typos).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from cadre.core.api.common import DNS_LABEL_PATTERN, MONEY_PATTERN, WORKLOAD_NAME_PATTERN
from cadre.core.units.duration import DURATION_PATTERN
from cadre.core.units.quantity import QuantityError, parse_quantity

Schema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with a manifest: where it is and what would be accepted."""

    path: str
    message: str
    # True for checks the API server does not make (it prunes unknown fields).
    validate_only: bool = False
    # Errors the API server counts as blocking: a wrong type, a value outside an
    # enum, a missing required field, or too long / too many. After one of those it
    # does not run the CEL rules at all; after other schema errors it does.
    blocks_rules: bool = False


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def apply_defaults(value: Any, schema: Schema) -> Any:
    """A copy of value with the schema's defaults filled in where fields are absent."""
    result = copy.deepcopy(value)
    _default_in_place(result, schema)
    return result


def _default_in_place(value: Any, schema: Schema) -> None:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default_in_place(value[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for item in value.values():
                _default_in_place(item, extra)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _default_in_place(item, schema["items"])


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


_EXPECTED = {
    "object": "an object (a mapping of fields)",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
}


def _matches_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return True


def check(value: Any, schema: Schema, path: str) -> Iterator[FieldError]:
    """Every structural-schema error in value, with its path."""
    if schema.get("x-kubernetes-int-or-string"):
        yield from _check_int_or_string(value, schema, path)
        return
    kind = schema.get("type")
    if kind and not _matches_type(value, kind):
        yield FieldError(
            path, f"must be {_EXPECTED[kind]}, not {_type_name(value)}", blocks_rules=True
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(str(v) for v in schema["enum"])
        yield FieldError(path, f"must be one of {choices} (got {value!r})", blocks_rules=True)
        return
    if isinstance(value, str):
        yield from _check_string(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield from _check_number(value, schema, path)
    elif isinstance(value, list):
        yield from _check_array(value, schema, path)
    elif isinstance(value, dict):
        yield from _check_object(value, schema, path)


def _check_int_or_string(value: Any, schema: Schema, path: str) -> Iterator[FieldError]:
    if isinstance(value, bool) or not isinstance(value, int | str):
        yield FieldError(
            path, f"must be a string or a whole number, not {_type_name(value)}", blocks_rules=True
        )
        return
    if isinstance(value, str):
        pattern = schema.get("pattern")
        if pattern and not _compiled(pattern).search(value):
            yield FieldError(path, _quantity_hint(value))
        return
    yield from _check_number(value, schema, path)


def _quantity_hint(text: str) -> str:
    try:
        parse_quantity(text)
    except QuantityError as err:
        return str(err)
    return f"{text!r} does not have the accepted form"  # pragma: no cover


def _check_string(value: str, schema: Schema, path: str) -> Iterator[FieldError]:
    if "minLength" in schema and len(value) < schema["minLength"]:
        yield FieldError(
            path,
            "must not be empty"
            if schema["minLength"] == 1
            else f"must be at least {schema['minLength']} characters long",
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        yield FieldError(
            path,
            f"must be at most {schema['maxLength']} characters long (got {len(value)})",
            blocks_rules=True,
        )
    pattern = schema.get("pattern")
    if pattern and not _compiled(pattern).search(value):
        yield FieldError(path, _pattern_message(value, pattern))
    if schema.get("format") == "date-time" and not _is_datetime(value):
        yield FieldError(path, f"{value!r} is not a time such as 2026-01-31T12:00:00Z")


_PATTERN_WORDS = {
    DNS_LABEL_PATTERN: "a name of lowercase letters, digits and '-', "
    "starting and ending with a letter or digit (for example a100)",
    WORKLOAD_NAME_PATTERN: "a name that starts with a letter and has only lowercase letters, "
    "digits and '-'",
}


def _pattern_message(value: str, pattern: str) -> str:
    if pattern == DURATION_PATTERN:
        return f"{value!r} is not a duration: write a number with a unit h, m or s, such as 48h"
    if pattern == MONEY_PATTERN:
        return f'{value!r} is not an amount of money: write a decimal number such as "20000"'
    wanted = _PATTERN_WORDS.get(pattern, f"text matching {pattern}")
    return f"{value!r} is not accepted: must be {wanted}"


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _check_number(value: float, schema: Schema, path: str) -> Iterator[FieldError]:
    if "minimum" in schema:
        low = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= low:
            yield FieldError(path, f"must be more than {low} (got {value})")
        elif value < low:
            yield FieldError(path, f"must be at least {low} (got {value})")
    if "maximum" in schema:
        high = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= high:
            yield FieldError(path, f"must be less than {high} (got {value})")
        elif value > high:
            yield FieldError(path, f"must be at most {high} (got {value})")


def _check_array(value: list[Any], schema: Schema, path: str) -> Iterator[FieldError]:
    if "minItems" in schema and len(value) < schema["minItems"]:
        yield FieldError(path, f"must have at least {schema['minItems']} item(s)")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        yield FieldError(
            path,
            f"must have at most {schema['maxItems']} items (got {len(value)})",
            blocks_rules=True,
        )
    items = schema.get("items", {})
    for index, item in enumerate(value):
        yield from check(item, items, join(path, index))
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        seen: list[Any] = []
        for index, item in enumerate(value):
            if item in seen:
                yield FieldError(join(path, index), f"duplicate entry {item!r}")
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen_keys: set[tuple[Any, ...]] = set()
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = tuple(item.get(k) for k in keys)
            if key in seen_keys:
                shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
                yield FieldError(join(path, index), f"duplicate entry with {shown}")
            seen_keys.add(key)


def _check_object(value: dict[str, Any], schema: Schema, path: str) -> Iterator[FieldError]:
    properties: Schema = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            yield FieldError(join(path, name), "is required", blocks_rules=True)
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        yield FieldError(
            path, f"must have at most {schema['maxProperties']} entries", blocks_rules=True
        )
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        if name in properties:
            yield from check(item, properties[name], join(path, name))
        elif isinstance(extra, dict):
            yield from check(item, extra, join(path, str(name)))
        elif properties and path != "metadata":  # metadata is the API server's to check
            yield FieldError(join(path, str(name)), _unknown_field(str(name), properties), True)


def _unknown_field(name: str, properties: Schema) -> str:
    close = difflib.get_close_matches(name, list(properties), n=1, cutoff=0.6)
    if close:
        return f"unknown field; did you mean {close[0]!r}?"
    known = ", ".join(properties)
    return f"unknown field; the fields here are: {known}"
