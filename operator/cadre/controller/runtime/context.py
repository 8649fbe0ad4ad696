"""The operator process's parts, wired once (Kopf's `memo`; no module-level globals).

Every replica: the API client, the store and the cache (filled at start, relisted every
`controller.resyncSeconds`), the leader elector. The leader only: the admission loop, the
queue-status writer, the budget writer and the TrainingJob reconcilers, started once it
holds the Lease and has read what the previous leader may have left (`sync_for_takeover`).
A replica that loses the Lease stops them and asks the process to exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from cadre.controller.admission_loop import AdmissionLoop
from cadre.controller.budget_writer import BudgetWriter
from cadre.controller.cache import Cache
from cadre.controller.client import ApiClient, service_account_namespace
from cadre.controller.discovery import resolve_native_gangs
from cadre.controller.leader import LeaderElector, default_identity
from cadre.controller.modeldeployments import ModelDeploymentReconciler
from cadre.controller.queue_status import QueueStatusWriter
from cadre.controller.runtime.health import HealthServer
from cadre.controller.status_writer import StatusWriter
from cadre.controller.trainingjobs import TrainingJobReconciler, log_reconcile_error
from cadre.controller.workqueue import WorkQueue
from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.store import Store, is_serving, serving_key

log = structlog.get_logger("cadre.runtime")

STEP_DOWN_EXIT_SECONDS = 30.0
"""After losing the Lease the process stops gracefully; if that has not ended by then,
it exits anyway: a replica that cannot write must be restarted, never linger."""

DEFAULT_LEASE_NAMESPACE = "cadre-system"


@dataclass
class Runtime:
    config: OperatorConfig
    client: ApiClient
    store: Store
    cache: Cache
    queue: WorkQueue
    status: StatusWriter
    queue_status: QueueStatusWriter
    loop: AdmissionLoop
    budgets: BudgetWriter
    reconciler: TrainingJobReconciler
    serving: ModelDeploymentReconciler
    elector: LeaderElector | None
    stop_flag: threading.Event = field(default_factory=threading.Event)
    """Set to make Kopf stop (the Lease was lost): the process then exits with 1."""
    lost_leadership: bool = False
    health_server: HealthServer | None = None
    health_address: tuple[str, int] | None = None
    after_fill: Callable[[], None] | None = None
    """Run once the cache's first fill is in (`cadre run` freezes the survivors then)."""
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _filled: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the cache is filled: a Lease taken before waits for it to lead."""
    _writers: list[asyncio.Task[Any]] = field(default_factory=list)
    _standby: asyncio.Task[None] | None = None
    """A standby's parsing ahead (AdmissionLoop.stand_by), until it leads."""

    @classmethod
    def create(
        cls, config: OperatorConfig, client: ApiClient, *, identity: str | None = None
    ) -> Runtime:
        store = Store(clock=time.monotonic)
        queue = WorkQueue("workloads")
        status = StatusWriter(client, store, config)
        queue_status = QueueStatusWriter(store, config, status)
        loop = AdmissionLoop(client, store, config, status, queue_status)
        budgets = BudgetWriter(client, store, config, loop.notify)
        loop.observers.append(budgets.after_pass)

        def forget(key: str) -> None:
            """A workload is gone: its writers' and its work queue's state go too."""
            loop.forget(key)
            queue.drop(key)

        cache = Cache(
            client,
            store,
            config,
            changed=loop.notify,
            reconcile=queue.add,
            pod_changed=budgets.pod_changed,
            forget=forget,
            resynced=loop.forget_gone,
        )
        reconciler = TrainingJobReconciler(
            client,
            store,
            config,
            status=status,
            cache=cache,
            notify=loop.notify,
        )
        serving = ModelDeploymentReconciler(
            client,
            store,
            config,
            status=status,
            notify=loop.notify,
            waiting=lambda key: loop.serving_waiting.get(key),  # noqa: PLW0108 (replaced each pass)
            hashes=loop.snapshot_cache,
        )
        loop.reconcile_serving = queue.add
        runtime = cls(
            config=config,
            client=client,
            store=store,
            cache=cache,
            queue=queue,
            status=status,
            queue_status=queue_status,
            loop=loop,
            budgets=budgets,
            reconciler=reconciler,
            serving=serving,
            elector=None,
        )
        election = config.leader_election
        if election.enabled:
            runtime.elector = LeaderElector(
                client,
                election,
                identity=identity or default_identity(),
                namespace=election.lease_namespace
                or service_account_namespace()
                or DEFAULT_LEASE_NAMESPACE,
                on_started_leading=runtime.lead,
                on_stopped_leading=runtime.step_down,
            )
            client.write_gate = runtime.elector.may_write
        client.on_recovered = cache.after_outage
        return runtime

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Every replica: serve health, stand for leader, fill the cache, keep it in sync.

        The election runs while the cache fills: a replica that gets the Lease at once (no
        other leader) has then filled it with lists sent after taking the Lease, which its
        takeover read need not repeat (a cold start with 10,000 TrainingJobs listed them
        twice, 6 s more). The writers still wait for the fill (`lead`)."""
        if self.health_server is not None and self.health_address is not None:
            await self.health_server.start(*self.health_address)
        await resolve_native_gangs(self.client, self.config)
        if self.elector is not None and not self._tasks:  # Kopf retries a failed start
            self._tasks.append(asyncio.create_task(self.elector.run(), name="cadre leader"))
        await self.cache.fill()
        if self.after_fill is not None:
            self.after_fill()
        self.cache.start()
        self._filled.set()
        if self.elector is None:
            await self.lead()
        elif not self.elector.leading and self._standby is None:
            self.loop.notify()  # parse what the fill brought in
            self._standby = asyncio.create_task(self.loop.stand_by(), name="cadre standby")

    async def lead(self) -> None:
        """The Lease is ours: read what decides admission afresh, then start writing."""
        await self._filled.wait()
        await self._stop_standing_by()
        if self.elector is not None:
            since = self.elector.leader_since
            await self.cache.sync_for_takeover(float("-inf") if since is None else since)
        for key in self.store.trainingjobs:
            self.queue.add(key)
        for key in self.store.modeldeployments:
            self.queue.add(serving_key(key))
        self.loop.start()
        self.queue_status.start()
        self.budgets.start()
        self._writers.append(
            asyncio.create_task(
                self.queue.run_workers(
                    self.config.controller.workers,
                    self.reconcile,
                    log_reconcile_error,
                ),
                name="cadre reconcilers",
            )
        )
        log.info("leading: admission, budgets and reconcilers started")

    async def _stop_standing_by(self) -> None:
        if self._standby is not None:
            self._standby.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._standby
            self._standby = None

    async def reconcile(self, key: str) -> float | None:
        """One workload: a ModelDeployment ("md:" keys) or a TrainingJob."""
        if is_serving(key):
            return await self.serving.reconcile(key)
        return await self.reconciler.reconcile(key)

    def step_down(self) -> None:
        """The Lease is lost (the write gate is already shut): stop and exit."""
        self.lost_leadership = True
        for task in self._writers:
            task.cancel()
        self.stop_flag.set()
        watchdog = threading.Timer(STEP_DOWN_EXIT_SECONDS, _exit_after_step_down)
        watchdog.daemon = True  # a stop that ends in time exits without it
        watchdog.start()

    async def stop(self) -> None:
        """A graceful stop: writers first, then give the Lease up for the standby."""
        await self._stop_standing_by()
        await self.loop.stop()
        await self.queue_status.stop()
        await self.budgets.stop()
        for task in self._writers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.elector is not None:
            await self.elector.release()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.cache.stop()
        await self.client.close()
        if self.health_server is not None:
            await self.health_server.stop()
        # Kopf waits for a threading.Event stop flag in an executor thread: release it, or
        # the event loop's shutdown waits for that thread forever.
        self.stop_flag.set()

    # -- health ------------------------------------------------------------------------------
    def alive(self) -> bool:
        """False when a task ended on its own (a bug): the liveness probe fails."""
        standing_by = [self._standby] if self._standby is not None else []
        tasks = self._writers + self._tasks + standing_by
        tasks_ok = all(not t.done() for t in tasks) or self.lost_leadership
        return (
            tasks_ok
            and self.loop.alive()
            and self.queue_status.alive()
            and self.budgets.alive()
            and self.cache.alive()
        )

    def ready(self) -> bool:
        """Ready once the cache is filled (a standby is ready too: it can take over)."""
        return self.cache.filled and not self.lost_leadership

    def leading(self) -> bool:
        return self.elector is None or self.elector.leading

    def health(self) -> dict[str, Any]:
        return {
            "leader": self.leading(),
            "identity": self.elector.identity if self.elector else None,
            "holder": self.elector.holder if self.elector else None,
            "cache": {k: v for k, v in self.store.sizes().items() if v},
            "admitted": sum(self.store.admitted(k) for k in self.store.trainingjobs),
            "workqueue": len(self.queue),
            "per_object": self.per_object_state(),
        }

    def per_object_state(self) -> dict[str, int]:
        """Entries the writers keep per TrainingJob or pod (a leak shows here)."""
        return (
            self.status.sizes()
            | self.queue_status.sizes()
            | self.queue.sizes()
            | self.budgets.sizes()
            | self.loop.sizes()
        )


def _exit_after_step_down() -> None:
    log.error(
        "the stop after losing the lease did not end in time: exiting now",
        seconds=STEP_DOWN_EXIT_SECONDS,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
