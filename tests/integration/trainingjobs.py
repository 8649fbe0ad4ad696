"""Shared pieces of the integration tests that drive the operator against the API server:
a team (ResourceBudget) for the test's namespace, a t4 node object, TrainingJob manifests,
reads. (No kubelet runs here: tests play the Job controller by writing Job status.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from localcluster import LocalCluster

TJS = "/apis/cadre.dev/v1alpha1/namespaces/{ns}/trainingjobs"
BUDGETS = "/apis/cadre.dev/v1alpha1/resourcebudgets"


@pytest.fixture
def team(apiserver: LocalCluster, namespace: str) -> Iterator[str]:
    """A ResourceBudget (4 t4 GPUs) covering the test's namespace."""
    name = f"team-{uuid.uuid4().hex[:8]}"
    apiserver.api.create(
        BUDGETS,
        {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ResourceBudget",
            "metadata": {"name": name},
            "spec": {"namespaces": [namespace], "quota": [{"flavor": "t4", "gpus": 4}]},
        },
    )
    yield name
    apiserver.api.call("DELETE", f"{BUDGETS}/{name}", ok=(404,))


@pytest.fixture
def t4_node(apiserver: LocalCluster) -> Iterator[str]:
    """A t4 node object with 8 GPUs, more than the team quota (nothing runs: no kubelet)."""
    name = f"t4-{uuid.uuid4().hex[:8]}"
    apiserver.api.create(
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"cadre.dev/flavor": "t4"}},
            "status": {
                "capacity": {"cpu": "48", "memory": "192Gi", "nvidia.com/gpu": "8", "pods": "110"},
                "allocatable": {
                    "cpu": "48",
                    "memory": "192Gi",
                    "nvidia.com/gpu": "8",
                    "pods": "110",
                },
            },
        },
    )
    yield name
    apiserver.api.call("DELETE", f"/api/v1/nodes/{name}", ok=(404,))


def trainingjob(name: str, workers: int = 2, gpus: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "command": ["python", "train.py"],
            "workers": workers,
            "distribution": "PyTorch",
            "resources": {"flavor": "t4", "gpus": gpus, "cpu": "4", "memory": "16Gi"},
        },
    }


def get(apiserver: LocalCluster, path: str) -> dict[str, Any] | None:
    status, body = apiserver.api.request("GET", path)
    return body if status == 200 else None


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), None)


def merge_patch(apiserver: LocalCluster, path: str, patch: dict[str, Any]) -> None:
    status, body = apiserver.api.request(
        "PATCH", path, patch, content_type="application/merge-patch+json"
    )
    assert status == 200, body
