"""Waiting on a condition in tests: poll until it holds, never sleep a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from localcluster.api import ApiError

T = TypeVar("T")


def eventually(
    what: str,
    fn: Callable[[], T | None],
    timeout: float = 30,
    interval: float = 0.1,
    *,
    expected: tuple[type[Exception], ...] = (KeyError, OSError, ApiError),
    state: Callable[[], object] | None = None,
) -> T:
    """Call `fn` until it returns something truthy, and return that; fail after `timeout`
    seconds naming `what` (and the last of the `expected` errors, which count as "not
    yet"; and what `state` returns then, to say what was still in the way)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except expected as err:
            last = err
        if time.monotonic() >= deadline:
            detail = f" (last error: {last})" if last else ""
            if state is not None:
                detail += f"; still: {state()}"
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)
