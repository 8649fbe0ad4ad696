"""Cadre's API client against a scripted local HTTP server: retries on 429 (its
Retry-After), 5xx and network errors; a clear error when it gives up; the write gate;
the fault-injection hook. (Against the real API server: tests/integration.)"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client as k8s_client
from prometheus_client import REGISTRY

from cadre.controller import client as client_module
from cadre.controller.client import (
    ApiClient,
    ApiError,
    ApiUnreachableError,
    ClientSettings,
    NotLeaderError,
)
from cadre.controller.faults import FaultInjector

FAST = ClientSettings(
    timeout_seconds=2, retries=3, backoff_initial_seconds=0.01, backoff_max_seconds=0.05
)

Script = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(handle: Script) -> AsyncIterator[str]:
    """A local HTTP server answering every request with `handle`; yields its URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def server(answers: list[Any]) -> AsyncIterator[tuple[str, list[str]]]:
    """Answers the i-th request with answers[i] (a status, or (status, headers)); the last
    answer repeats. Records "METHOD path" of each request."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(f"{request.method} {request.path}")
        answer = answers[min(len(seen) - 1, len(answers) - 1)]
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        body = {"kind": "Status", "reason": "Whatever", "message": f"answer {status}"}
        if status < 300:
            body = {"metadata": {"name": "x", "resourceVersion": str(len(seen))}}
        return web.json_response(body, status=status, headers=headers)

    async with serving(handle) as url:
        yield url, seen


def client_for(url: str, **kwargs: Any) -> ApiClient:
    configuration = k8s_client.Configuration()
    configuration.host = url
    return ApiClient(configuration, FAST, **kwargs)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_retries_429_and_5xx_then_succeeds() -> None:
    async def scenario() -> list[str]:
        async with server([(429, {"Retry-After": "0"}), 503, 500, 200]) as (url, seen):
            client = client_for(url)
            obj = await client.get("/api/v1/namespaces/ns/pods/p")
            await client.close()
            assert obj is not None and obj["metadata"]["resourceVersion"] == "4"
            return seen

    assert len(run(scenario())) == 4


def test_each_retry_is_counted_and_a_first_try_that_succeeds_is_not() -> None:
    def retries() -> float:
        labels = {"verb": "GET", "resource": "configmaps"}
        return REGISTRY.get_sample_value("cadre_api_retries_total", labels) or 0.0

    async def scenario(answers: list[Any]) -> tuple[float, int]:
        before = retries()
        async with server(answers) as (url, seen):
            client = client_for(url)
            with contextlib.suppress(ApiError):
                await client.get("/api/v1/namespaces/ns/configmaps/c")
            await client.close()
            return retries() - before, len(seen)

    assert run(scenario([200])) == (0, 1)
    assert run(scenario([503, 200])) == (1, 2)
    assert run(scenario([(429, {"Retry-After": "0"}), 500, 200])) == (2, 3)
    assert run(scenario([500])) == (FAST.retries, 1 + FAST.retries)
    assert run(scenario([404])) == (0, 1)  # an answer, not a failure: never retried


def test_gives_up_after_its_retries_with_the_last_status() -> None:
    async def scenario() -> None:
        async with server([500]) as (url, seen):
            client = client_for(url)
            with pytest.raises(ApiError) as caught:
                await client.merge_patch("/apis/batch/v1/namespaces/ns/jobs/j", {"a": 1})
            await client.close()
            assert caught.value.status == 500
            assert len(seen) == 1 + FAST.retries

    run(scenario())


def test_a_conflict_is_not_retried_but_raised_at_once() -> None:
    async def scenario() -> None:
        async with server([409, 200]) as (url, seen):
            client = client_for(url)
            with pytest.raises(ApiError) as caught:
                await client.patch_status("/apis/x/v1/namespaces/ns/ts/t", {}, resource_version="3")
            await client.close()
            assert caught.value.status == 409
            assert len(seen) == 1

    run(scenario())


def test_a_status_replacement_names_the_object_and_carries_its_status_alone() -> None:
    """PUT to the status subresource: the server keeps the rest of the stored object, so
    the body is the object's identity, the resourceVersion the write is conditional on,
    and the status."""
    bodies: list[tuple[str, str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        bodies.append((request.method, request.path, await request.json()))
        return web.json_response({"metadata": {"resourceVersion": "8"}, "status": {}})

    async def scenario() -> None:
        async with serving(handle) as url:
            client = client_for(url)
            try:
                path = "/apis/cadre.dev/v1alpha1/namespaces/ns/trainingjobs/t"
                await client.replace_status(path, {"phase": "Queued"}, resource_version="7")
                with pytest.raises(ValueError, match="namespaced object"):
                    await client.replace_status(
                        "/apis/cadre.dev/v1alpha1/resourcebudgets/b", {}, resource_version="1"
                    )
            finally:
                await client.close()

    run(scenario())
    assert bodies == [
        (
            "PUT",
            "/apis/cadre.dev/v1alpha1/namespaces/ns/trainingjobs/t/status",
            {
                "apiVersion": "cadre.dev/v1alpha1",
                "kind": "TrainingJob",
                "metadata": {"name": "t", "namespace": "ns", "resourceVersion": "7"},
                "status": {"phase": "Queued"},
            },
        )
    ]


def test_an_unreachable_server_is_an_api_error_too_and_recovery_is_reported() -> None:
    async def scenario() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # nothing listens here
        client = client_for(f"http://127.0.0.1:{port}")
        with pytest.raises(ApiUnreachableError) as caught:
            await client.get("/api/v1/nodes")
        assert isinstance(caught.value, ApiError) and caught.value.status == 0
        await client.close()
        recovered: list[bool] = []
        async with server([200]) as (url, _):
            client._server = url  # the same client, the server is back
            client.on_recovered = lambda: recovered.append(True)
            await client.get("/api/v1/nodes")
            await client.close()
        assert recovered == [True]

    run(scenario())


def test_the_write_gate_stops_writes_before_they_are_sent() -> None:
    async def scenario() -> None:
        async with server([200]) as (url, seen):
            client = client_for(url)
            client.write_gate = lambda: False
            with pytest.raises(NotLeaderError):
                await client.merge_patch("/apis/batch/v1/namespaces/ns/jobs/j", {"a": 1})
            with pytest.raises(NotLeaderError):
                await client.delete("/apis/batch/v1/namespaces/ns/jobs/j", uid="u")
            await client.get("/apis/batch/v1/namespaces/ns/jobs/j")  # reads go
            # The Lease's own writes are not fenced.
            await client.request("PUT", "/apis/coordination.k8s.io/v1/x", {}, fenced=False)
            await client.close()
            assert seen == [
                "GET /apis/batch/v1/namespaces/ns/jobs/j",
                "PUT /apis/coordination.k8s.io/v1/x",
            ]

    run(scenario())


def test_the_gate_is_asked_again_as_the_body_goes_on_the_wire() -> None:
    """A replica that may write when it decides but not when its request is sent (it was
    frozen in between) sends nothing: not even the request line and headers."""

    async def scenario() -> None:
        async with server([200]) as (url, seen):
            client = client_for(url)
            answers = iter([True, False, True, False])
            client.write_gate = lambda: next(answers)
            with pytest.raises(NotLeaderError):
                await client.create(
                    {"apiVersion": "v1", "kind": "Event", "metadata": {"namespace": "ns"}}
                )
            with pytest.raises(NotLeaderError):  # a DELETE too (its DeleteOptions body)
                await client.delete("/apis/batch/v1/namespaces/ns/jobs/j")
            await client.get("/apis/batch/v1/namespaces/ns/jobs/j")  # the client still works
            await client.close()
            assert seen == ["GET /apis/batch/v1/namespaces/ns/jobs/j"]

    run(scenario())


def test_injected_faults_are_consumed_per_attempt() -> None:
    async def scenario() -> None:
        faults = FaultInjector()
        faults.add({"verb": "PATCH", "resource": "jobs", "fault": 500, "times": 2})
        faults.add({"verb": "GET", "resource": "*", "fault": "timeout", "times": 1})
        async with server([200]) as (url, seen):
            client = client_for(url, faults=faults)
            await client.merge_patch("/apis/batch/v1/namespaces/ns/jobs/j", {"a": 1})
            await client.get("/api/v1/nodes")
            assert faults.rules == [] and faults.injected == 3
            # lost-response: the server did the write, the client saw no answer.
            faults.add({"verb": "POST", "resource": "configmaps", "fault": "lost-response"})
            _, created = await client.create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "x", "namespace": "ns"},
                }
            )
            await client.close()
            # The retry met the object the lost attempt created (a 200 here: the fake
            # server answers every POST alike).
            assert created
            assert seen.count("POST /api/v1/namespaces/ns/configmaps") == 2
            assert seen.count("PATCH /apis/batch/v1/namespaces/ns/jobs/j") == 1

    run(scenario())


def test_fault_rules_are_validated() -> None:
    faults = FaultInjector()
    with pytest.raises(ValueError):
        faults.add({"fault": 200})
    with pytest.raises(ValueError):
        faults.add({"fault": "boom"})
    with pytest.raises(ValueError):
        faults.add({"fault": 500, "times": 0})


def test_a_kubeconfigs_token_hook_runs_at_most_every_few_seconds(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kubernetes package's hook sets every field again on each request (5% of the
    operator's CPU in S1); Cadre's wrapper runs it every REFRESH_SECONDS, and keeps
    wrapping the hook the package installs anew each time."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    configuration = client_module.load_configuration(str(kubeconfig))
    wrapper = configuration.refresh_api_key_hook
    assert isinstance(wrapper, client_module._ThrottledRefresh)
    runs: list[float] = []
    inner = wrapper._hook

    def counted(conf: k8s_client.Configuration) -> None:
        runs.append(now[0])
        inner(conf)  # installs a new hook of its own on `conf`

    wrapper._hook = counted
    now = [1000.0]
    monkeypatch.setattr(client_module.time, "monotonic", lambda: now[0])
    for _ in range(50):
        assert client_module._authorization(configuration) == "Bearer abc"
    assert runs == [1000.0]
    now[0] += client_module._ThrottledRefresh.REFRESH_SECONDS
    assert client_module._authorization(configuration) == "Bearer abc"
    assert configuration.refresh_api_key_hook is wrapper  # the package's new hook, wrapped
    assert wrapper._hook is not counted
