"""Broken manifests, each breaking exactly one rule, with where the error must point.

Shared by the offline table test (tests/unit) and the differential test against
a real kube-apiserver (tests/integration): both verdicts must agree.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

DELETE = object()


def training_job() -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "resnet"},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "workers": 2,
            "resources": {"flavor": "a100", "gpus": 8, "cpu": "32", "memory": "200Gi"},
            "distribution": "PyTorch",
            "env": [{"name": "WANDB_PROJECT", "value": "resnet"}],
            "checkpoint": {"volumeClaim": "ckpt", "mountPath": "/ckpt"},
        },
    }


def model_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud"},
        "spec": {
            "model": {"uri": "s3://models/fraud/v7", "format": "onnx"},
            "runtime": {"image": "ghcr.io/acme/serve:2.1", "port": 8080},
            "replicas": {"min": 2, "max": 4},
            "autoscaling": {"metric": "cpu", "target": 70},
            "resources": {"flavor": "t4", "gpus": 1, "cpu": "2", "memory": "8Gi"},
            "canary": {"model": {"uri": "s3://models/fraud/v8"}, "trafficPercent": 10},
        },
    }


def resource_budget() -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ResourceBudget",
        "metadata": {"name": "vision"},
        "spec": {
            "namespaces": ["vision-research"],
            "cohort": "research",
            "quota": [
                {"flavor": "a100", "gpus": 8, "borrowingLimit": {"gpus": 8}},
                {"flavor": "cpu-only", "cpu": "64", "memory": "256Gi"},
            ],
            "spend": {"limit": "20000", "warnAt": [0.5, 0.8], "whenExceeded": "Queue"},
        },
    }


@dataclass(frozen=True)
class Case:
    """One broken manifest: the change that breaks it and the error it must give."""

    name: str
    base: str  # tj | md | rb
    changes: tuple[tuple[str, Any], ...]  # dotted path (with [i]) -> new value or DELETE
    path: str  # the path the error must name
    message: str  # a fragment the error message must contain

    def manifest(self) -> dict[str, Any]:
        doc = {"tj": training_job, "md": model_deployment, "rb": resource_budget}[self.base]()
        for where, value in self.changes:
            _set(doc, where, value)
        return doc


def _set(doc: dict[str, Any], where: str, value: Any) -> None:
    parts: list[str | int] = []
    for piece in where.split("."):
        if "[" in piece:
            name, index = piece[:-1].split("[")
            parts += [name, int(index)]
        else:
            parts.append(piece)
    target: Any = doc
    for part in parts[:-1]:
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = copy.deepcopy(value)


CASES: tuple[Case, ...] = (
    # TrainingJob
    Case("tj-no-spec", "tj", (("spec", DELETE),), "spec", "is required"),
    Case("tj-no-image", "tj", (("spec.image", DELETE),), "spec.image", "is required"),
    Case("tj-empty-image", "tj", (("spec.image", ""),), "spec.image", "must not be empty"),
    Case("tj-zero-workers", "tj", (("spec.workers", 0),), "spec.workers", "at least 1"),
    Case("tj-workers-text", "tj", (("spec.workers", "four"),), "spec.workers", "whole number"),
    Case("tj-no-resources", "tj", (("spec.resources", DELETE),), "spec.resources", "is required"),
    Case(
        "tj-gpus-without-flavor",
        "tj",
        (("spec.resources.flavor", DELETE),),
        "spec.resources.flavor",
        "a flavor is required when gpus is more than 0",
    ),
    Case(
        "tj-negative-gpus",
        "tj",
        (("spec.resources.gpus", -1),),
        "spec.resources.gpus",
        "at least 0",
    ),
    Case(
        "tj-too-many-gpus",
        "tj",
        (("spec.resources.gpus", 65),),
        "spec.resources.gpus",
        "at most 64",
    ),
    Case(
        "tj-memory-gb",
        "tj",
        (("spec.resources.memory", "8Gb"),),
        "spec.resources.memory",
        "not Kubernetes syntax",
    ),
    Case("tj-negative-cpu", "tj", (("spec.resources.cpu", "-1"),), "spec.resources.cpu", "sign"),
    Case(
        "tj-uppercase-flavor",
        "tj",
        (("spec.resources.flavor", "A100"),),
        "spec.resources.flavor",
        "lowercase",
    ),
    Case(
        "tj-unknown-distribution",
        "tj",
        (("spec.distribution", "Horovod"),),
        "spec.distribution",
        "must be one of None, PyTorch",
    ),
    Case(
        "tj-runtime-days", "tj", (("spec.maxRuntime", "2d"),), "spec.maxRuntime", "not a duration"
    ),
    Case("tj-too-many-retries", "tj", (("spec.retries", 101),), "spec.retries", "at most 100"),
    Case(
        "tj-pytorch-options-without-pytorch",
        "tj",
        (("spec.distribution", "None"), ("spec.pytorch", {"port": 29500})),
        "spec.pytorch",
        "only used with distribution: PyTorch",
    ),
    Case(
        "tj-typo-field",
        "tj",
        (("spec.distributon", "PyTorch"),),
        "spec.distributon",
        "did you mean 'distribution'",
    ),
    Case(
        "tj-long-name",
        "tj",
        (("metadata.name", "a" * 51),),
        "metadata.name",
        "at most 50 characters",
    ),
    Case(
        "tj-name-starts-with-digit",
        "tj",
        (("metadata.name", "1resnet"),),
        "metadata.name",
        "starts with a letter",
    ),
    Case(
        "tj-env-value-and-secret",
        "tj",
        (("spec.env[0].valueFrom", {"secretKeyRef": {"name": "wandb", "key": "k"}}),),
        "spec.env[0]",
        "either value or valueFrom",
    ),
    Case(
        "tj-env-duplicate",
        "tj",
        (("spec.env", [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),),
        "spec.env[1]",
        "duplicate",
    ),
    Case(
        "tj-relative-mount",
        "tj",
        (("spec.checkpoint.mountPath", "ckpt"),),
        "spec.checkpoint.mountPath",
        "not accepted",
    ),
    Case("tj-suspend-text", "tj", (("spec.suspend", "yes"),), "spec.suspend", "true or false"),
    Case(
        "tj-ttl-number", "tj", (("spec.ttlAfterFinished", 24),), "spec.ttlAfterFinished", "string"
    ),
    # ModelDeployment
    Case(
        "md-canary-one-replica",
        "md",
        (("spec.replicas.min", 1),),
        "spec.replicas.min",
        "a canary needs replicas.min of at least 2",
    ),
    Case(
        "md-max-without-autoscaling",
        "md",
        (("spec.autoscaling", DELETE),),
        "spec.replicas.max",
        "replicas.max above replicas.min needs autoscaling",
    ),
    Case(
        "md-autoscaling-without-request",
        "md",
        (("spec.resources.cpu", DELETE),),
        "spec.autoscaling",
        "autoscaling targets a percent of what each replica requests",
    ),
    Case(
        "md-pvc-without-claim",
        "md",
        (("spec.model.uri", "pvc:///models/v7"),),
        "spec.model.uri",
        "a pvc:// model is pvc://<claim>/<path>",
    ),
    Case(
        "md-pvc-with-credentials",
        "md",
        (("spec.model.uri", "pvc://models/v7"), ("spec.model.credentialsSecret", "s3-creds")),
        "spec.model.credentialsSecret",
        "a pvc:// model is mounted, not downloaded",
    ),
    Case(
        "md-min-above-max",
        "md",
        (("spec.replicas.min", 5),),
        "spec.replicas.min",
        "must not be more than replicas.max",
    ),
    Case(
        "md-canary-zero",
        "md",
        (("spec.canary.trafficPercent", 0),),
        "spec.canary.trafficPercent",
        "at least 1",
    ),
    Case(
        "md-canary-all",
        "md",
        (("spec.canary.trafficPercent", 100),),
        "spec.canary.trafficPercent",
        "at most 99",
    ),
    Case("md-ftp-uri", "md", (("spec.model.uri", "ftp://x/y"),), "spec.model.uri", "not accepted"),
    Case(
        "md-port-range", "md", (("spec.runtime.port", 70000),), "spec.runtime.port", "at most 65535"
    ),
    Case(
        "md-rps-metric",
        "md",
        (("spec.autoscaling.metric", "rps"),),
        "spec.autoscaling.metric",
        "must be one of cpu, memory",
    ),
    Case(
        "md-gpus-without-flavor",
        "md",
        (("spec.resources.flavor", DELETE),),
        "spec.resources.flavor",
        "a flavor is required",
    ),
    Case("md-no-runtime", "md", (("spec.runtime", DELETE),), "spec.runtime", "is required"),
    # ResourceBudget
    Case(
        "rb-both-namespace-forms",
        "rb",
        (("spec.namespaceSelector", {"matchLabels": {"team": "vision"}}),),
        "spec",
        "exactly one of them",
    ),
    Case(
        "rb-no-namespaces",
        "rb",
        (("spec.namespaces", DELETE),),
        "spec",
        "exactly one of them",
    ),
    Case(
        "rb-borrow-without-cohort",
        "rb",
        (("spec.cohort", DELETE),),
        "spec.quota",
        "borrowingLimit needs a cohort",
    ),
    Case(
        "rb-spend-without-limit",
        "rb",
        (("spec.spend.limit", DELETE),),
        "spec.spend",
        "set limit (money), gpuHours, or both",
    ),
    Case("rb-limit-shorthand", "rb", (("spec.spend.limit", "20k"),), "spec.spend.limit", "money"),
    Case(
        "rb-warn-above-one",
        "rb",
        (("spec.spend.warnAt", [1.5]),),
        "spec.spend.warnAt[0]",
        "less than 1",
    ),
    Case(
        "rb-unknown-policy",
        "rb",
        (("spec.spend.whenExceeded", "Stop"),),
        "spec.spend.whenExceeded",
        "must be one of Queue, Warn, Suspend",
    ),
    Case(
        "rb-duplicate-flavor",
        "rb",
        (("spec.quota[1].flavor", "a100"),),
        "spec.quota[1]",
        "duplicate",
    ),
    Case(
        "rb-memory-gb",
        "rb",
        (("spec.quota[1].memory", "256GB"),),
        "spec.quota[1].memory",
        "not Kubernetes syntax",
    ),
    Case(
        "rb-negative-weight",
        "rb",
        (("spec.fairShareWeight", -1),),
        "spec.fairShareWeight",
        "at least 0",
    ),
    Case("rb-empty-namespaces", "rb", (("spec.namespaces", []),), "spec.namespaces", "at least 1"),
)
