"""Shared pieces of the integration tests that drive the operator against the API server:
TrainingJob manifests, reads, patches. (The `team` and `t4_node` fixtures are in
conftest.py. No kubelet runs here: tests play the Job controller by writing Job status.)"""

from __future__ import annotations

from typing import Any

from localcluster import LocalCluster
from waiting import eventually

TJS = "/apis/cadre.dev/v1alpha1/namespaces/{ns}/trainingjobs"
BUDGETS = "/apis/cadre.dev/v1alpha1/resourcebudgets"


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


def with_phase(apiserver: LocalCluster, path: str, phase: str) -> None:
    """The TrainingJob's status says `phase`, as the operator writes it (the status
    subresource)."""
    obj = apiserver.api.get(path)
    obj["status"] = {"phase": phase}
    apiserver.api.call("PUT", f"{path}/status", obj)


def running_trainingjob(apiserver: LocalCluster, ns: str, name: str) -> str:
    """A new TrainingJob whose status says Running; its path."""
    apiserver.api.create(TJS.format(ns=ns), trainingjob(name))
    path = f"{TJS.format(ns=ns)}/{name}"
    with_phase(apiserver, path, "Running")
    return path


def admitted_reason(apiserver: LocalCluster, path: str, reason: str) -> dict[str, Any]:
    """The TrainingJob at `path`, once its Admitted condition says `reason`."""
    found: dict[str, Any] = eventually(
        f"Admitted condition {reason}",
        lambda: (
            (o := get(apiserver, path))
            and (condition(o, "Admitted") or {}).get("reason") == reason
            and o
        ),
    )
    return found
