"""The operator's long-running tasks (the admission loop, the queue-status writer, the
budget writer, the resync) share one way to start, stop and report liveness."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable


async def wait_at_most(awaitable: Awaitable[object], seconds: float | None) -> bool:
    """Await `awaitable` for at most `seconds` (None: no limit); True when it completed.

    Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that arrives as the
    awaited thing completes (CPython gh-86296), and a loop whose event is set all the
    time under load then never stops: a replica that lost its lease kept running its
    admission loop for 16 minutes instead of exiting (S2, docs/benchmarks.md).
    `asyncio.timeout` keeps the cancellation."""
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        return False
    return True


class BackgroundTask(ABC):
    """One asyncio task running `run()` until stopped. `alive()` is False when it ended
    on its own (a bug): the liveness probe fails and the kubelet restarts the pod."""

    task_name = "cadre task"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run(self) -> None:
        """The task's body; runs until cancelled."""

    def _starting(self) -> None:  # noqa: B027 (a hook; most tasks need nothing here)
        """Called by start() before the task runs (to wake it at once, say)."""

    def start(self) -> None:
        self._starting()
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def alive(self) -> bool:
        return self._task is None or not self._task.done()
