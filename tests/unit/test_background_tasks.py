"""A background loop must stop when its task is cancelled, even when the event it waits
on is set in the same instant (as under load, where it is set all the time)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

import pytest

from cadre.controller.tasks import wait_at_most

Wait = Callable[[Awaitable[object], float | None], Awaitable[object]]


async def _cancel_as_the_event_is_set(wait: Wait) -> str:
    """A loop waiting on an event is cancelled as its event is set; how it ends."""
    event = asyncio.Event()

    async def loop() -> None:
        for _ in range(3):  # bounded: a loop that lost the cancel ends on its own
            with contextlib.suppress(TimeoutError):  # wait_for raises it, as it times out
                await wait(event.wait(), 0.05)
            event.clear()

    task = asyncio.create_task(loop())
    for _ in range(3):  # yields, not time: the loop (and wait_for's inner task) start waiting
        await asyncio.sleep(0)
    event.set()
    await asyncio.sleep(0)  # what waits on the event completes...
    task.cancel()  # ...and the cancel arrives before the loop has seen it
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "kept running"


def test_wait_at_most_keeps_a_cancel_that_arrives_with_the_event() -> None:
    assert asyncio.run(_cancel_as_the_event_is_set(wait_at_most)) == "cancelled"


@pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="CPython 3.12 rewrote wait_for on asyncio.timeout (gh-86296)",
)
def test_the_python_311_wait_for_loses_that_cancel() -> None:
    """Why wait_at_most exists: the same loop on asyncio.wait_for runs on."""
    assert asyncio.run(_cancel_as_the_event_is_set(asyncio.wait_for)) == "kept running"


def test_wait_at_most_says_whether_it_timed_out() -> None:
    async def scenario() -> tuple[bool, bool]:
        event = asyncio.Event()
        timed_out = await wait_at_most(event.wait(), 0.01)
        event.set()
        done = await wait_at_most(event.wait(), 1.0)
        return timed_out, done

    assert asyncio.run(scenario()) == (False, True)
