"""Status writes against the API server: the writer replaces the status subresource with
a body that names the object and carries its status alone (`ApiClient.replace_status`),
on the condition of the resourceVersion it computed from. The server keeps the rest of
the object, drops a status field the writer no longer wants, refuses a stale base (409:
the writer reads again and writes once more), and records the write as the status's
manager. In-process: the writer and its store, no watches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from modeldeployments import MDS, modeldeployment

from cadre.controller.client import ApiClient, ApiError
from cadre.controller.status_writer import StatusWriter
from cadre.core.api.config import parse_config
from cadre.core.cluster.store import Store
from cadre_process import EXAMPLE_CONFIG
from localcluster import LocalCluster
from trainingjobs import TJS, get, merge_patch, trainingjob

pytestmark = pytest.mark.integration


def test_a_status_write_replaces_the_status_alone_and_only_from_its_base(
    apiserver: LocalCluster, namespace: str
) -> None:
    tjs = TJS.format(ns=namespace)
    manifest = trainingjob("replaced", workers=1)
    manifest["metadata"]["labels"] = {"owner": "alice"}
    created = apiserver.api.create(tjs, manifest)
    key = f"{namespace}/replaced"

    async def run() -> StatusWriter:
        client = ApiClient.connect(str(apiserver.kubeconfig))
        try:
            store = Store()
            writer = StatusWriter(client, store, parse_config(EXAMPLE_CONFIG.read_text()))
            store.upsert_trainingjob(created)
            first = {"phase": "Queued", "observedGeneration": 1, "queue": {"position": 3}}
            assert await writer.update(key, lambda status, obj: first) is not None
            # Someone else writes the object after the cache saw it: the next write's
            # base is stale, the server refuses it, the writer reads and writes again.
            merge_patch(apiserver, f"{tjs}/replaced", {"metadata": {"labels": {"x": "y"}}})
            second = {"phase": "Queued", "observedGeneration": 1}  # the queue place gone
            assert await writer.update(key, lambda status, obj: second) is not None
            # Unchanged: nothing is written.
            assert await writer.update(key, lambda status, obj: second) is None
            return writer
        finally:
            await client.close()

    writer = asyncio.run(run())
    assert (writer.writes, writer.conflicts) == (2, 1)
    stored = get(apiserver, f"{tjs}/replaced")
    assert stored is not None
    assert stored["status"] == {"phase": "Queued", "observedGeneration": 1}
    assert stored["spec"] == created["spec"]  # a status write never touches the spec
    assert stored["metadata"]["labels"] == {"owner": "alice", "x": "y"}
    (status_manager,) = [
        m for m in stored["metadata"]["managedFields"] if m.get("subresource") == "status"
    ]
    assert status_manager["operation"] == "Update"
    assert set(status_manager["fieldsV1"]["f:status"]) == {".", "f:phase", "f:observedGeneration"}


def test_a_modeldeployments_status_is_replaced_the_same_way(
    apiserver: LocalCluster, namespace: str
) -> None:
    mds = MDS.format(ns=namespace)
    created = apiserver.api.create(mds, modeldeployment("served"))
    version = created["metadata"]["resourceVersion"]

    async def run() -> dict[str, Any]:
        client = ApiClient.connect(str(apiserver.kubeconfig))
        try:
            written = await client.replace_status(
                f"{mds}/served", {"phase": "Pending"}, resource_version=version
            )
            with pytest.raises(ApiError) as stale:
                await client.replace_status(
                    f"{mds}/served", {"phase": "Ready"}, resource_version=version
                )
            assert stale.value.status == 409
            return written
        finally:
            await client.close()

    written = asyncio.run(run())
    assert written["status"] == {"phase": "Pending"}
    assert written["spec"] == created["spec"]
