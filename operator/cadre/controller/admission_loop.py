"""The one admission loop of the cluster: an asyncio task that runs passes and applies them.

Handlers update the store and call `notify()`. The loop waits for a change, debounces
(`admission.debounceMs`), keeps at least `admission.minIntervalMs` between passes, builds
the snapshot, calls the pure core (`cadre.core.scheduling.schedule`) and applies its decisions:

- victims: suspend the Job (its pods go away), status Preempted with the core's message;
- admissions: unsuspend the Job first (the durable truth of "admitted", which a restarted
  operator reads back), then status Admitted;
- pending: handed to the queue writer, a second task, which writes status Queued with the
  reason when it changes and the position at most every `admission.positionRefreshSeconds`
  per job, at most `admission.queueStatusWritesPerSecond` in all (new reasons first). A
  pass never waits for these writes, so a long queue is no write storm and never delays
  an admission.

The loop does not run before `start()` is called, which the startup handler does after
listing the cluster into the store: no pass ever runs on a partial view, so no gang is
admitted twice and no quota is exceeded after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram

from cadre.controller.client import ApiError, Kube
from cadre.controller.status_writer import StatusWriter, set_job_suspend, utcnow
from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.snapshot import SnapshotBuild, WorkloadInfo, build_snapshot
from cadre.core.cluster.store import Store
from cadre.core.objects import generation_of
from cadre.core.scheduling import PassResult, schedule
from cadre.core.training.lifecycle import admitted, preempted, queued

log = structlog.get_logger("cadre.admission")

PASSES = Counter("cadre_admission_passes_total", "Admission passes run.")
PASS_SECONDS = Histogram(
    "cadre_admission_pass_seconds",
    "Time of one admission pass (snapshot and scheduling, without the API writes).",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DECISIONS = Counter("cadre_admission_decisions_total", "Admission decisions applied.", ["decision"])
PENDING = Gauge("cadre_admission_pending_workloads", "Workloads waiting after the last pass.")

_CONCURRENCY = 16
_ROUND_MIN_SECONDS = 5.0
"""A round of queue writes goes on this long before a newer pass may restart it: passes
come every second while a queue fills, and restarting at each would write almost nothing."""


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """What a pass says of one waiting job: why it waits and where it stands."""

    reason: str
    message: str
    position: int | None
    info: WorkloadInfo | None


class AdmissionLoop:
    def __init__(self, store: Store, config: OperatorConfig, kube: Kube) -> None:
        self.store = store
        self.config = config
        self.kube = kube
        self.status = StatusWriter(kube, store, config)
        self._dirty = asyncio.Event()
        self._started = asyncio.Event()
        self._stopping = False
        self._last_pass = 0.0
        self._queue_written: dict[str, tuple[str, float]] = {}
        """key -> (reason code, monotonic time) of the last queue status written."""
        self._queue_wanted: dict[str, QueueEntry] = {}
        """key -> what the last pass says of each waiting job (written by the queue writer)."""
        self._queue_round = 0
        """Bumped by each pass: the queue writer starts over with the newer view."""
        self._queue_wake = asyncio.Event()
        self._next_slot = 0.0
        self._queue_task: asyncio.Task[None] | None = None
        self._cache: dict[Any, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self.last_result: PassResult | None = None
        self.observers: list[Callable[[SnapshotBuild, PassResult], None]] = []
        """Called after each pass with its input and result (the budget writer)."""

    # -- control ---------------------------------------------------------------------
    def notify(self) -> None:
        """Something that can change a decision happened: run a pass soon."""
        self._dirty.set()

    def start(self) -> None:
        """Start passes (after the store holds the whole cluster)."""
        self._started.set()
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="cadre admission loop")
        if self._queue_task is None:
            self._queue_task = asyncio.create_task(self.run_queue_writer(), name="cadre queue")

    def alive(self) -> bool:
        """False when the loop task ended on its own (a bug): the liveness probe fails."""
        return self._stopping or all(
            t is None or not t.done() for t in (self._task, self._queue_task)
        )

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._task, self._queue_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._queue_task = None

    async def run(self) -> None:
        settings = self.config.admission
        debounce = settings.debounce_ms / 1000
        min_interval = settings.min_interval_ms / 1000
        refresh = float(settings.position_refresh_seconds)
        await self._started.wait()
        while not self._stopping:
            # Wake now and then even when nothing moves, to refresh queue positions.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=refresh)
            if debounce:
                await asyncio.sleep(debounce)
            wait = self._last_pass + min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            self._last_pass = time.monotonic()
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("admission pass failed; retrying")
                self._dirty.set()

    # -- one pass --------------------------------------------------------------------
    async def run_pass(self) -> PassResult:
        started = time.perf_counter()
        build = build_snapshot(self.store, self.config, self._cache)
        result = schedule(build.snapshot)
        PASS_SECONDS.observe(time.perf_counter() - started)
        PASSES.inc()
        PENDING.set(len(result.pending) + len(build.problems))
        self.last_result = result
        for observer in self.observers:
            observer(build, result)
        if len(self._cache) > 4 * max(len(self.store.trainingjobs), 256):
            self._cache.clear()

        await self._each(self._preempt(build, v.key, v.reason, v.message) for v in result.victims)
        await self._each(self._admit(build, a.key) for a in result.admitted if a.gang)
        await self._each(self._admit(build, key) for key in build.unbudgeted)
        # Waiting jobs' statuses are the queue writer's: a pass never waits for them, so
        # a freed GPU is given out at the next pass however long the queue is.
        wanted: dict[str, QueueEntry] = {}
        for p in result.pending:
            info = build.info.get(p.key)
            wanted[p.key] = QueueEntry(str(p.reason), p.message, p.position, info)
        for key, problem in build.problems.items():
            wanted[key] = QueueEntry(problem.reason, problem.message, None, build.info.get(key))
        self._queue_wanted = wanted
        self._queue_round += 1
        self._queue_wake.set()
        if result.admitted or result.victims:
            log.info(
                "admission pass",
                admitted=len(result.admitted),
                preempted=len(result.victims),
                pending=len(result.pending),
                seconds=round(time.perf_counter() - started, 4),
            )
        return result

    async def _each(self, effects: Iterable[Awaitable[None]]) -> None:
        semaphore = asyncio.Semaphore(_CONCURRENCY)

        async def one(effect: Awaitable[None]) -> None:
            async with semaphore:
                try:
                    await effect
                except ApiError as err:
                    log.warning("admission effect failed", error=str(err))
                    self._dirty.set()

        await asyncio.gather(*(one(e) for e in effects))

    async def _admit(self, build: SnapshotBuild, key: str) -> None:
        info = build.info.get(key)
        now = utcnow()

        def fn(status: dict[str, Any] | None, tj: dict[str, Any]) -> dict[str, Any] | None:
            if (status or {}).get("phase") in ("Admitted", "Running"):
                return None
            return admitted(
                status,
                generation=generation_of(tj),
                now=now,
                team=info.team if info else None,
                gpus=info.gpus if info else None,
            )

        # Unsuspend and status in one step under the job's status lock: the Job handler,
        # woken by the unsuspension, then finds the status Admitted and writes nothing.
        async with self.status.lock(key):
            if not await set_job_suspend(self.kube, self.store, key, suspend=False):
                return  # the Job is gone; the TrainingJob handler recreates it
            self.store.admitted_at[key] = time.time()
            DECISIONS.labels("admit").inc()
            self._queue_written.pop(key, None)
            self._queue_wanted.pop(key, None)
            await self.status.update(key, fn, locked=True)

    async def _preempt(self, build: SnapshotBuild, key: str, reason: str, message: str) -> None:
        now = utcnow()
        async with self.status.lock(key):
            if not await set_job_suspend(self.kube, self.store, key, suspend=True):
                return
            self.store.admitted_at.pop(key, None)
            DECISIONS.labels("preempt").inc()
            await self.status.update(
                key,
                lambda status, tj: preempted(
                    status,
                    generation=generation_of(tj),
                    now=now,
                    reason=str(reason),
                    message=message,
                ),
                locked=True,
            )

    # -- waiting jobs' status ---------------------------------------------------------
    async def run_queue_writer(self) -> None:
        """Write waiting jobs' status from the newest pass, at most
        `admission.queueStatusWritesPerSecond`, the urgent ones (a new reason) first."""
        refresh = float(self.config.admission.position_refresh_seconds)
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue_wake.wait(), timeout=refresh / 4)
            self._queue_wake.clear()
            try:
                await self.write_queue_statuses()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writing queue status failed; retrying")
                await asyncio.sleep(1.0)

    async def write_queue_statuses(self, *, paced: bool = True) -> int:
        """One round over the newest pass's waiting jobs; returns the writes. Each write
        uses the newest view of its job; after `_ROUND_MIN_SECONDS` a newer pass ends the
        round, and the next one sorts the newer view (new reasons first) again."""
        round_, now = self._queue_round, time.monotonic()
        urgent: list[str] = []
        due: list[str] = []
        for key, entry in self._queue_wanted.items():
            tj = self.store.trainingjobs.get(key)
            if tj is None:
                continue
            kind = self._queue_write_kind(key, entry, tj.get("status") or {}, tj, now)
            if kind == "urgent":
                urgent.append(key)
            elif kind == "due":
                due.append(key)
        gap = 1.0 / self.config.admission.queue_status_writes_per_second
        writes = 0
        for key in urgent + due:
            if round_ != self._queue_round and time.monotonic() - now >= _ROUND_MIN_SECONDS:
                break  # start over from the newer view (each write reads it anyway)
            if paced:
                # One slot per write, the write's own time included: the rate is the limit.
                self._next_slot = max(self._next_slot + gap, time.monotonic())
                await asyncio.sleep(self._next_slot - time.monotonic())
            wanted = self._queue_wanted.get(key)
            if wanted is None:
                continue
            try:
                if await self._write_queued(key, wanted):
                    writes += 1
            except ApiError as err:
                log.warning("writing a queued status failed", trainingjob=key, error=str(err))
        return writes

    def _queue_write_kind(
        self,
        key: str,
        entry: QueueEntry,
        current: dict[str, Any],
        tj: dict[str, Any],
        now: float,
    ) -> str | None:
        """ "urgent" (the status does not say why it waits, or says another reason),
        "due" (the live figures or the position moved, last written long enough ago),
        or None (nothing to write)."""
        job = self.store.jobs.get(key)
        if job is not None and job.running:
            return None  # admitted since that pass: never written back to Queued
        queue = current.get("queue") or {}
        # Not written by this process (a restart): what the status says, long ago.
        written: tuple[str | None, float] = self._queue_written.get(key) or (
            _waiting_reason(current),
            0.0,
        )
        if (
            written[0] != entry.reason
            or "reason" not in queue
            or (entry.position is not None and "position" not in queue)
            or current.get("phase") not in ("Queued", "Preempted")
            or current.get("observedGeneration") != generation_of(tj)
        ):
            return "urgent"
        # The message carries live figures ("team vision uses 6/8"): refreshed with the
        # position, at most every positionRefreshSeconds, unless the reason changes.
        refresh = self.config.admission.position_refresh_seconds
        if now - written[1] >= refresh and (
            queue.get("reason") != entry.message
            or (entry.position is not None and queue.get("position") != entry.position)
        ):
            return "due"
        return None

    async def _write_queued(self, key: str, entry: QueueEntry) -> bool:
        wall = utcnow()

        def fn(status: dict[str, Any] | None, tj: dict[str, Any]) -> dict[str, Any] | None:
            now = time.monotonic()
            if self._queue_wanted.get(key) is not entry:
                return None  # a newer pass, or admitted meanwhile
            if self._queue_write_kind(key, entry, status or {}, tj, now) is None:
                return None
            self._queue_written[key] = (entry.reason, now)
            info = entry.info
            return queued(
                status,
                generation=generation_of(tj),
                now=wall,
                reason=entry.reason,
                message=entry.message,
                position=entry.position,
                team=info.team if info else None,
                gpus=info.gpus if info else None,
            )

        return await self.status.update(key, fn) is not None

    def forget(self, key: str) -> None:
        self._queue_written.pop(key, None)
        self._queue_wanted.pop(key, None)
        self.status.forget(key)


def _waiting_reason(status: dict[str, Any]) -> str | None:
    """The reason code of the Admitted=False condition of a waiting job, if any."""
    for c in status.get("conditions") or ():
        if c.get("type") == "Admitted" and c.get("status") == "False":
            return str(c.get("reason"))
    return None
