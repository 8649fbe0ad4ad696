"""Cadre's own list-and-watch (cadre.controller.watches): where each watch request
starts, and when it lists again, against a scripted client. The real API server is in
tests/integration (every TrainingJob test goes through it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from cadre.controller import watches
from cadre.controller.client import ApiError, ApiUnreachableError
from cadre.controller.watches import ListWatch


def event(kind: str, name: str, version: str) -> dict[str, Any]:
    return {"type": kind, "object": {"metadata": {"name": name, "resourceVersion": version}}}


class ScriptedClient:
    """Each watch request plays the next script: its events, then the server's end of
    the request, or the error the script ends with. When the scripts run out, the
    request hangs until the test is done."""

    def __init__(self, *scripts: list[Any]) -> None:
        self.scripts = list(scripts)
        self.queries: list[dict[str, str]] = []
        self.done = asyncio.Event()

    async def watch(
        self, path: str, query: Mapping[str, str], *, read_timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        self.queries.append(dict(query))
        if not self.scripts:
            self.done.set()
            await asyncio.Event().wait()
        for item in self.scripts.pop(0):
            if isinstance(item, BaseException):
                raise item
            yield item


def run(client: ScriptedClient, relists: list[str], **kwargs: Any) -> list[tuple[str, str]]:
    applied: list[tuple[str, str]] = []

    def apply(kind: str, obj: Mapping[str, Any]) -> None:
        if obj["metadata"]["name"] == "poison":
            raise ValueError("a bad event")
        applied.append((kind, obj["metadata"]["name"]))

    async def relist() -> str:
        return relists.pop(0)

    async def scenario() -> None:
        task = ListWatch(
            client,  # type: ignore[arg-type]
            kind="trainingjob",
            path="/apis/cadre.dev/v1alpha1/trainingjobs",
            label_selector=kwargs.get("label_selector"),
            apply=apply,
            relist=relist,
            version=lambda: kwargs.get("listed", "10"),
        )
        task.start()
        await asyncio.wait_for(client.done.wait(), timeout=5)
        assert task.alive()
        await task.stop()

    asyncio.run(scenario())
    return applied


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watches, "RETRY_SECONDS", 0.0)


def test_it_watches_from_the_listing_and_goes_on_from_the_last_version_seen() -> None:
    client = ScriptedClient(
        [event("ADDED", "a", "11"), event("BOOKMARK", "", "15"), event("MODIFIED", "a", "16")],
        [event("DELETED", "a", "20")],
    )
    applied = run(client, relists=[], label_selector="cadre.dev/trainingjob")
    assert applied == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]  # no bookmark
    versions = [q["resourceVersion"] for q in client.queries]
    assert versions == ["10", "16", "20"]
    assert all(q["allowWatchBookmarks"] == "true" for q in client.queries)
    assert client.queries[0]["labelSelector"] == "cadre.dev/trainingjob"


def test_a_cut_stream_resumes_where_it_was_an_expired_version_lists_again() -> None:
    path = "/apis/cadre.dev/v1alpha1/trainingjobs"
    client = ScriptedClient(
        [event("ADDED", "a", "11"), ApiUnreachableError("WATCH", path, OSError("reset"))],
        [ApiError("WATCH", path, 410, '{"code": 410}')],
        [event("ADDED", "b", "51")],
    )
    applied = run(client, relists=["50"])
    assert applied == [("ADDED", "a"), ("ADDED", "b")]
    assert [q["resourceVersion"] for q in client.queries] == ["10", "11", "50", "51"]


def test_a_bad_event_or_a_refused_watch_lists_again_and_the_watch_goes_on() -> None:
    path = "/apis/cadre.dev/v1alpha1/trainingjobs"
    client = ScriptedClient(
        [event("ADDED", "poison", "11")],
        [ApiError("WATCH", path, 403, "{}")],
        [event("ADDED", "c", "71")],
    )
    applied = run(client, relists=["60", "70"])
    assert applied == [("ADDED", "c")]
    assert [q["resourceVersion"] for q in client.queries] == ["10", "60", "70", "71"]


def test_without_a_listing_it_lists_first() -> None:
    client = ScriptedClient([event("ADDED", "a", "31")])
    applied = run(client, relists=["30"], listed="")
    assert applied == [("ADDED", "a")]
    assert [q["resourceVersion"] for q in client.queries] == ["30", "31"]
