"""Cadre's own list-and-watch of a kind, for the busiest ones: TrainingJobs, their Jobs, and
bound pods (`bound_pods.py`).

Kopf hands each event to a per-object worker, with its own bookkeeping, before a handler
sees it; at 15,000 TrainingJobs arriving in a minute (Kueue's scenario, S1 in
docs/benchmarks.md) that intake, not the admission pass, decided how long every job
waited, whatever its priority. Here a watch stream's events go straight into the cache
(`Cache.apply_trainingjob`, `apply_job`), in the order the API server sent them, as
client-go's reflector does: list, then watch from the list's resourceVersion with
bookmarks; an expired version (410), a broken stream or a refused watch lists again,
and the cache merges the listing by time (objects gone meanwhile are dropped:
level-based, a missed event is repaired). Every replica runs them (a standby's cache
stays warm); they never write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import structlog
from prometheus_client import Counter

from cadre.controller.client import ApiClient, ApiError, ApiUnreachableError
from cadre.controller.tasks import BackgroundTask

log = structlog.get_logger("cadre.watch")

WATCH_SECONDS: Final = 300
"""The server ends each watch request after this long; a new one starts from the last
version seen."""
RETRY_SECONDS: Final = 1.0

WATCH_EVENTS = Counter(
    "cadre_watch_events_total", "Watch events taken into the cache, by kind.", ["kind"]
)
WATCH_RELISTS = Counter(
    "cadre_watch_relists_total",
    "Lists made again by a watch (its version expired, or the watch was refused), by kind.",
    ["kind"],
)


class ListWatch(BackgroundTask):
    """Watch `path` (with its selectors) from `version()`, the version of the cache's last
    listing of it; each event goes to `apply(type, object)`; when the watch cannot
    go on from where it was, `relist()` lists again (and returns the list's version)."""

    def __init__(
        self,
        client: ApiClient,
        *,
        kind: str,
        path: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        apply: Callable[[str, Mapping[str, Any]], None],
        relist: Callable[[], Awaitable[str]],
        version: Callable[[], str | None],
    ) -> None:
        super().__init__()
        self.task_name = f"cadre {kind} watch"
        self.client = client
        self.kind = kind
        self.path = path
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._apply = apply
        self._relist = relist
        self._listed_version = version
        self._version: str | None = None

    async def _watch(self, version: str) -> None:
        """One watch request from `version`, until the server ends it."""
        self._version = version
        query = {
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        if self.label_selector:
            query["labelSelector"] = self.label_selector
        if self.field_selector:
            query["fieldSelector"] = self.field_selector
        events = WATCH_EVENTS.labels(self.kind)
        async for event in self.client.watch(self.path, query, read_timeout=WATCH_SECONDS + 30):
            obj = event.get("object") or {}
            self._version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            kind = str(event.get("type") or "")
            if kind == "BOOKMARK":
                continue
            events.inc()
            self._apply(kind, obj)

    async def run(self) -> None:
        version = self._listed_version()  # the cache's fill listed this kind just now
        while True:
            try:
                if not version:
                    WATCH_RELISTS.labels(self.kind).inc()
                    version = await self._relist()
                await self._watch(version)
                version = self._version
            except asyncio.CancelledError:
                raise
            except ApiUnreachableError as err:
                log.info("watch cut; watching again", kind=self.kind, error=str(err))
                version = self._version  # a cut stream resumes where it was (410: relist)
                await asyncio.sleep(RETRY_SECONDS)
            except ApiError as err:
                if err.status != 410:
                    log.warning("watch failed; listing again", kind=self.kind, error=str(err))
                    await asyncio.sleep(RETRY_SECONDS)
                version = None  # expired (410) or refused: list again
            except Exception:  # a bad event must not end the watch: list again
                log.exception("watch broke; listing again", kind=self.kind)
                version = None
                await asyncio.sleep(RETRY_SECONDS)
