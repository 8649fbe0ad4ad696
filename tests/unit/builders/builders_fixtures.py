"""Shared inputs of the builder tests: the example config and TrainingJobs."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cadre.core.api.config import OperatorConfig, parse_config
from cadre.core.training import TrainingJobChildren, build_training_job_children

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
HERE = Path(__file__).resolve().parent
INPUTS = HERE / "inputs"
GOLDEN = HERE / "golden"

UID = "6f1c2a8e-0000-4000-8000-000000000001"
TEAM = "vision"


@cache
def _config() -> OperatorConfig:
    return parse_config((EXAMPLES / "operator-config.yaml").read_text(encoding="utf-8"))


def config() -> OperatorConfig:
    return _config()


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(load(EXAMPLES / name))


def children(body: dict[str, Any], *, team: str | None = TEAM) -> TrainingJobChildren:
    meta = body["metadata"]
    return build_training_job_children(
        body,
        name=meta["name"],
        namespace=meta["namespace"],
        uid=UID,
        team=team,
        config=config(),
    )


def minimal(**spec: Any) -> dict[str, Any]:
    """A small valid TrainingJob wire dict; keyword arguments override spec fields."""
    base: dict[str, Any] = {
        "image": "ghcr.io/acme/train:1.4",
        "command": ["python", "train.py"],
        "resources": {"flavor": "t4", "gpus": 1, "cpu": "4", "memory": "16Gi"},
    }
    base.update(spec)
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "tj", "namespace": "ns"},
        "spec": base,
    }


def worker(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container = containers[0]
    assert isinstance(container, dict)
    return container


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    """The worker's env as name -> value, or name -> the fieldRef path."""
    out: dict[str, Any] = {}
    for entry in worker(job).get("env", []):
        if "value" in entry:
            out[entry["name"]] = entry["value"]
        elif "fieldRef" in entry.get("valueFrom", {}):
            out[entry["name"]] = ("fieldRef", entry["valueFrom"]["fieldRef"]["fieldPath"])
        else:
            out[entry["name"]] = ("valueFrom", entry["valueFrom"])
    return out
