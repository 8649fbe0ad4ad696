"""Fixtures of the integration layer: a real etcd + kube-apiserver for the whole session.

`apiserver` is a localcluster.LocalCluster in "apiserver" mode (no controllers, no
scheduler, no nodes) with the CRDs from crds/*.yaml installed when there are any;
`apiserver.kubeconfig` is its admin kubeconfig path (os.fspath(apiserver) gives it too).
`namespace` is a fresh namespace per test, deleted afterwards. In this mode no
controller creates ServiceAccounts, so a namespace has no `default` one: create pods in e2e.
Without binaries (or if the start fails) the tests fail under CI=true, else are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import config
from kubernetes.client import ApiClient

from localcluster import LocalCluster
from localcluster.testing import fresh_namespace, start_cluster


@pytest.fixture(scope="session")
def apiserver(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    cluster = start_cluster(pytestconfig, tmp_path_factory, "apiserver")
    yield cluster
    cluster.down()


@pytest.fixture
def namespace(apiserver: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from fresh_namespace(apiserver, request)


@pytest.fixture(scope="session")
def api_client(apiserver: LocalCluster) -> Iterator[ApiClient]:
    """A kubernetes.client.ApiClient logged in as the admin (system:masters)."""
    client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    yield client
    client.close()
