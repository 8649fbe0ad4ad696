"""The integration layer's API server is real: version, RBAC, namespaces, CRDs."""

from __future__ import annotations

import json

import pytest
import yaml

from localcluster import LocalCluster
from localcluster.binaries import versions
from localcluster.testing import crd_files

pytestmark = pytest.mark.integration


def test_version_is_the_pinned_release(apiserver: LocalCluster) -> None:
    info = apiserver.api.get("/version")
    if apiserver.bins["kube-apiserver"].built_here:
        assert info["gitVersion"] == f"v{versions()['K8S_VERSION']}"
    else:  # CADRE_K8S_BIN_DIR / KUBEBUILDER_ASSETS: whatever the user brought
        assert info["gitVersion"].startswith("v1.")
    assert apiserver.server.startswith("https://127.0.0.1:")


def test_rbac_is_enforced(apiserver: LocalCluster) -> None:
    groups = apiserver.api.get("/apis/rbac.authorization.k8s.io")
    assert groups["preferredVersion"]["version"] == "v1"
    # The admin may do anything; a user with no bindings may not list secrets.
    admin = apiserver.kubectl("auth", "can-i", "list", "secrets", "-A", check=False)
    assert admin.stdout.strip() == "yes"
    nobody = apiserver.kubectl("auth", "can-i", "list", "secrets", "-A", "--as=nobody", check=False)
    assert nobody.stdout.strip() == "no"
    denied = apiserver.kubectl("get", "secrets", "-A", "--as=nobody", check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()


def test_a_namespace_can_be_created(apiserver: LocalCluster, namespace: str) -> None:
    ns = apiserver.api.get(f"/api/v1/namespaces/{namespace}")
    assert ns["status"]["phase"] == "Active"
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "probe"},
        "data": {"k": "v"},
    }
    apiserver.api.create(f"/api/v1/namespaces/{namespace}/configmaps", cm)
    out = apiserver.kubectl("get", "configmap", "probe", "-n", namespace, "-o", "json")
    assert json.loads(out.stdout)["data"] == {"k": "v"}


def test_crds_from_the_repo_are_established(apiserver: LocalCluster) -> None:
    files = crd_files()
    if not files:
        pytest.skip("crds/ holds no CRD yet")
    out = apiserver.kubectl("get", "crd", "-o", "json")
    served = {c["metadata"]["name"]: c for c in json.loads(out.stdout)["items"]}
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            name = doc["metadata"]["name"]
            assert name in served, f"{name} from {f.name} is not installed"
            conditions = {c["type"]: c["status"] for c in served[name]["status"]["conditions"]}
            assert conditions.get("Established") == "True", conditions
