"""Fixtures of the e2e layer: the whole local cluster for the session.

`cluster` is a localcluster.LocalCluster in "cluster" mode: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok with the fake GPU node pool of
e2e/cluster/nodepool.yaml (scale with env CADRE_E2E_SCALE), CRDs from crds/*.yaml
installed when there are any. `cluster.kubeconfig` is the admin kubeconfig path and
`cluster.kubectl(...)` runs the built kubectl against it.
`namespace` is a fresh namespace per test whose `default` ServiceAccount exists, so pods
can be created at once; it is deleted afterwards.
Never dial a pod or Service IP: no kubectl logs/exec/port-forward on fake pods.
Without binaries (or if the start fails) the tests fail under CI=true, else are skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from burst import CAPACITY, LEASE, PER_GPU_SECOND, RBS
from cadre_process import EXAMPLE_CONFIG, operator_kubeconfig
from localcluster import LocalCluster
from localcluster.testing import fresh_namespace, start_cluster


@pytest.fixture(scope="session")
def cluster(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    scale = int(os.environ.get("CADRE_E2E_SCALE", "1"))
    c = start_cluster(pytestconfig, tmp_path_factory, "cluster", scale=scale)
    yield c
    c.down()


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from fresh_namespace(cluster, request)


@pytest.fixture
def config(tmp_path: Path) -> Callable[..., Path]:
    """An operator config: prices of 1 per a100 GPU-second and 0.5 per t4 GPU-second (no
    CPU or memory prices), short leases, spend refreshed every second; `overrides` on top."""

    def make(**overrides: Any) -> Path:
        doc = yaml.safe_load(EXAMPLE_CONFIG.read_text())
        for flavor in doc["flavors"]:
            rate = PER_GPU_SECOND.get(flavor["name"])
            flavor["prices"] = {"gpuHour": str(rate * 3600)} if rate is not None else {}
        doc["leaderElection"] = dict(LEASE)
        doc["accounting"] = {"refreshSeconds": 1}
        for key, value in overrides.items():
            doc[key] = {**(doc.get(key) or {}), **value}
        path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    return make


@pytest.fixture
def team(cluster: LocalCluster) -> Iterator[str]:
    """A namespace and a ResourceBudget of the same name: the whole cluster's GPUs."""
    name = f"ha-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(name)
    cluster.wait_default_service_account(name)
    cluster.api.create(
        RBS,
        {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ResourceBudget",
            "metadata": {"name": name},
            "spec": {
                "namespaces": [name],
                "quota": [{"flavor": f, "gpus": n} for f, n in CAPACITY.items()],
            },
        },
    )
    yield name
    cluster.api.call("DELETE", f"{RBS}/{name}", ok=(404,))
    cluster.delete_namespace(name)


@pytest.fixture
def kubeconfig(cluster: LocalCluster, tmp_path: Path) -> Path:
    return operator_kubeconfig(cluster, tmp_path / "kubeconfig")
