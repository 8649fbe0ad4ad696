"""A TrainingJob deleted while the cache still holds it (a ghost: its DELETED event was
missed, or an answer came after it) gets no second Job: the loop made its Job once for
this admission, the Job went, so it reads the TrainingJob before making another. Without
that, the garbage collector deleted each Job as an orphan and the loop made it again,
724 times until the resync (bench_churn, sixteenth sitting in docs/benchmarks.md).
In-process against the API server: the admission loop and its store, no watches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cadre.controller.admission_loop import AdmissionLoop
from cadre.controller.client import ApiClient
from cadre.controller.queue_status import QueueStatusWriter
from cadre.controller.status_writer import StatusWriter
from cadre.core.api.config import parse_config
from cadre.core.cluster.store import Store
from cadre_process import EXAMPLE_CONFIG
from localcluster import LocalCluster
from trainingjobs import TJS, get, trainingjob

pytestmark = pytest.mark.integration


def test_a_ghost_trainingjob_gets_no_second_job(
    apiserver: LocalCluster, namespace: str, team: str
) -> None:
    tjs = TJS.format(ns=namespace)
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    created = apiserver.api.create(tjs, trainingjob("ghost", workers=1))
    key = f"{namespace}/ghost"
    # The cache's view: admitted (an admission this replica wrote).
    cached: dict[str, Any] = created | {
        "status": {"phase": "Admitted", "admission": {"id": "adm-1", "team": team}}
    }

    async def run() -> tuple[bool, int]:
        client = ApiClient.connect(str(apiserver.kubeconfig))
        try:
            config = parse_config(EXAMPLE_CONFIG.read_text())
            store = Store()
            status = StatusWriter(client, store, config)
            loop = AdmissionLoop(
                client, store, config, status, QueueStatusWriter(store, config, status)
            )
            store.upsert_trainingjob(cached)
            await loop._create_job(key)
            first = get(apiserver, f"{jobs}/ghost")
            assert first is not None, "the admitted job's Job"
            # The TrainingJob goes, and its Job with it (the garbage collector's work),
            # while the cache misses the TrainingJob's DELETED event.
            apiserver.api.call("DELETE", f"{tjs}/ghost")
            apiserver.api.call("DELETE", f"{jobs}/ghost?propagationPolicy=Background")
            store.delete_job(key, uid=first["metadata"]["uid"])
            assert store.awaits_job(key)  # the ghost: admitted, its Job missing
            await loop._create_job(key)
            return key in store.trainingjobs, loop.sizes()["jobs_made"]
        finally:
            await client.close()

    still_cached, jobs_made = asyncio.run(run())
    assert not still_cached, "the ghost is dropped from the cache"
    assert jobs_made == 0, "and forgotten by the loop"
    assert apiserver.api.get(jobs)["items"] == [], "no Job was made for the ghost"
