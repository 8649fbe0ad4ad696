"""Generates the CustomResourceDefinitions from the pydantic models.

Pydantic writes JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema:
every $ref inlined, no `anyOf` with null (optional means "may be absent"), no
`additionalProperties: false` beside `properties`, OpenAPI 3.0's boolean
`exclusiveMinimum`. This module is that translation, plus the CRD envelope
(names, scope, status subresource, printer columns).
"""

from __future__ import annotations

from typing import Any, Final

import yaml

from cadre.core.api import GROUP, KINDS, VERSION, KindInfo

Schema = dict[str, Any]

HEADER: Final = "# Generated from the pydantic models by `cadre crds`. Do not edit by hand.\n"
CATEGORY: Final = "cadre"
_DROPPED_KEYS: Final = frozenset({"title", "$defs"})


def _resolve(schema: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline a $ref, keeping the referring site's own keys (description, default)."""
    if "$ref" not in schema:
        return schema
    target = defs[schema["$ref"].rsplit("/", 1)[-1]]
    siblings = {k: v for k, v in schema.items() if k != "$ref"}
    return {**target, **siblings}


def _strip_null(schema: Schema, defs: dict[str, Schema]) -> Schema:
    """`X | None` becomes X: absence is how Kubernetes spells 'not set'."""
    variants = schema.get("anyOf")
    if not variants or schema.get("x-kubernetes-int-or-string"):
        return schema
    non_null = [v for v in variants if v.get("type") != "null"]
    if len(non_null) != 1:
        raise ValueError(f"cannot express this union structurally: {variants!r}")
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**_resolve(non_null[0], defs), **rest}


def to_structural(schema: Schema, defs: dict[str, Schema]) -> Schema:
    """Translate one pydantic JSON Schema node into a structural OpenAPI v3 node."""
    node = _strip_null(_resolve(schema, defs), defs)
    node = _resolve(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = to_structural(value, defs)
            continue  # `false` (unknown fields rejected) is what pruning already does
        if key == "properties":
            out[key] = {name: to_structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = to_structural(value, defs)
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        else:
            out[key] = value
    if "properties" in out or "additionalProperties" in out:
        out.setdefault("type", "object")
    return _ordered(out)


_KEY_ORDER: Final = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "x-kubernetes-validations",
)


def _ordered(node: Schema) -> Schema:
    """Stable, readable key order, so the committed YAML diffs well."""
    rank = {key: index for index, key in enumerate(_KEY_ORDER)}
    return dict(sorted(node.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def openapi_schema(info: KindInfo) -> Schema:
    """The openAPIV3Schema of one kind."""
    full = info.model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Schema] = full.get("$defs", {})
    properties = full["properties"]
    root: Schema = {
        "description": full.get("description", ""),
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "description": "The API version of this object: cadre.dev/v1alpha1.",
                "type": "string",
            },
            "kind": {"description": f"The kind of this object: {info.kind}.", "type": "string"},
            "metadata": _metadata_schema(info),
            "spec": to_structural(properties["spec"], defs),
            "status": to_structural(properties["status"], defs),
        },
    }
    if "x-kubernetes-validations" in full:
        root["x-kubernetes-validations"] = full["x-kubernetes-validations"]
    return root


def _metadata_schema(info: KindInfo) -> Schema:
    """Only metadata.name may be restricted in a CRD; the rest is the API server's."""
    if info.name_pattern is None:
        return {"type": "object"}
    name: Schema = {
        "description": f"The name: at most {info.name_max_length} characters, {info.name_rule}.",
        "type": "string",
        "maxLength": info.name_max_length,
        "pattern": info.name_pattern,
    }
    return {"type": "object", "properties": {"name": name}}


# Argo CD applies a lower wave first and waits for it to be healthy.
ARGOCD_CRD_SYNC_WAVE: Final = "-2"


def crd_for(info: KindInfo) -> Schema:
    """The whole CustomResourceDefinition of one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "cadre", "app.kubernetes.io/part-of": "cadre"},
            # Argo CD: the CRDs first, then ResourceBudgets (wave -1), then the workloads
            # (wave 0, the default). See docs/argocd.md.
            "annotations": {"argocd.argoproj.io/sync-wave": ARGOCD_CRD_SYNC_WAVE},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": [CATEGORY],
            },
            "scope": info.scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(info)},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in info.printer_columns],
                }
            ],
        },
    }


def crd_file_name(info: KindInfo) -> str:
    return f"{GROUP}_{info.plural}.yaml"


def render_crds() -> dict[str, str]:
    """File name -> YAML text of every CRD, exactly as committed in crds/."""
    return {
        crd_file_name(info): HEADER
        + yaml.safe_dump(crd_for(info), sort_keys=False, width=100, allow_unicode=True)
        for info in KINDS.values()
    }
