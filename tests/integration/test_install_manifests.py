"""The plain install against a real kube-apiserver: `kubectl apply -k manifests/` passes a
server-side dry run (every object valid as the API server sees it, CRDs and policies
included), and the operator's and the CronJob's pods are admitted in a namespace that
enforces the restricted Pod Security Standard."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster import LocalCluster

pytestmark = pytest.mark.integration

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def rendered(apiserver: LocalCluster) -> list[dict[str, Any]]:
    out = apiserver.kubectl("kustomize", str(MANIFESTS)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_the_install_passes_a_server_side_dry_run(apiserver: LocalCluster) -> None:
    # The namespace must exist for a dry run of what goes in it (a dry run creates nothing).
    apiserver.kubectl("create", "namespace", "cadre-system", check=False)
    result = apiserver.kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-k", str(MANIFESTS)
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(rendered(apiserver)), result.stdout
    assert all("serverside-applied (server dry run)" in line for line in lines), result.stdout


def test_the_operators_pods_meet_the_restricted_pod_security_standard(
    apiserver: LocalCluster,
) -> None:
    namespace = f"restricted-{uuid.uuid4().hex[:6]}"
    apiserver.api.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
    )
    try:
        # No controller-manager here: the ServiceAccount a pod needs is made by hand.
        apiserver.api.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
        )
        objects = {d["kind"]: d for d in rendered(apiserver)}
        templates = {
            "operator": objects["Deployment"]["spec"]["template"],
            "finalizer-release": objects["CronJob"]["spec"]["jobTemplate"]["spec"]["template"],
        }
        for name, template in templates.items():
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": template["metadata"]["labels"]},
                "spec": {**template["spec"], "serviceAccountName": "default"},
            }
            status, body = apiserver.api.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", pod
            )
            assert status == 201, json.dumps(body)[:1000]
            # and a pod that breaks the standard is refused there: the check is real
            broken = json.loads(json.dumps(pod))
            broken["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
            status, body = apiserver.api.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", broken
            )
            assert status == 403, body
            assert "violates PodSecurity" in json.dumps(body)
    finally:
        apiserver.api.call("DELETE", f"/api/v1/namespaces/{namespace}", ok=(404,))
