"""Every pod bound to a node and not finished, cluster-wide: what the admission pass needs
to place gangs on nodes as they are (`cadre.core.cluster.nodes`).

Kopf's pod watch selects Cadre's pods by label (accounting); this one selects by field
(`spec.nodeName` set, not Succeeded or Failed) and keeps a few numbers per pod, so a
cluster of 10,000 pods costs a small dict, not 10,000 pod objects. A list, then a watch
from its resourceVersion with bookmarks; an expired version (410) or a broken stream lists
again, and the list replaces what was known (level-based: a missed event is repaired).
Every replica runs it (a standby's cache stays warm); it never writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

import structlog

from cadre.controller.client import ApiClient, ApiError, ApiUnreachableError
from cadre.controller.tasks import BackgroundTask
from cadre.core.cluster.nodes import BoundPod, bound_pod
from cadre.core.cluster.store import Store

log = structlog.get_logger("cadre.bound_pods")

PODS: Final = "/api/v1/pods"
BOUND_SELECTOR: Final = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
WATCH_SECONDS: Final = 300
RETRY_SECONDS: Final = 2.0


class BoundPodWatch(BackgroundTask):
    task_name = "cadre bound pods"

    def __init__(self, client: ApiClient, store: Store, *, changed: Callable[[], None]) -> None:
        super().__init__()
        self.client = client
        self.store = store
        self._changed = changed
        self._version: str | None = None

    async def relist(self) -> None:
        """List every bound pod; the listing replaces what the store knew."""
        listed: dict[str, BoundPod] = {}
        version = ""
        async for page, page_version in self.client.versioned_pages(
            PODS, field_selector=BOUND_SELECTOR
        ):
            version = page_version
            for pod in page:
                uid = str((pod.get("metadata") or {}).get("uid") or "")
                record = bound_pod(pod)
                if uid and record is not None:
                    listed[uid] = record
        changed = listed != self.store.bound_pods or not self.store.bound_pods_listed
        self.store.bound_pods = listed
        self.store.bound_pods_listed = True
        self._version = version
        if changed:
            self._changed()

    async def _watch(self) -> None:
        """One watch request from the last version seen, until the server ends it."""
        assert self._version is not None
        query = {
            "fieldSelector": BOUND_SELECTOR,
            "resourceVersion": self._version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        async for event in self.client.watch(PODS, query, read_timeout=WATCH_SECONDS + 30):
            obj = event.get("object") or {}
            metadata = obj.get("metadata") or {}
            self._version = str(metadata.get("resourceVersion") or self._version)
            kind = event.get("type")
            if kind == "BOOKMARK":
                continue
            uid = str(metadata.get("uid") or "")
            if not uid:
                continue
            record = None if kind == "DELETED" else bound_pod(obj)
            if self.store.set_bound_pod(uid, record):
                self._changed()

    async def run(self) -> None:
        while True:
            try:
                if self._version is None:
                    await self.relist()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except ApiUnreachableError as err:
                log.info("bound pods watch cut; listing again", error=str(err))
                self._version = None
                await asyncio.sleep(RETRY_SECONDS)
            except ApiError as err:
                if err.status != 410:
                    log.warning("bound pods watch failed; listing again", error=str(err))
                    await asyncio.sleep(RETRY_SECONDS)
                self._version = None  # expired (410) or refused: list again
            except Exception:  # a bad event must not end the watch: list again
                log.exception("bound pods watch broke; listing again")
                self._version = None
                await asyncio.sleep(RETRY_SECONDS)
