"""A new leader's takeover read on a real API server: a kind listed whole by a list sent
after the Lease was taken is not listed again; a kind listed before is, and what changed
since that list (unseen by the cache: no watch runs here) comes in."""

from __future__ import annotations

import asyncio
import time

from cadre.controller.cache import Cache
from cadre.controller.client import ApiClient, ClientSettings
from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.store import Store
from localcluster import LocalCluster
from trainingjobs import TJS, trainingjob


def test_the_takeover_read_lists_only_what_was_listed_before_the_lease(
    apiserver: LocalCluster, namespace: str
) -> None:
    path = TJS.format(ns=namespace)
    apiserver.api.create(path, trainingjob("before"))

    async def scenario() -> None:
        client = ApiClient.connect(str(apiserver.kubeconfig), ClientSettings(retries=0))
        store = Store()
        cache = Cache(
            client,
            store,
            OperatorConfig.model_validate(
                {"flavors": [{"name": "t4", "nodeLabels": {"cadre.dev/flavor": "t4"}}]}
            ),
            changed=lambda: None,
            reconcile=lambda key: None,
            pod_changed=lambda pod: None,
        )
        try:
            lease_taken = time.monotonic()  # the Lease, then the fill's lists
            await cache.fill()
            assert f"{namespace}/before" in store.trainingjobs
            # Created after the fill: only a list can show it to this watchless cache.
            apiserver.api.create(path, trainingjob("after"))

            await cache.sync_for_takeover(lease_taken)
            assert f"{namespace}/after" not in store.trainingjobs  # nothing listed again

            await cache.sync_for_takeover(time.monotonic())  # the Lease taken after the fill
            assert f"{namespace}/after" in store.trainingjobs
        finally:
            await client.close()

    asyncio.run(scenario())
