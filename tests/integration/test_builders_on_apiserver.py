"""The builders' Jobs and Services are accepted as they are by a real kube-apiserver.

Strict field validation makes a misspelt or misplaced field an error, so a builder can
never emit something the API server would silently drop.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cadre.core.api import TrainingJob
from cadre.core.api.config import parse_config
from cadre.core.training import build_training_job_children
from localcluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
CONFIG = parse_config((ROOT / "examples" / "operator-config.yaml").read_text(encoding="utf-8"))
EXAMPLES = ["trainingjob-single-gpu.yaml", "trainingjob-pytorch.yaml"]
PATHS = {
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "Service": "/api/v1/namespaces/{ns}/services",
}


@pytest.mark.parametrize("example", EXAMPLES)
def test_children_pass_strict_server_validation(
    apiserver: LocalCluster, namespace: str, example: str
) -> None:
    job = TrainingJob.model_validate(yaml.safe_load((ROOT / "examples" / example).read_text()))
    children = build_training_job_children(
        job,
        name=str(job.metadata["name"]),
        namespace=namespace,
        uid="4f2b7c8e-0000-4000-8000-000000000001",
        team="vision",
        config=CONFIG,
    )
    for child in children.objects():
        path = PATHS[child["kind"]].format(ns=namespace) + "?dryRun=All&fieldValidation=Strict"
        status, body = apiserver.api.request("POST", path, child)
        assert status == 201, f"{child['kind']}: {json.dumps(body)[:2000]}"
        assert body["metadata"]["name"] == job.metadata["name"]
        if child["kind"] == "Job":
            assert body["spec"]["suspend"] is True
            assert body["spec"]["completionMode"] == "Indexed"
