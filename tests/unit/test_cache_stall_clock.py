"""The cache's stall detector: a late wait is a stall, the loop's own slow work is not."""

from __future__ import annotations

from cadre.controller.cache import STALL_SECONDS, StallClock


def test_a_wait_that_ends_on_time_is_no_stall() -> None:
    clock = StallClock()
    clock.waiting(1.0, now=100.0)
    assert clock.late(101.02) is None


def test_a_wait_that_ends_long_after_it_was_due_is_a_stall() -> None:
    clock = StallClock()
    clock.waiting(1.0, now=100.0)
    assert clock.late(101.0 + STALL_SECONDS + 3.0) == STALL_SECONDS + 3.0


def test_a_long_resync_between_waits_is_work_not_a_stall() -> None:
    # 18 s of resync between two waits made every resync trigger the next one.
    clock = StallClock()
    clock.waiting(1.0, now=100.0)
    assert clock.late(101.0) is None
    resync_done = 101.0 + 18.0
    clock.waiting(1.0, now=resync_done)
    assert clock.late(resync_done + 1.0) is None


def test_nothing_is_late_before_any_wait() -> None:
    assert StallClock().late(1e9) is None
