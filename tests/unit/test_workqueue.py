"""The reconcilers' work queue: a key at most once in the queue, never reconciled twice at
once, failures retried with a growing backoff, success forgets them."""

from __future__ import annotations

import asyncio

import pytest

from cadre.controller.workqueue import WorkQueue


def test_a_key_is_queued_once_and_given_to_one_worker_at_a_time() -> None:
    async def scenario() -> list[str]:
        queue = WorkQueue("test")
        queue.add("a")
        queue.add("a")
        queue.add("b")
        assert len(queue) == 2
        first = await queue.get()
        queue.add(first)  # changed while it is reconciled: once more afterwards
        queue.add(first)
        second = await queue.get()
        assert second != first
        assert len(queue) == 0
        queue.done(first)
        third = await asyncio.wait_for(queue.get(), timeout=1)
        return [first, second, third]

    assert asyncio.run(scenario()) == ["a", "b", "a"]


def test_failures_back_off_exponentially_up_to_a_cap_and_success_forgets() -> None:
    queue = WorkQueue("test", base_delay=0.5, max_delay=4.0)
    delays = [queue.retry("k") for _ in range(6)]
    assert delays[0] == pytest.approx(0.5, rel=0.11)
    assert delays[1] == pytest.approx(1.0, rel=0.11)
    assert delays[2] == pytest.approx(2.0, rel=0.11)
    assert all(d == pytest.approx(4.0, rel=0.11) for d in delays[3:])
    assert queue.failures("k") == 6
    queue.forget("k")
    assert queue.retry("k") == pytest.approx(0.5, rel=0.11)


def test_a_delayed_key_comes_when_due_and_the_earliest_delay_wins() -> None:
    async def scenario() -> str:
        queue = WorkQueue("test")
        queue.add_after("k", 30.0)
        queue.add_after("k", 0.01)  # sooner: wins
        queue.add_after("k", 60.0)  # later: ignored
        return await asyncio.wait_for(queue.get(), timeout=2)

    assert asyncio.run(scenario()) == "k"


def test_workers_retry_a_failing_key_until_it_succeeds() -> None:
    calls: list[str] = []
    errors: list[str] = []

    async def reconcile(key: str) -> float | None:
        calls.append(key)
        if len(calls) < 3:
            raise RuntimeError("API down")
        done.set()
        return None

    async def scenario() -> None:
        queue = WorkQueue("test", base_delay=0.01, max_delay=0.05)
        queue.add("k")
        workers = asyncio.create_task(
            queue.run_workers(2, reconcile, lambda key, err: errors.append(str(err)))
        )
        await asyncio.wait_for(done.wait(), timeout=5)
        workers.cancel()
        with pytest.raises(asyncio.CancelledError):
            await workers
        assert queue.failures("k") == 0

    done = asyncio.Event()
    asyncio.run(scenario())
    assert calls == ["k", "k", "k"]
    assert errors == ["API down", "API down"]


def test_a_long_run_of_ready_keys_lets_the_rest_of_the_process_run() -> None:
    """Keys that need nothing (no await in their reconcile) must not hold the event loop:
    50,000 of them after a resync once starved the leader's lease renewal for 25 s."""
    done: list[str] = []
    seen_while_working: list[int] = []

    async def reconcile(key: str) -> float | None:
        done.append(key)  # nothing to write: returns without awaiting anything
        return None

    async def other_task() -> None:
        while len(done) < 1000:
            seen_while_working.append(len(done))
            await asyncio.sleep(0)  # no wait: a bare yield, as any other task of the loop

    async def scenario() -> None:
        queue = WorkQueue("test")
        for i in range(1000):
            queue.add(f"k{i}")
        workers = asyncio.create_task(queue.run_workers(1, reconcile, lambda key, err: None))
        await asyncio.wait_for(other_task(), timeout=5)
        workers.cancel()
        with pytest.raises(asyncio.CancelledError):
            await workers

    asyncio.run(scenario())
    # The other task ran between the keys, not only before the first and after the last.
    assert len([n for n in seen_while_working if 0 < n < 1000]) > 100
