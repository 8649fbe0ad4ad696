"""The place a waiting job's status gives: exact near the head, a range behind."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cadre.core.workloads.queue import queue_place


def bounds(text: str) -> tuple[int, int]:
    low, high = text.replace(",", "").split("-")
    return int(low), int(high)


@given(st.integers(1, 10**7), st.integers(1, 1000))
def test_the_place_is_exact_at_the_head_and_a_range_holding_it_behind(
    position: int, exact: int
) -> None:
    place = queue_place(position, exact)
    assert (place.position is None) != (place.range is None)
    if position <= exact:
        assert place.position == position
    else:
        assert place.range is not None
        low, high = bounds(place.range)
        assert exact < low <= position <= high
        assert high == low * 10 - 10 or low == exact + 1  # tenfold bounds


@given(st.integers(1, 10**6), st.integers(1, 100), st.integers(1, 50))
def test_a_move_up_changes_few_places(length: int, exact: int, moved: int) -> None:
    """A queue of `length` moving up by `moved` places changes the stored place of the
    head, and of the jobs crossing a range's bound: never the whole queue (issue #15)."""
    length = min(length, 20_000)
    changed = sum(
        queue_place(p, exact) != queue_place(p - moved, exact) for p in range(moved + 1, length + 1)
    )
    bound_count = 0
    high = exact
    while high < length:
        high *= 10
        bound_count += 1
    assert changed <= exact + moved * bound_count
