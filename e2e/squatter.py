"""A pod Cadre does not manage that holds GPUs of a node: what admission, which counts a
flavour's capacity in sum over its nodes, does not see (node-level fit is issue #14)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from localcluster import LocalCluster
from waiting import eventually


@contextmanager
def squatting(cluster: LocalCluster, flavor: str = "t4", gpus: int = 2) -> Iterator[str]:
    """A bare pod holding `gpus` GPUs of one `flavor` node, in a namespace no budget covers
    (the GPU admission policy does not apply there), running for as long as the block; the
    pod's API path (delete it to free the GPUs early)."""
    namespace = cluster.create_namespace(f"foreign-{uuid.uuid4().hex[:6]}")
    pods = f"/api/v1/namespaces/{namespace}/pods"
    cluster.api.create(
        pods,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "squatter"},
            "spec": {
                "nodeSelector": {"cadre.dev/flavor": flavor},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                "containers": [
                    {
                        "name": "main",
                        "image": "registry.example/other:1",
                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    }
                ],
            },
        },
    )
    path = f"{pods}/squatter"
    try:
        eventually(
            f"the foreign pod runs on a {flavor} node",
            lambda: cluster.api.get(path).get("status", {}).get("phase") == "Running",
        )
        yield path
    finally:
        cluster.api.call("DELETE", f"{path}?gracePeriodSeconds=0", ok=(404,))
        cluster.delete_namespace(namespace)
