"""Keeps the Helm chart (charts/cadre) in step with its sources: one source for each object.

- `crds/` is copied into the chart's `crds/` folder (Helm installs those first and never
  deletes them, as a CRD's deletion would delete every TrainingJob with it);
- `manifests/{rbac,roles,admission-policies}.yaml` are copied into the chart's `files/`;
  the chart's templates read them there, put them in the release's namespace and add
  Helm's labels (Helm cannot read files outside the chart's folder, hence the copies);
- `values.schema.json` is written from the chart's own values (below) and the operator
  config's pydantic model, so `helm install --set config.timezone=Mars/Base` fails at the
  install with the same message the operator would give at start.

`python -m cadre.tools.chart` writes; `--check` only compares and fails on a difference
(a unit test runs it, like the CRDs' drift test).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from cadre.core.api.config import OperatorConfig

REPO: Final = Path(__file__).resolve().parents[3]
CHART: Final = REPO / "charts" / "cadre"
COPIED_MANIFESTS: Final = ("rbac.yaml", "roles.yaml", "admission-policies.yaml")
COPY_HEADER: Final = "# Copied from {source} by `python -m cadre.tools.chart`. Edit the source.\n"

Schema = dict[str, Any]

_STRING: Final[Schema] = {"type": "string"}
_STRING_MAP: Final[Schema] = {"type": "object", "additionalProperties": {"type": "string"}}
_QUANTITY: Final[Schema] = {
    "anyOf": [
        {"type": "string", "pattern": r"^[0-9.]+([eE][0-9]+|[numkKMGTPE]i?)?$"},
        {"type": "number"},
    ]
}
_RESOURCES: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {"type": "object", "additionalProperties": _QUANTITY},
        "limits": {"type": "object", "additionalProperties": _QUANTITY},
    },
}
_LIST: Final[Schema] = {"type": "array", "items": {"type": "object"}}
_DURATION: Final[Schema] = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"}


def _toggle(description: str, **properties: Schema) -> Schema:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "required": ["enabled"],
        "properties": {"enabled": {"type": "boolean"}, **properties},
    }


def values_schema() -> Schema:
    """The JSON Schema of values.yaml. Closed objects (additionalProperties: false): a typo
    in a value name is an error at install, not a setting silently ignored."""
    config = OperatorConfig.model_json_schema(mode="validation", by_alias=True)
    defs = config.pop("$defs", {})
    config.pop("title", None)
    config["description"] = (
        "The operator config (OperatorConfig: every field documented in the pydantic model "
        "operator/cadre/core/api/config.py; `cadre validate` checks a file), mounted from the "
        "cadre-config ConfigMap: flavours, prices, priorities, timezone, budgets' behaviour."
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Values of the cadre chart",
        "type": "object",
        "additionalProperties": False,
        "required": ["image", "replicaCount", "config"],
        "properties": {
            "global": {"type": "object"},  # Helm passes it to every chart; never ours to close
            "image": {
                "type": "object",
                "additionalProperties": False,
                "required": ["repository"],
                "properties": {
                    "repository": {"type": "string", "minLength": 1},
                    "tag": {"type": "string", "description": "default: the chart's appVersion"},
                    "digest": {"type": "string", "pattern": r"^(sha256:[0-9a-f]{64})?$"},
                    "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                },
            },
            "imagePullSecrets": {"type": "array", "items": {"type": "object"}},
            "replicaCount": {
                "type": "integer",
                "minimum": 1,
                "description": "2 or more: one leads (the Lease), the others are warm standbys",
            },
            "logFormat": {"enum": ["json", "console"]},
            "resources": _RESOURCES,
            "nodeSelector": _STRING_MAP,
            "tolerations": _LIST,
            "affinity": {"type": "object"},
            "topologySpreadConstraints": _LIST,
            "priorityClassName": _STRING,
            "podAnnotations": _STRING_MAP,
            "podLabels": _STRING_MAP,
            "podDisruptionBudget": _toggle(
                "Keeps one replica through a node drain.",
                minAvailable={"type": "integer", "minimum": 0},
            ),
            "metrics": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
            },
            "serviceMonitor": _toggle(
                "A Prometheus Operator ServiceMonitor for the metrics Service.",
                interval=_DURATION,
                labels=_STRING_MAP,
            ),
            "prometheusRule": _toggle(
                "The alert rules (docs/alerts.md) as a Prometheus Operator PrometheusRule.",
                labels=_STRING_MAP,
            ),
            "dashboards": _toggle(
                "The Grafana dashboards as ConfigMaps for Grafana's dashboard sidecar.",
                namespace=_STRING,
                labels=_STRING_MAP,
                annotations=_STRING_MAP,
            ),
            "admissionPolicies": _toggle(
                "The ValidatingAdmissionPolicies that keep team members from dodging the "
                "quota (docs/security.md). Turn off only if you know why."
            ),
            "userRoles": _toggle(
                "The ClusterRoles of people: cadre-edit and cadre-view (aggregated to edit, "
                "view and admin), cadre-budget-viewer, cadre-platform-admin."
            ),
            "finalizerRelease": _toggle(
                "The CronJob that charges and releases pods an absent operator left held.",
                schedule={"type": "string", "minLength": 9},
                heldLongerThan=_DURATION,
            ),
            "uninstall": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "releaseFinalizers": {
                        "type": "boolean",
                        "description": "a post-delete hook charges and releases every pod "
                        "that still holds Cadre's accounting finalizer",
                    },
                },
            },
            "argocd": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "healthChecks": _toggle(
                        "Cadre's Argo CD health checks in Argo CD's argocd-cm (hooks)."
                    ),
                    "namespace": {"type": "string", "minLength": 1},
                    "configMap": {"type": "string", "minLength": 1},
                },
            },
            "hooks": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"podAnnotations": _STRING_MAP},
            },
            "config": config,
        },
        "$defs": defs,
    }


def rendered() -> dict[Path, str]:
    """Every generated file of the chart, by path, with its content."""
    out: dict[Path, str] = {}
    for crd in sorted((REPO / "crds").glob("cadre.dev_*.yaml")):
        out[CHART / "crds" / crd.name] = crd.read_text(encoding="utf-8")
    for name in COPIED_MANIFESTS:
        text = (REPO / "manifests" / name).read_text(encoding="utf-8")
        out[CHART / "files" / name] = COPY_HEADER.format(source=f"manifests/{name}") + text
    out[CHART / "values.schema.json"] = json.dumps(values_schema(), indent=2) + "\n"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cadre.tools.chart", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path.relative_to(REPO))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    if args.check and stale:
        print(
            "out of date (run `python -m cadre.tools.chart`): " + ", ".join(map(str, stale)),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
