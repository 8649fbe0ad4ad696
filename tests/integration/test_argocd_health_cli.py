"""`cadre argocd-health install|remove` against the real API server: Cadre's keys go into
an argocd-cm that Argo CD's install made, under their own field manager, and come out
again, leaving every other key; a missing argocd-cm is refused with a message, never
created. (The chart's hooks that run it: e2e/test_helm_install_e2e.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from localcluster import LocalCluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "manifests" / "argocd" / "health"
PREFIX = "resource.customizations.health.cadre.dev_"
ARGO_OWN = {"url": "https://argocd.example", "resource.customizations.health.apps_Foo": "x"}


def cadre(apiserver: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cadre.tools.cli", "argocd-health", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"KUBECONFIG": str(apiserver.kubeconfig), "PATH": "/usr/bin:/bin"},
    )


def test_install_and_remove_touch_only_cadres_keys(apiserver: LocalCluster, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/argocd-cm"
    refused = cadre(apiserver, "install", "--from", str(SCRIPTS), "--namespace", namespace)
    assert refused.returncode == 1
    assert f"ConfigMap {namespace}/argocd-cm not found: install Argo CD first" in refused.stderr
    assert not apiserver.api.exists(path)

    apiserver.api.create(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm"},
            "data": ARGO_OWN,
        },
    )
    installed = cadre(apiserver, "install", "--from", str(SCRIPTS), "--namespace", namespace)
    assert installed.returncode == 0, installed.stderr
    data = apiserver.api.get(path)["data"]
    assert {k: v for k, v in data.items() if not k.startswith(PREFIX)} == ARGO_OWN
    assert {k.removeprefix(PREFIX) for k in data if k.startswith(PREFIX)} == {
        "TrainingJob",
        "ModelDeployment",
        "ResourceBudget",
    }
    version = apiserver.api.get(path)["metadata"]["resourceVersion"]
    again = cadre(apiserver, "install", "--from", str(SCRIPTS), "--namespace", namespace)
    assert again.returncode == 0, again.stderr
    assert apiserver.api.get(path)["metadata"]["resourceVersion"] == version  # a no-op

    removed = cadre(apiserver, "remove", "--namespace", namespace)
    assert removed.returncode == 0, removed.stderr
    assert apiserver.api.get(path)["data"] == ARGO_OWN
