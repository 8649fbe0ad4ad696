"""The queue-status writer: waiting TrainingJobs' status, paced, beside the admission loop.

Each admission pass hands it what it says of every waiting job (why it waits, where it
stands). It writes status Queued with the reason when the reason changes ("urgent"), and
the place (an exact position near the head of the team's queue, a range behind:
`cadre.core.workloads.queue`) at most every `admission.positionRefreshSeconds` per job
("due"), with the message's live figures for the jobs at exact positions only. So one
admission costs at most `admission.exactQueuePositions` position writes and one per
range bound crossed, not one per waiting job. At most
`admission.queueStatusWritesPerSecond` writes in all, urgent ones first. A pass never
waits for these writes: a queue of 10,000 is no write storm and never delays an
admission (the 10,000-job benchmark found admissions 49-72 s behind such writes when the
pass did them itself). Each write reads the newest pass's view, and a job admitted
meanwhile is never written back to Queued.

A new job's first status (phase Queued and why) goes before all of these, paced apart at
`admission.newJobStatusWritesPerSecond` with a few writes in flight: each job has one first
status, so these writes follow the rate jobs are created and cannot grow into a storm,
while at the rewrites' pace a burst of 10,000 new jobs showed no phase for 193 s.

While the admission loop writes a pass's effects (admissions, preemptions), queue writes
wait (`admissions_writing`): the API server is shared, and on a saturated one (S1: each
status PATCH answered in 120 ms) an admission matters more than a phase shown sooner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Literal, NamedTuple

import structlog

from cadre.controller.client import ApiError, NotLeaderError
from cadre.controller.status_writer import StatusWriter, utcnow
from cadre.controller.tasks import BackgroundTask, wait_at_most
from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.snapshot import WorkloadInfo
from cadre.core.cluster.store import Store, is_serving, stored_key
from cadre.core.objects import generation_of
from cadre.core.serving.lifecycle import admission_of, serving_queued
from cadre.core.training.lifecycle import queued
from cadre.core.workloads.queue import QueuePlace, queue_place

log = structlog.get_logger("cadre.queue")

NEW_WRITES_IN_FLIGHT: Final = 8
"""First statuses written at once: one at a time, the API server's latency under a burst
would set their rate, not `admission.newJobStatusWritesPerSecond`."""
ROUND_MIN_SECONDS: Final = 5.0
"""A round of queue writes goes on this long before a newer pass may restart it: passes
come every second while a queue fills, and restarting at each would write almost nothing."""


class QueueEntry(NamedTuple):
    """What a pass says of one waiting job: why it waits and where it stands. A NamedTuple:
    each pass makes one per waiting job, on the event loop."""

    reason: str
    message: str
    position: int | None
    info: WorkloadInfo | None


WriteKind = Literal["new", "urgent", "due"]


class Pace:
    """Slots `1 / per_second` apart for writes, each write's own time included (so the
    rate is the limit, not the rate plus the latency)."""

    def __init__(self) -> None:
        self._next_slot = 0.0

    async def slot(self, per_second: int) -> None:
        self._next_slot = max(self._next_slot + 1.0 / per_second, time.monotonic())
        await asyncio.sleep(self._next_slot - time.monotonic())


class QueueStatusWriter(BackgroundTask):
    task_name = "cadre queue status"

    def __init__(self, store: Store, config: OperatorConfig, status: StatusWriter) -> None:
        super().__init__()
        self.store = store
        self.config = config
        self.status = status
        self._written: dict[str, tuple[str, float]] = {}
        """key -> (reason code, monotonic time) of the last queue status written."""
        self._wanted: dict[str, QueueEntry] = {}
        """key -> what the newest pass says of each waiting job."""
        self._round = 0
        """Bumped by each pass: a round starts over with the newer view."""
        self._wake = asyncio.Event()
        self._new_pace = Pace()
        self._rewrite_pace = Pace()
        self._effects_writing = 0
        self._no_effects_writing = asyncio.Event()
        self._no_effects_writing.set()

    # -- from the loop ----------------------------------------------------------------
    def publish(self, wanted: dict[str, QueueEntry]) -> None:
        """The newest pass's view of the waiting jobs."""
        self._wanted = wanted
        self._round += 1
        self._wake.set()

    @contextmanager
    def admissions_writing(self) -> Iterator[None]:
        """The admission loop writes a pass's effects meanwhile: no queue write starts."""
        self._effects_writing += 1
        self._no_effects_writing.clear()
        try:
            yield
        finally:
            self._effects_writing -= 1
            if not self._effects_writing:
                self._no_effects_writing.set()

    def admitted(self, key: str) -> None:
        """`key` was admitted: nothing to write of it as waiting."""
        self._written.pop(key, None)
        self._wanted.pop(key, None)

    def forget(self, key: str) -> None:
        self.admitted(key)

    def sizes(self) -> dict[str, int]:
        """Entries kept per waiting job (a leak shows here)."""
        return {"queue_written": len(self._written), "queue_wanted": len(self._wanted)}

    # -- the task ---------------------------------------------------------------------
    async def run(self) -> None:
        refresh = float(self.config.admission.position_refresh_seconds)
        while True:
            await wait_at_most(self._wake.wait(), refresh / 4)
            self._wake.clear()
            try:
                await self.write_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writing queue status failed; retrying")
                await asyncio.sleep(1.0)

    async def write_round(self, *, paced: bool = True) -> int:
        """One round over the newest pass's waiting jobs; returns the writes. Each write
        uses the newest view of its job; after ROUND_MIN_SECONDS a newer pass ends the
        round, and the next one sorts the newer view (first statuses, then new reasons)
        again. A write that fails is tried again in a later round."""
        round_, now = self._round, time.monotonic()
        keys: dict[WriteKind, list[str]] = {"new": [], "urgent": [], "due": []}
        for key, entry in self._wanted.items():
            tj = self._object(key)
            if tj is None:
                continue
            kind = self._write_kind(key, entry, tj.get("status") or {}, tj, now)
            if kind is not None:
                keys[kind].append(key)

        def superseded() -> bool:  # start over from the newer view
            return round_ != self._round and time.monotonic() - now >= ROUND_MIN_SECONDS

        async def write_paced(batch: list[str], pace: Pace, per_second: int, at_once: int) -> int:
            in_flight = asyncio.Semaphore(at_once)

            async def one(key: str) -> int:
                try:
                    return await self._write_wanted(key)
                finally:
                    in_flight.release()

            tasks: list[asyncio.Task[int]] = []
            async with asyncio.TaskGroup() as group:
                for key in batch:
                    if superseded():
                        break
                    if paced:
                        await pace.slot(per_second)
                    await in_flight.acquire()
                    tasks.append(group.create_task(one(key)))
            return sum(task.result() for task in tasks)

        admission = self.config.admission
        writes = await write_paced(
            keys["new"],
            self._new_pace,
            admission.new_job_status_writes_per_second,
            NEW_WRITES_IN_FLIGHT,
        )
        # Rewrites one at a time: their pace, not the API server's latency, is the limit.
        return writes + await write_paced(
            keys["urgent"] + keys["due"],
            self._rewrite_pace,
            admission.queue_status_writes_per_second,
            1,
        )

    async def _write_wanted(self, key: str) -> int:
        """Write what the newest pass says of `key`; 1 if written. A failure is logged:
        the job stays new, urgent or due, and a later round tries again."""
        try:
            await self._no_effects_writing.wait()
            wanted = self._wanted.get(key)
            return int(wanted is not None and await self._write(key, wanted))
        except (ApiError, NotLeaderError) as err:
            log.warning("writing a queued status failed", trainingjob=key, error=str(err))
            return 0

    def _write_kind(
        self,
        key: str,
        entry: QueueEntry,
        current: dict[str, Any],
        tj: dict[str, Any],
        now: float,
    ) -> WriteKind | None:
        """ "new" (no phase yet: the job's first status), "urgent" (the status does not
        say why it waits, or says another reason), "due" (the place moved, or a job at an
        exact position has new live figures, and it was last written long enough ago), or
        None (nothing to write)."""
        if self._holds(key, tj):
            return None  # admitted since that pass: never written back to Queued
        if not current.get("phase"):
            return "new"
        queue = current.get("queue") or {}
        # Not written by this process (a restart, a new leader): what the status says.
        written: tuple[str | None, float] = self._written.get(key) or (
            _waiting_reason(current),
            0.0,
        )
        if (
            written[0] != entry.reason
            or "reason" not in queue
            or (
                entry.position is not None
                and "position" not in queue
                and "positionRange" not in queue
            )
            or current.get("phase") not in ("Queued", "Preempted")
            or current.get("observedGeneration") != generation_of(tj)
        ):
            return "urgent"
        if now - written[1] < self.config.admission.position_refresh_seconds:
            return None  # most of a long queue, every round: the place is not even computed
        place = self._place(entry)
        if place is None:  # a problem (InvalidSpec ...): its message, whenever it changes
            return "due" if queue.get("reason") != entry.message else None
        if queue.get("position") != place.position or queue.get("positionRange") != place.range:
            return "due"
        # The message carries live figures ("team vision uses 6/8"): refreshed with the
        # position near the head; behind it they would rewrite the queue at each admission.
        if place.position is not None and queue.get("reason") != entry.message:
            return "due"
        return None

    def _place(self, entry: QueueEntry) -> QueuePlace | None:
        if entry.position is None:
            return None
        return queue_place(entry.position, self.config.admission.exact_queue_positions)

    async def _write(self, key: str, entry: QueueEntry) -> bool:
        wall = utcnow()

        def fn(status: dict[str, Any] | None, tj: dict[str, Any]) -> dict[str, Any] | None:
            now = time.monotonic()
            if self._wanted.get(key) is not entry:
                return None  # a newer pass, or admitted meanwhile
            if self._write_kind(key, entry, status or {}, tj, now) is None:
                return None
            self._written[key] = (entry.reason, now)
            info = entry.info
            if is_serving(key):
                return serving_queued(
                    status,
                    generation=generation_of(tj),
                    now=wall,
                    reason=entry.reason,
                    message=entry.message,
                    place=self._place(entry),
                    team=info.team if info else None,
                )
            return queued(
                status,
                generation=generation_of(tj),
                now=wall,
                reason=entry.reason,
                message=entry.message,
                place=self._place(entry),
                team=info.team if info else None,
                gpus=info.gpus if info else None,
            )

        return await self.status.update(key, fn) is not None

    def _object(self, key: str) -> dict[str, Any] | None:
        if is_serving(key):
            return self.store.modeldeployments.get(stored_key(key))
        return self.store.trainingjobs.get(key)

    def _holds(self, key: str, obj: dict[str, Any]) -> bool:
        """Admitted (or, for a ModelDeployment, stopped): never written Queued. A
        ModelDeployment that waits only for more replicas says so in QuotaLimited."""
        if not is_serving(key):
            return self.store.admitted(key)
        uid = str((obj.get("metadata") or {}).get("uid", ""))
        stopped = bool((obj.get("spec") or {}).get("stopped"))
        return stopped or admission_of(obj.get("status"), uid) is not None


def _waiting_reason(status: dict[str, Any]) -> str | None:
    """The reason code of the Admitted=False condition of a waiting job, if any."""
    for c in status.get("conditions") or ():
        if c.get("type") == "Admitted" and c.get("status") == "False":
            return str(c.get("reason"))
    return None
