"""The Gateway API path: with a Gateway named in the operator config and the HTTPRoute
CRD installed (from the Gateway API's Go module), a ModelDeployment with a canary gets a
Service per track and an HTTPRoute whose weights are the canary's exact trafficPercent,
updated when it changes. Against a real kube-apiserver; the operator runs under its
ServiceAccount."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from modeldeployments import MDS, modeldeployment

from cadre_process import EXAMPLE_CONFIG, OperatorProcess, operator_kubeconfig, running_operator
from localcluster import LocalCluster
from trainingjobs import get, merge_patch
from waiting import eventually

pytestmark = pytest.mark.integration

ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"


@pytest.fixture(scope="module")
def operator(
    apiserver: LocalCluster, httproute_crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("routes")
    config = yaml.safe_load(Path(EXAMPLE_CONFIG).read_text())
    config["serving"] = {"gateway": {"name": "public", "namespace": "gateways"}}
    path = workdir / "operator-config.yaml"
    path.write_text(yaml.safe_dump(config))
    kubeconfig = operator_kubeconfig(apiserver, workdir / "kubeconfig")
    with running_operator(kubeconfig, workdir, path) as op:
        yield op
        assert op.alive(), op.log_tail()


def test_a_canary_gets_an_httproute_with_its_exact_weights(
    operator: OperatorProcess, apiserver: LocalCluster, namespace: str, team: str, t4_node: str
) -> None:
    canary = {"model": {"uri": "s3://models/ranker/v2"}, "trafficPercent": 30}
    apiserver.api.create(
        MDS.format(ns=namespace),
        modeldeployment("ranker", replicas={"min": 2, "max": 2}, canary=canary),
    )
    route_path = f"{ROUTES.format(ns=namespace)}/ranker"
    route = eventually("the HTTPRoute", lambda: get(apiserver, route_path))
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "gateways",
        }
    ]
    (rule,) = route["spec"]["rules"]
    weights = {b["name"]: b["weight"] for b in rule["backendRefs"]}
    assert weights == {"ranker-stable": 70, "ranker-canary": 30}
    for track in ("stable", "canary"):
        service = get(apiserver, f"/api/v1/namespaces/{namespace}/services/ranker-{track}")
        assert service is not None
        assert service["spec"]["selector"] == {
            "cadre.dev/modeldeployment": "ranker",
            "cadre.dev/track": track,
        }
    merge_patch(
        apiserver,
        f"{MDS.format(ns=namespace)}/ranker",
        {"spec": {"canary": {"trafficPercent": 50}}},
    )

    def weights_now() -> dict[str, int]:
        current = get(apiserver, route_path) or {"spec": {"rules": [{"backendRefs": []}]}}
        return {b["name"]: b["weight"] for b in current["spec"]["rules"][0]["backendRefs"]}

    eventually("50/50", lambda: weights_now() == {"ranker-stable": 50, "ranker-canary": 50})
    apiserver.api.call("DELETE", MDS.format(ns=namespace), ok=(404,))
