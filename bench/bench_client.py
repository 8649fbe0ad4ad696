"""API clients side by side on a real kube-apiserver (figures only; no assertion).

    .venv/bin/python bench/bench_client.py [--objects 2000] [--concurrency 64]

Starts etcd and kube-apiserver (the local cluster in "apiserver" mode) and, for each
client, creates --objects ConfigMaps, reads each, merge-patches each, then deletes each,
--concurrency calls in flight, printing calls per second per verb and the CPU time of
this process per call (what the operator itself would spend):

- `threadpool`: what Cadre used before: the kubernetes package's generated `ApiClient`,
  raw JSON (`param_serialize` + `call_api`, no model (de)serialisation), each call in
  `asyncio.to_thread` (the default executor: min(32, cores + 4) threads, 6 here);
- `kubernetes.aio`: the kubernetes package's async client (aiohttp), raw JSON the same way;
- `cadre`: Cadre's own client (`cadre.controller.client.ApiClient`: one aiohttp session,
  retries, the write gate, metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "e2e", REPO / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402

from cadre.controller.client import ApiClient  # noqa: E402
from cadre.controller.runtime.event_loop import event_loop_factory  # noqa: E402
from localcluster import LocalCluster  # noqa: E402

Call = Callable[[str, str, Any, str], Awaitable[Any]]
"""(method, path, body, content type) -> decoded answer."""


def threadpool_client(kubeconfig: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    api = k8s.ApiClient(configuration)

    def blocking(method: str, path: str, body: Any, content_type: str) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        _, url, header_params, serialized, _ = api.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = api.call_api(
            method, url, header_params=header_params, body=serialized, _request_timeout=60
        )
        raw = response.read()
        return json.loads(raw) if raw else None

    async def call(method: str, path: str, body: Any, content_type: str) -> Any:
        return await asyncio.to_thread(blocking, method, path, body, content_type)

    async def close() -> None:
        api.close()

    return call, close


async def aio_client(kubeconfig: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from kubernetes.aio import client as aio  # noqa: PLC0415
    from kubernetes.aio import config as aio_config  # noqa: PLC0415

    configuration = aio.Configuration()
    await aio_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = 64
    api = aio.ApiClient(configuration)

    async def call(method: str, path: str, body: Any, content_type: str) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        _, url, header_params, serialized, _ = await api.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = await api.call_api(method, url, header_params=header_params, body=serialized)
        raw = await response.read()
        return json.loads(raw) if raw else None

    async def close() -> None:
        await api.close()

    return call, close


def cadre_client(kubeconfig: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    api = ApiClient.connect(kubeconfig)

    async def call(method: str, path: str, body: Any, content_type: str) -> Any:
        _, data = await api.request(method, path, body, content_type)
        return data

    return call, api.close


async def run_verbs(call: Call, namespace: str, count: int, concurrency: int) -> dict[str, float]:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    semaphore = asyncio.Semaphore(concurrency)

    async def bounded(coro: Awaitable[Any]) -> None:
        async with semaphore:
            await coro

    def body(i: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i}", "namespace": namespace},
            "data": {"k": "v" * 200},
        }

    steps: list[tuple[str, Callable[[int], Awaitable[Any]]]] = [
        ("create", lambda i: call("POST", base, body(i), "application/json")),
        ("get", lambda i: call("GET", f"{base}/cm-{i}", None, "application/json")),
        (
            "patch",
            lambda i: call(
                "PATCH", f"{base}/cm-{i}", {"data": {"n": str(i)}}, "application/merge-patch+json"
            ),
        ),
        ("delete", lambda i: call("DELETE", f"{base}/cm-{i}", None, "application/json")),
    ]
    rates: dict[str, float] = {}
    cpu = 0.0
    for verb, one in steps:
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(bounded(one(i)) for i in range(count)))
        rates[verb] = count / (time.perf_counter() - started)
        cpu += time.process_time() - cpu_started
    rates["cpu_ms_per_call"] = cpu * 1000 / (count * len(steps))
    return rates


async def bench(cluster: LocalCluster, count: int, concurrency: int) -> dict[str, dict[str, float]]:
    kubeconfig = str(cluster.kubeconfig)
    results: dict[str, dict[str, float]] = {}

    async def tp() -> tuple[Call, Callable[[], Awaitable[None]]]:
        return threadpool_client(kubeconfig)

    async def cadre() -> tuple[Call, Callable[[], Awaitable[None]]]:
        return cadre_client(kubeconfig)

    makers: dict[str, Callable[[], Awaitable[tuple[Call, Callable[[], Awaitable[None]]]]]] = {
        "threadpool": tp,
        "kubernetes.aio": lambda: aio_client(kubeconfig),
        "cadre": cadre,
    }
    for name, make in makers.items():
        namespace = f"bench-{name.replace('.', '-')}"
        cluster.create_namespace(namespace)
        call, close = await make()
        try:
            results[name] = await run_verbs(call, namespace, count, concurrency)
        finally:
            await close()
        cluster.delete_namespace(namespace)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cadre-bench-client-") as tmp:
        cluster = LocalCluster(Path(tmp) / "cluster", "apiserver", die_with_parent=True)
        with cluster, asyncio.Runner(loop_factory=event_loop_factory(args.loop)) as runner:
            results = runner.run(bench(cluster, args.objects, args.concurrency))
    print(
        f"\n{args.objects} ConfigMaps per verb, {args.concurrency} calls in flight, "
        "calls per second:"
    )
    verbs = ("create", "get", "patch", "delete")
    print(f"{'client':<16}" + "".join(f"{v:>10}" for v in verbs) + "  client CPU ms/call")
    for name, rates in results.items():
        print(
            f"{name:<16}"
            + "".join(f"{rates[v]:>10.0f}" for v in verbs)
            + f"  {rates['cpu_ms_per_call']:>17.2f}"
        )


if __name__ == "__main__":
    main()
