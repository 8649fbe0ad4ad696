"""The generated CRDs on a real kube-apiserver, and `cadre validate` agreeing with it.

Each broken manifest of the shared table is sent to the API server as a server-side
dry run with strict field validation (kubectl apply's default) and must be rejected
with an error that names the same path `cadre validate` names; every example passes
both. This is what lets a GitOps pipeline trust `cadre validate`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from broken_manifests import CASES, Case
from cadre.core.api import KINDS
from cadre.tools.validation import validate_document
from localcluster import LocalCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DRY_RUN = "dryRun=All&fieldValidation=Strict"


def _collection(kind: str, namespace: str) -> str:
    info = KINDS[kind]
    if info.scope == "Cluster":
        return f"/apis/cadre.dev/v1alpha1/{info.plural}"
    return f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/{info.plural}"


def _create(
    cluster: LocalCluster, doc: dict[str, Any], namespace: str, query: str = ""
) -> tuple[int, Any]:
    doc = copy.deepcopy(doc)
    if KINDS[doc["kind"]].scope == "Namespaced":
        doc["metadata"]["namespace"] = namespace  # the examples name their own
    path = _collection(doc["kind"], namespace) + (f"?{query}" if query else "")
    return cluster.api.request("POST", path, doc)


def test_crds_are_established(apiserver: LocalCluster) -> None:
    for info in KINDS.values():
        crd = apiserver.api.call(
            "GET",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{info.plural}.cadre.dev",
        )
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", (info.kind, conditions)
        assert conditions.get("NamesAccepted") == "True"


def test_examples_are_accepted_by_both(apiserver: LocalCluster, namespace: str) -> None:
    checked = 0
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("apiVersion") != "cadre.dev/v1alpha1":
                continue
            assert validate_document(doc).errors == []
            status, body = _create(apiserver, doc, namespace, DRY_RUN)
            assert status == 201, (path.name, body)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_server_and_cadre_validate_agree(
    apiserver: LocalCluster, namespace: str, case: Case
) -> None:
    doc = case.manifest()
    offline = validate_document(doc).errors
    assert [e.path for e in offline] == [case.path]

    status, body = _create(apiserver, doc, namespace, DRY_RUN)
    assert status in (400, 422), f"the API server accepted {case.name}: {body}"
    text = json.dumps(body)
    assert case.path in text, f"server error does not name {case.path}: {text}"


def _job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {"image": "train:1", "resources": {"flavor": "a100", "gpus": 1}},
    }


def test_server_applies_schema_defaults(apiserver: LocalCluster, namespace: str) -> None:
    status, body = _create(apiserver, _job("defaults"), namespace)
    assert status == 201, body
    spec = body["spec"]
    assert (spec["workers"], spec["retries"], spec["distribution"], spec["suspend"]) == (
        1,
        0,
        "None",
        False,
    )
