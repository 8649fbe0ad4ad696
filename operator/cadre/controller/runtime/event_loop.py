"""The operator's event loop: uvloop's by default, asyncio's own on request.

The operator is a few hundred requests a second over TLS at scale. asyncio's TLS layer
(`sslproto`) and its selector loop are plain Python; uvloop's are C (libuv), the same
event loop API. Kopf uses uvloop for its own CLI when it is installed. `controller.eventLoop:
asyncio` is the way back if a platform has no wheel for it or a bug shows up there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvloop

from cadre.core.api.config import EventLoopName


def event_loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new event loop of the named kind (for `asyncio.Runner`)."""
    if name == "uvloop":
        return uvloop.new_event_loop
    return asyncio.new_event_loop
