"""The admission loop's pacing: passes apart in proportion to their computation."""

from __future__ import annotations

from cadre.controller.admission_loop import MIN_SPACING, PASSES_PER_COMPUTE, PassPacer


def test_the_first_pass_runs_at_once() -> None:
    assert PassPacer(1.0).wait(0.0) == 0.0


def test_a_cheap_pass_leaves_the_loop_free_for_the_next_change() -> None:
    # An idle cluster, one job a second: a pass computing 20 ms holds the next 200 ms.
    pacer = PassPacer(1.0)
    pacer.ran(100.0, 0.02)
    assert abs(pacer.wait(100.05) - (MIN_SPACING - 0.05)) < 1e-9
    assert pacer.wait(100.0 + MIN_SPACING) == 0.0
    pacer.ran(200.0, 0.1)  # 100 ms of computation: the next 400 ms later
    assert abs(pacer.wait(200.0) - PASSES_PER_COMPUTE * 0.1) < 1e-9


def test_under_load_one_pass_per_min_interval() -> None:
    pacer = PassPacer(1.0)
    pacer.ran(10.0, 0.4)  # 1.6 s asked, 1 s at most (start to start)
    assert abs(pacer.wait(10.4) - 0.6) < 1e-9
    assert pacer.wait(11.0) == 0.0


def test_long_writes_after_the_computation_add_no_wait() -> None:
    pacer = PassPacer(1.0)
    pacer.ran(10.0, 0.3)  # then 13 s of writes: the next pass may start when they end
    assert pacer.wait(23.3) == 0.0


def test_passes_compute_at_most_a_quarter_of_the_time_below_the_cap() -> None:
    pacer = PassPacer(10.0)
    now, busy = 0.0, 0.0
    for _ in range(50):
        now += pacer.wait(now)
        pacer.ran(now, 0.2)
        now += 0.2
        busy += 0.2
    assert busy / now <= 1 / PASSES_PER_COMPUTE + 0.01


def test_no_interval_never_waits() -> None:
    pacer = PassPacer(0.0)  # minIntervalMs 0: passes back to back, as configured
    pacer.ran(0.0, 5.0)
    assert pacer.wait(0.0) == 0.0


def test_a_pass_that_waits_gathers_a_burst_after_the_change_it_noticed() -> None:
    pacer = PassPacer(1.0, debounce=0.2)
    pacer.ran(10.0, 0.3)  # the next pass may start at 11.0
    # A change noticed just before: 200 ms from then, beyond the pacer's wait.
    assert abs(pacer.wait(10.95, noticed=10.95) - 0.2) < 1e-9
    # Noticed long before the pacer lets the pass start: the wait has gathered the burst
    # already, and the pass starts when the pacer allows (no debounce added on top).
    assert abs(pacer.wait(10.5, noticed=10.5) - 0.5) < 1e-9
    assert abs(pacer.wait(10.9, noticed=10.5) - 0.1) < 1e-9


def test_a_change_with_nothing_to_wait_out_is_decided_at_once_whatever_the_debounce() -> None:
    pacer = PassPacer(1.0, debounce=0.2)
    pacer.ran(10.0, 0.05)  # an idle cluster: the next pass may start at 10.2
    assert pacer.wait(12.0, noticed=12.0) == 0.0
