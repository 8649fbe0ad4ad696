"""Shared by the integration tests of ModelDeployments: the collection path and a small
valid manifest."""

from __future__ import annotations

from typing import Any

MDS = "/apis/cadre.dev/v1alpha1/namespaces/{ns}/modeldeployments"


def modeldeployment(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"uri": "s3://models/fraud/v7", "format": "onnx"},
        "runtime": {"image": "ghcr.io/acme/serve:2.1", "port": 8080},
        "replicas": {"min": 2, "max": 2},
        "resources": {"flavor": "t4", "gpus": 1, "cpu": "1", "memory": "2Gi"},
    }
    body.update(spec)
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": body,
    }
