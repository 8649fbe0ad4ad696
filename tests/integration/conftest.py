"""Fixtures of the integration layer: a real etcd + kube-apiserver for the whole session.

`apiserver` is a localcluster.LocalCluster in "apiserver" mode (no controllers, no
scheduler, no nodes) with the CRDs from crds/*.yaml installed when there are any;
`apiserver.kubeconfig` is its admin kubeconfig path (os.fspath(apiserver) gives it too).
`namespace` is a fresh namespace per test, deleted afterwards. In this mode no
controller creates ServiceAccounts, so a namespace has no `default` one: create pods in e2e.
Without binaries (or if the start fails) the tests fail under CI=true, else are skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import config
from kubernetes.client import ApiClient

from localcluster import LocalCluster
from localcluster.binaries import MissingBinariesError, gateway_api_crds
from localcluster.testing import fresh_namespace, start_cluster
from trainingjobs import BUDGETS, get, running_trainingjob
from waiting import eventually


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


@pytest.fixture
def team(apiserver: LocalCluster, namespace: str) -> Iterator[str]:
    """A ResourceBudget (4 t4 GPUs) covering the test's namespace."""
    name = f"team-{uuid.uuid4().hex[:8]}"
    apiserver.api.create(
        BUDGETS,
        {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ResourceBudget",
            "metadata": {"name": name},
            "spec": {"namespaces": [namespace], "quota": [{"flavor": "t4", "gpus": 4}]},
        },
    )
    yield name
    apiserver.api.call("DELETE", f"{BUDGETS}/{name}", ok=(404,))


@pytest.fixture
def t4_node(apiserver: LocalCluster) -> Iterator[str]:
    """A t4 node object with 8 GPUs, more than the team quota (nothing runs: no kubelet)."""
    name = f"t4-{uuid.uuid4().hex[:8]}"
    apiserver.api.create(
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"cadre.dev/flavor": "t4"}},
            "status": {
                "capacity": {"cpu": "48", "memory": "192Gi", "nvidia.com/gpu": "8", "pods": "110"},
                "allocatable": {
                    "cpu": "48",
                    "memory": "192Gi",
                    "nvidia.com/gpu": "8",
                    "pods": "110",
                },
            },
        },
    )
    yield name
    apiserver.api.call("DELETE", f"/api/v1/nodes/{name}", ok=(404,))


@pytest.fixture(scope="session")
def httproute_crd(apiserver: LocalCluster) -> None:
    """The Gateway API's HTTPRoute CRD (from its Go module), served: the routes tests
    use it, and the operator's RBAC table grants on it."""
    try:
        folder = gateway_api_crds()
    except MissingBinariesError as err:
        pytest.fail(f"the Gateway API CRDs are needed: {err}")
    apiserver.kubectl(
        "apply", "--server-side", "-f", str(folder / "gateway.networking.k8s.io_httproutes.yaml")
    )
    eventually(
        "HTTPRoutes served",
        lambda: any(
            r["name"] == "httproutes"
            for r in (get(apiserver, "/apis/gateway.networking.k8s.io/v1") or {}).get(
                "resources", []
            )
        ),
    )


BINDINGS = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
SHAPE_POLICY = f"{BINDINGS}/cadre-trainingjob-shape"


@pytest.fixture
def without_shape_policy(apiserver: LocalCluster) -> Iterator[None]:
    """No cadre-trainingjob-shape binding (a cluster where the admission policies are not
    installed), put back as it was after the test."""
    binding = get(apiserver, SHAPE_POLICY)
    if binding is not None:
        apiserver.api.call("DELETE", SHAPE_POLICY, ok=(404,))
        # The API server lets go of a binding asynchronously: wait until a dry-run change
        # of a running job passes.
        ns = apiserver.create_namespace(f"shape-probe-{uuid.uuid4().hex[:6]}")
        try:
            path = running_trainingjob(apiserver, ns, "probe")
            eventually(
                "cadre-trainingjob-shape out of force",
                lambda: (
                    apiserver.api.request(
                        "PATCH",
                        f"{path}?dryRun=All",
                        {"spec": {"workers": 3}},
                        content_type="application/merge-patch+json",
                    )[0]
                    == 200
                ),
            )
        finally:
            apiserver.delete_namespace(ns)
    yield
    if binding is not None:
        for field in ("resourceVersion", "uid", "creationTimestamp", "generation"):
            binding["metadata"].pop(field, None)
        binding["metadata"].pop("managedFields", None)
        apiserver.api.create(BINDINGS, binding, exist_ok=True)
