"""The watch of every bound pod (placement's view of the nodes) against a real API server:
pods bound to a node appear with their requests and owner, and leave the store when they
finish or are deleted; a relist replaces what was known."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cadre.controller.bound_pods import BoundPodWatch
from cadre.controller.client import ApiClient
from cadre.core.cluster.store import Store
from localcluster import LocalCluster

pytestmark = pytest.mark.integration


def pod(name: str, node: str, gpus: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example/any:1",
                    "resources": {
                        "limits": {"nvidia.com/gpu": str(gpus)},
                        "requests": {"cpu": "500m", "memory": "1Gi"},
                    },
                }
            ],
        },
    }


async def until(
    what: str, check: Callable[[], bool], changed: asyncio.Event, timeout: float = 20.0
) -> None:
    """Wait until `check` holds, woken by the watch's own change signal (it fires after
    every change it makes to the store)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                if check():
                    return
                await changed.wait()
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


Body = Callable[[BoundPodWatch, Store, asyncio.Event], Awaitable[None]]


def run(apiserver: LocalCluster, body: Body) -> int:
    """Run `body` beside a started watch; returns how often it said something changed."""
    changes = [0]

    async def main() -> None:
        client = ApiClient.connect(str(apiserver.kubeconfig))
        store = Store()
        signal = asyncio.Event()

        def changed() -> None:
            changes[0] += 1
            signal.set()

        watch = BoundPodWatch(client, store, changed=changed)
        try:
            await watch.relist()
            watch.start()
            await body(watch, store, signal)
        finally:
            await watch.stop()
            await client.close()

    asyncio.run(main())
    return changes[0]


def test_bound_pods_come_and_go_with_requests_and_owner(
    apiserver: LocalCluster, namespace: str
) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    apiserver.api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
    )

    async def body(watch: BoundPodWatch, store: Store, changed: asyncio.Event) -> None:
        def mine() -> dict[str, Any]:
            return {
                uid: p
                for uid, p in store.bound_pods.items()
                if p.owner is None or p.owner.startswith(f"{namespace}/")
            }

        foreign = apiserver.api.create(pods, pod("foreign", "node-a", 2))
        worker = apiserver.api.create(
            pods, pod("worker", "node-b", 4, {"cadre.dev/trainingjob": "train"})
        )
        apiserver.api.create(pods, pod("pending", "", 1))  # not bound: not counted
        foreign_uid, worker_uid = foreign["metadata"]["uid"], worker["metadata"]["uid"]
        await until(
            "both bound pods seen", lambda: {foreign_uid, worker_uid} <= set(mine()), changed
        )
        seen = store.bound_pods[worker_uid]
        assert seen.node == "node-b"
        assert seen.owner == f"{namespace}/train"
        # limits only for the GPUs: requested at the limit, as the API server defaults it
        assert dict(seen.requests) == {"cpu": 500, "memory": 1 << 30, "nvidia.com/gpu": 4}
        assert store.bound_pods[foreign_uid].owner is None
        assert len(mine()) == 2

        # finished: it leaves the watch's selection
        apiserver.api.patch(f"{pods}/foreign/status", {"status": {"phase": "Succeeded"}})
        await until("a finished pod is gone", lambda: foreign_uid not in store.bound_pods, changed)
        apiserver.api.call("DELETE", f"{pods}/worker?gracePeriodSeconds=0")
        await until("a deleted pod is gone", lambda: worker_uid not in store.bound_pods, changed)

        # a relist is the truth: what the store had but the cluster does not is dropped
        store.bound_pods["ghost"] = seen
        await watch.relist()
        assert "ghost" not in store.bound_pods

    assert run(apiserver, body) >= 4
