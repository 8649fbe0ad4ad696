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
from collections.abc import Iterator

import pytest

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
