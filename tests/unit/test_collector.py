"""The operator's settings of Python's garbage collector (cadre.controller.runtime.collector)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from cadre.controller.runtime.collector import freeze_survivors, set_collector


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks
    gc.unfreeze()


def collections(generation: int) -> float:
    value = REGISTRY.get_sample_value(
        "cadre_gc_pause_seconds_count", {"generation": str(generation)}
    )
    return value or 0.0


@pytest.mark.usefixtures("restored")
def test_the_first_threshold_is_raised_and_the_others_kept() -> None:
    gc.set_threshold(700, 10, 10)
    set_collector(50_000)
    set_collector(50_000)  # twice: one timer
    assert gc.get_threshold() == (50_000, 10, 10)
    assert sum(1 for cb in gc.callbacks if type(cb).__name__ == "_PauseTimer") == 1


@pytest.mark.usefixtures("restored")
def test_each_collection_is_timed_by_generation() -> None:
    set_collector(50_000)
    before = [collections(g) for g in range(3)]
    gc.collect(0)
    gc.collect(2)
    after = [collections(g) for g in range(3)]
    assert after[0] == before[0] + 1
    assert after[1] == before[1]
    assert after[2] == before[2] + 1


@pytest.mark.usefixtures("restored")
def test_survivors_leave_the_collectors_sight_and_later_cycles_are_still_collected() -> None:
    kept: list[object] = [{"spec": {}}]
    freeze_survivors()
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
