"""The operator's own HTTP endpoints beside the metrics: liveness, readiness, and (tests
only) fault injection.

- `/healthz`: 200 while every task of the process runs (a task that ended on its own is a
  bug: the kubelet restarts the pod);
- `/readyz`: 200 once the cache is filled (a standby is ready: it can take over), with
  who leads;
- `/debug/faults` (only with `--enable-fault-injection`): GET lists the rules, POST adds
  one (see `cadre.controller.faults`), DELETE clears them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from cadre.controller.faults import FaultInjector


class HealthServer:
    def __init__(
        self,
        *,
        alive: Callable[[], bool],
        ready: Callable[[], bool],
        details: Callable[[], dict[str, Any]],
        faults: FaultInjector | None = None,
    ) -> None:
        self._alive = alive
        self._ready = ready
        self._details = details
        self._faults = faults
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if self._faults is not None:
            app.router.add_get("/debug/faults", self._faults_list)
            app.router.add_post("/debug/faults", self._faults_add)
            app.router.add_delete("/debug/faults", self._faults_clear)
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        ok = self._alive()
        return web.json_response({"alive": ok}, status=200 if ok else 500)

    async def _readyz(self, _: web.Request) -> web.Response:
        ok = self._ready()
        body = {"ready": ok, **self._details()}
        return web.json_response(body, status=200 if ok else 503)

    async def _faults_list(self, _: web.Request) -> web.Response:
        assert self._faults is not None
        rules = [r.to_json() for r in self._faults.rules]
        return web.json_response({"rules": rules, "injected": self._faults.injected})

    async def _faults_add(self, request: web.Request) -> web.Response:
        assert self._faults is not None
        try:
            rule = self._faults.add(json.loads(await request.text()))
        except (ValueError, TypeError) as err:
            return web.json_response({"error": str(err)}, status=400)
        return web.json_response(rule.to_json(), status=201)

    async def _faults_clear(self, _: web.Request) -> web.Response:
        assert self._faults is not None
        self._faults.clear()
        return web.json_response({"rules": []})
