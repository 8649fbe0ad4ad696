"""The operator's event loop: the configured kind, and a way back to asyncio's."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from pydantic import ValidationError

from cadre.controller.runtime.event_loop import event_loop_factory
from cadre.core.api.config import parse_config

FLAVOURS = "flavors: [{name: a, nodeLabels: {k: v}}]\n"


@pytest.mark.parametrize(("name", "is_uvloop"), [("uvloop", True), ("asyncio", False)])
def test_the_factory_makes_a_loop_of_the_named_kind_that_runs_coroutines(
    name: str, is_uvloop: bool
) -> None:
    async def main() -> bool:
        await asyncio.sleep(0)  # a yield to the loop (one turn of it), not a wait
        return isinstance(asyncio.get_running_loop(), uvloop.Loop)

    with asyncio.Runner(loop_factory=event_loop_factory(name)) as runner:  # type: ignore[arg-type]
        assert runner.run(main()) is is_uvloop


def test_uvloop_is_the_default_and_an_unknown_loop_is_refused() -> None:
    assert parse_config(FLAVOURS).controller.event_loop == "uvloop"
    assert parse_config(FLAVOURS + "controller: {eventLoop: asyncio}\n").controller.event_loop == (
        "asyncio"
    )
    with pytest.raises(ValidationError, match=r"eventLoop|event_loop"):
        parse_config(FLAVOURS + "controller: {eventLoop: trio}\n")
