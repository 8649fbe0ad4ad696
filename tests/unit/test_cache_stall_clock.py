"""The cache's resync clock: a late wait is a stall, the loop's own slow work is not; a long
relist spaces the next one out."""

from __future__ import annotations

import pytest

from cadre.controller.cache import RESYNC_DUTY, STALL_SECONDS, StallClock, resync_due


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


def test_a_short_relist_is_followed_by_the_next_one_after_the_interval() -> None:
    assert resync_due(started=100.0, ended=101.0, interval=300.0) == 401.0


def test_a_long_relist_takes_at_most_its_duty_of_the_time() -> None:
    """S2 at 50,000 TrainingJobs: a relist took 93 s; every 300 s it took a third of the
    API server. The next starts nine lengths later: relisting is a tenth of the time."""
    due = resync_due(started=100.0, ended=193.0, interval=300.0)
    assert due == 193.0 + 93 * 9
    assert 93 / (due - 100.0) == pytest.approx(RESYNC_DUTY)
