"""Every pod bound to a node and not finished, cluster-wide: what the admission pass needs
to place gangs on nodes as they are (`cadre.core.cluster.nodes`).

Kopf's pod watch selects Cadre's pods by label (accounting); this one selects by field
(`spec.nodeName` set, not Succeeded or Failed) and keeps a few numbers per pod, so a
cluster of 10,000 pods costs a small dict, not 10,000 pod objects. A list, then a watch
from its resourceVersion with bookmarks (`cadre.controller.watches.ListWatch`); an expired
version (410) or a refused watch lists again, and the list replaces what was known
(level-based: a missed event is repaired). Every replica runs it (a standby's cache stays
warm); it never writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from cadre.controller.client import ApiClient
from cadre.controller.watches import ListWatch
from cadre.core.cluster.nodes import BoundPod, bound_pod
from cadre.core.cluster.store import Store

PODS: Final = "/api/v1/pods"
BOUND_SELECTOR: Final = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"


class BoundPodWatch(ListWatch):
    """A `ListWatch` of bound pods whose listing replaces the store's table."""

    def __init__(self, client: ApiClient, store: Store, *, changed: Callable[[], None]) -> None:
        super().__init__(
            client,
            kind="bound pod",
            path=PODS,
            field_selector=BOUND_SELECTOR,
            apply=self._apply_event,
            relist=self.relist,
            version=lambda: self._listed,
        )
        self.store = store
        self._changed = changed
        self._listed: str | None = None
        """The version of a listing not yet watched from (None: list first)."""

    async def relist(self) -> str:
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
        self._listed = version
        if changed:
            self._changed()
        return version

    def _apply_event(self, kind: str, pod: Mapping[str, Any]) -> None:
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        if not uid:
            return
        record = None if kind == "DELETED" else bound_pod(pod)
        if self.store.set_bound_pod(uid, record):
            self._changed()
