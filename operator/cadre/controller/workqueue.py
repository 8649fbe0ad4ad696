"""A work queue of object keys with per-key exponential backoff (client-go's workqueue, in
asyncio).

Handlers and timers `add` keys; workers `get` one, reconcile the object it names from
what is observed (level-based: the key says *which* object, never *what happened*) and
call `done`. A key is queued at most once, and never handed to two workers at once: a
key added while it is being reconciled is queued again when that reconcile ends. A failed
reconcile is `retry`-ed after an exponential backoff per key (base, doubling, capped);
a success `forget`s the key's failures. `add_after` delays a key (a TTL, a flush).
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from prometheus_client import Counter, Gauge

from cadre.controller.tasks import wait_at_most

log = structlog.get_logger("cadre.workqueue")

QUEUE_DEPTH = Gauge("cadre_workqueue_depth", "Keys waiting in a work queue.", ["queue"])
QUEUE_RETRIES = Counter(
    "cadre_workqueue_retries_total", "Reconciles that failed and were queued again.", ["queue"]
)

_JITTER: Final = 0.1


class WorkQueue:
    def __init__(self, name: str, *, base_delay: float = 0.5, max_delay: float = 60.0) -> None:
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._again: set[str] = set()
        self._failures: dict[str, int] = {}
        self._delayed: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._depth = QUEUE_DEPTH.labels(name)

    def __len__(self) -> int:
        return len(self._ready)

    def add(self, key: str) -> None:
        if key in self._processing:
            self._again.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.append(key)
        self._depth.set(len(self._ready))
        self._wake.set()

    def add_after(self, key: str, delay: float) -> None:
        """Queue `key` in `delay` seconds (sooner if added meanwhile); the earliest of
        several delayed adds wins."""
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        if self._due.get(key, float("inf")) <= due:
            return
        self._due[key] = due
        heapq.heappush(self._delayed, (due, key))
        self._wake.set()

    def retry(self, key: str) -> float:
        """Queue `key` again after its backoff; returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self.max_delay, self.base_delay * float(2**failures))
        delay *= 1 + random.uniform(-_JITTER, _JITTER)
        QUEUE_RETRIES.labels(self.name).inc()
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """The key reconciled fine: its next failure starts the backoff over."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def sizes(self) -> dict[str, int]:
        """Keys remembered between reconciles (a leak shows here)."""
        return {"workqueue_failures": len(self._failures), "workqueue_delayed": len(self._due)}

    def drop(self, key: str) -> None:
        """The object is gone for good: forget its failures and pending delays."""
        self._failures.pop(key, None)
        self._due.pop(key, None)

    def _promote_due(self) -> float | None:
        """Move due delayed keys to the ready queue; returns seconds to the next one."""
        now = time.monotonic()
        while self._delayed:
            due, key = self._delayed[0]
            if self._due.get(key) != due:
                heapq.heappop(self._delayed)  # superseded by an earlier add
                continue
            if due > now:
                return due - now
            heapq.heappop(self._delayed)
            del self._due[key]
            self.add(key)
        return None

    async def get(self) -> str:
        while True:
            wait = self._promote_due()
            if self._ready:
                key = self._ready.popleft()
                self._queued.discard(key)
                self._processing.add(key)
                self._depth.set(len(self._ready))
                return key
            self._wake.clear()
            await wait_at_most(self._wake.wait(), wait)

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    async def run_workers(
        self,
        count: int,
        reconcile: Callable[[str], Awaitable[float | None]],
        on_error: Callable[[str, BaseException], None],
    ) -> None:
        """Run `count` workers until cancelled. `reconcile(key)` returns a delay to look
        at the key again (None: only when something changes); an exception is passed to
        `on_error` and the key retried with backoff."""

        async def worker() -> None:
            while True:
                key = await self.get()
                try:
                    again = await reconcile(key)
                except asyncio.CancelledError:
                    self.done(key)
                    raise
                except Exception as err:
                    on_error(key, err)
                    self.done(key)
                    self.retry(key)
                    continue
                self.forget(key)
                self.done(key)
                if again is not None:
                    self.add_after(key, again)
                # get() does not wait while keys are ready, and a reconcile with nothing
                # to write does not either: without this, 50,000 keys after a resync ran
                # back to back and held the event loop (and the leader's lease renewal)
                # for 25 s.
                await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(count)))
