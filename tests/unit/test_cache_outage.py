"""After an outage of the API server (or a stall of the process) the cache relists what
Kopf watches, and only that: Cadre's own watches of TrainingJobs, Jobs and pods repair
themselves, and relisting 16,000 pods each time an overloaded API server answered again
kept S3 relisting back to back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from cadre.controller.cache import (
    AUTOSCALERS,
    BUDGETS,
    DEPLOYMENTS,
    MODELDEPLOYMENTS,
    NAMESPACES,
    NODES,
    Cache,
)
from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.store import Store


class ListingApi:
    """Answers every list with nothing, and says which paths were listed."""

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.listing = asyncio.Event()

    async def versioned_pages(
        self, path: str, label_selector: str | None = None
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        self.listed.append(path)
        self.listing.set()
        yield [], "1"


def test_an_outage_relists_what_kopf_watches_and_not_cadres_own_watches() -> None:
    api = ListingApi()
    config = OperatorConfig.model_validate(
        {
            "flavors": [{"name": "t4", "nodeLabels": {"cadre.dev/flavor": "t4"}}],
            "controller": {"resyncSeconds": 3600},
        }
    )
    client: Any = api
    cache = Cache(
        client,
        Store(),
        config,
        changed=lambda: None,
        reconcile=lambda key: None,
        pod_changed=lambda pod: None,
    )
    kopf_paths = {BUDGETS, NODES, NAMESPACES, MODELDEPLOYMENTS, DEPLOYMENTS, AUTOSCALERS}

    async def outage() -> None:
        resyncs = asyncio.create_task(cache.run())  # the resync loop alone, no watches
        try:
            cache.after_outage()
            async with asyncio.timeout(10):
                while not kopf_paths <= set(api.listed):
                    api.listing.clear()
                    await api.listing.wait()
        finally:
            resyncs.cancel()
            await asyncio.gather(resyncs, return_exceptions=True)

    asyncio.run(outage())
    assert sorted(api.listed) == sorted(kopf_paths)  # no TrainingJobs, Jobs or pods
