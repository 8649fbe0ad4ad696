"""The admission loop's pacing: at once when idle, one pass per minInterval under load."""

from __future__ import annotations

from cadre.controller.admission_loop import PASS_BURST, PassPacer


def test_an_idle_loop_decides_at_once_even_after_its_own_echo() -> None:
    pacer = PassPacer(1.0)
    pacer.take(100.0)  # a pass
    pacer.take(100.1)  # the echo of its own writes
    # A new job 0.9 s later: one pass ago, but within the burst the quiet spell refilled.
    assert pacer.wait(101.05) == 0.0


def test_under_load_one_pass_per_interval() -> None:
    pacer = PassPacer(1.0)
    now = 0.0
    starts = []
    for _ in range(12):
        now += pacer.wait(now)
        pacer.take(now)
        starts.append(now)
    assert starts[:PASS_BURST] == [0.0] * PASS_BURST
    gaps = [b - a for a, b in zip(starts[PASS_BURST:], starts[PASS_BURST + 1 :], strict=False)]
    assert all(abs(gap - 1.0) < 1e-9 for gap in gaps)


def test_no_minimum_interval_never_waits() -> None:
    pacer = PassPacer(0.0)
    for i in range(5):
        assert pacer.wait(float(i)) == 0.0
        pacer.take(float(i))
