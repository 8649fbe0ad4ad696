"""Python's cyclic garbage collector, set for an operator that holds a large cache.

Measured in S1 (docs/benchmarks.md, fifteenth sitting): 84 s of the operator's 263 s of
CPU went to the collector, 55 s of them in 143 full collections over some 400,000 objects,
each holding the GIL (and so the event loop) for up to 0.67 s. Two causes:

- With CPython's default first threshold (700 net allocations), an admission pass's
  temporaries, which live for about a second, go through several collections and reach
  the oldest generation; that counts them towards the next full collection, which then
  scans the whole cache to free them. With a threshold of tens of thousands, a
  collection is rarer, each one scans what is young then (the cost per object is the
  same), and far fewer short-lived objects are promoted.
- What lives for the whole run (the modules, what the first fill brought in) is scanned
  by every full collection: `freeze_survivors` moves it out of the collector's sight.
  Reference counting still frees these objects when they go; only a reference cycle
  among them would stay, and cached objects (parsed JSON) hold none.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

PAUSE_SECONDS = Histogram(
    "cadre_gc_pause_seconds",
    "Collections of Python's cyclic garbage collector in the operator, by generation "
    "(2 is a full collection), and how long each held the process.",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


class _PauseTimer:
    """A `gc.callbacks` entry that times each collection."""

    def __init__(self) -> None:
        self._started = 0.0
        self._children = [PAUSE_SECONDS.labels(str(g)) for g in range(3)]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._children[info["generation"]].observe(time.perf_counter() - self._started)


_TIMER = _PauseTimer()


def set_collector(first_threshold: int) -> None:
    """Raise the youngest generation's threshold and time every collection. Idempotent."""
    _, second, third = gc.get_threshold()
    gc.set_threshold(first_threshold, second, third)
    if _TIMER not in gc.callbacks:
        gc.callbacks.append(_TIMER)


def freeze_survivors() -> None:
    """Collect once, then leave what survived out of every later collection (called after
    the cache's first fill, when what remains is what the process keeps)."""
    gc.collect()
    gc.freeze()
