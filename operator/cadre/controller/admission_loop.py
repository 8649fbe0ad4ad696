"""The one admission loop of the cluster: an asyncio task that runs passes and applies them.

Only the leader runs it. Handlers update the store and call `notify()`. The loop waits
for a change and paces passes (`PassPacer`: start to start, four times the last pass's
computation apart, at least 200 ms and at most `admission.minIntervalMs`, so a change
on an idle cluster is decided at once; a pass that has to wait starts no sooner than
`admission.debounceMs` after the change it decides on, to gather a burst), builds the
snapshot, calls the pure core (`cadre.core.scheduling`) and applies its decisions, in this order:

0. enforcement: a Job that no admission names (someone else made or unsuspended it, or
   an earlier Cadre made it to wait) is deleted; when it ran, with an Event, the
   condition UnadmittedRun and `cadre_unadmitted_jobs_suspended_total`. An admitted job
   without its Job (its creation failed, or someone deleted it) gets it;
1. victims: status Preempted first (the admission is revoked), then delete the victim's
   Job (by UID). If either fails (and the Job is not gone), this pass admits nothing:
   the room it counted on is not confirmed free, and the next pass decides again from
   what is observed (a Job left without admission is deleted by step 0);
2. admissions: status Admitted with the `admission` record first (a resourceVersion
   precondition: a spec changed since the pass is not admitted), then create the Job,
   running, annotated with the admission's id (`training_children.py`). A waiting job
   has no Job. The admission is in the status, which users cannot write, not in the
   Job, which they could make. At most `admission.maxAdmissionsPerPass` of them: each
   status is written before the next pass starts, so the rest are left to it (a pass
   of 6,000 held every later decision back for 5 minutes in S2, docs/benchmarks.md).
   The Jobs are created meanwhile: the next pass counts a written admission whether
   its Job is there yet or not, and does not wait for them;
3. waiting jobs: handed to the queue-status writer (`queue_status.py`), which writes their
   reasons and positions paced, so a pass never waits for them.

ModelDeployments ("md:namespace/name" keys) go the same way, through their status: an
admission (the gang of replicas.min, or more extra replicas) is written before the
serving reconciler scales up to it; a victim's admission is lowered (extra replicas) or
revoked (the gang) before it scales down; what is admitted beyond what it wants and runs
(the autoscaler wants fewer, a rolling update is done, spec.stopped) is released. Until
its pods are gone, what runs stays counted (`core/cluster/serving.py`).

A failed effect is logged and the loop runs again soon: every decision is recomputed from
what is observed, never replayed from the pass that failed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Final

import structlog
from prometheus_client import Counter, Gauge, Histogram

from cadre.controller.client import (
    ApiClient,
    ApiError,
    NotLeaderError,
    trainingjob_path,
)
from cadre.controller.queue_status import QueueEntry, QueueStatusWriter
from cadre.controller.status_writer import (
    JobRef,
    StatusWriter,
    delete_job,
    set_job_suspend,
    utcnow,
)
from cadre.controller.tasks import BackgroundTask, wait_at_most
from cadre.controller.team_metrics import TeamFamily
from cadre.controller.training_children import create_admitted_children
from cadre.core.api.config import OperatorConfig, WaitForPodsReady
from cadre.core.cluster.serving import ServingView
from cadre.core.cluster.snapshot import SnapshotBuild, build_snapshot, parse_ahead, unparsed
from cadre.core.cluster.store import Store, holds, is_serving, stored_key
from cadre.core.objects import generation_of, parse_api_time, uid_of
from cadre.core.scheduling import Admission, PassResult, Reason, Snapshot, Victim, schedule
from cadre.core.serving.lifecycle import (
    admission_of,
    serving_admitted,
    serving_revoked,
    serving_timed_out,
)
from cadre.core.training.gang import admission_record
from cadre.core.training.lifecycle import (
    admitted,
    pending_admission,
    preempted,
    queued,
    ran_without_admission,
    timed_out,
    unadmitted_run_event,
)
from cadre.core.workloads.scheduling import Backoff

log = structlog.get_logger("cadre.admission")

PASSES_PER_COMPUTE: Final = 4.0
"""Start to start, passes are this many times their computation apart (see PassPacer)."""
MIN_SPACING: Final = 0.2
"""...and at least this far apart (see PassPacer)."""

PASSES = Counter("cadre_admission_passes_total", "Admission passes run.")
PASS_SECONDS = Histogram(
    "cadre_admission_pass_seconds",
    "Time of one admission pass (snapshot and scheduling, without the API writes).",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DECISIONS = Counter("cadre_admission_decisions_total", "Admission decisions applied.", ["decision"])
for _decision in ("admit", "preempt", "requeue"):
    # Exported at 0 from the start: the first preemption is then an increase Prometheus
    # sees (a series born at 1 has no earlier sample, and increase() over it is empty).
    DECISIONS.labels(_decision)
PENDING = Gauge("cadre_admission_pending_workloads", "Workloads waiting after the last pass.")
UNADMITTED = Counter(
    "cadre_unadmitted_jobs_suspended_total",
    "Cadre Jobs found running without an admission (made or unsuspended by someone else) "
    "and stopped.",
)
CAPACITY_GPUS = Gauge(
    "cadre_flavor_capacity_gpus",
    "GPUs of the flavour on schedulable nodes (what the admission pass counts).",
    ["flavor"],
)
ALLOCATED_GPUS = Gauge(
    "cadre_flavor_allocated_gpus",
    "GPUs of the flavour admitted to teams after the last pass (allocated / capacity).",
    ["flavor"],
)
TIME_TO_ADMISSION = TeamFamily(
    "cadre_time_to_admission_seconds",
    "From a workload's creation to the admission of its gang (TrainingJob or "
    "ModelDeployment), per team.",
    ["team"],
    kind="histogram",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
DEFERRED = Counter(
    "cadre_admission_deferred_total",
    "Admissions a pass made beyond admission.maxAdmissionsPerPass, left to the next pass "
    "to decide again.",
)
HELD_BACK = Counter(
    "cadre_admission_passes_held_back_total",
    "Passes whose admissions were not applied because a victim's suspension failed.",
)
OLDEST_QUEUED = TeamFamily(
    "cadre_team_oldest_queued_seconds",
    "Age of the team's oldest workload whose gang waits for admission, at the last pass "
    "(0 when none waits).",
    ["team"],
)

_CONCURRENCY = 16
_PARSE_CHUNK = 200
STANDBY_PARSE_SECONDS: Final = 2.0
"""A standby parses new specs at most this often (see AdmissionLoop.stand_by)."""
"""New specs parsed between two yields to the event loop (about 70 ms at 2 cores)."""


def oldest_queued_seconds(
    snapshot: Snapshot, result: PassResult, now: datetime
) -> dict[str, float]:
    """Team -> age of its oldest workload still waiting for its gang's admission, 0 when
    none waits. Read from the pass, not the histogram of admissions: a workload that is
    never admitted never shows up there. Extra replicas of an admitted ModelDeployment do
    not count (their wait has no start time); neither do workloads held before the core
    (invalid spec, namespace conflict), which have their own conditions."""
    waiting = {p.key for p in result.pending}
    oldest: dict[str, datetime] = {}  # every pass, over every waiting job: compare, no sums
    for workload in snapshot.workloads:
        if workload.admitted or workload.key not in waiting:
            continue
        created = workload.created
        if not isinstance(created, datetime):
            continue  # no creationTimestamp: an age would be made up
        first = oldest.get(workload.team)
        if first is None or created < first:
            oldest[workload.team] = created
    ages = {team.name: 0.0 for team in snapshot.teams}
    for team, created in oldest.items():
        ages[team] = max(0.0, (now - created).total_seconds())
    return ages


class AdmissionLoop(BackgroundTask):
    task_name = "cadre admission loop"

    def __init__(
        self,
        client: ApiClient,
        store: Store,
        config: OperatorConfig,
        status: StatusWriter,
        queue: QueueStatusWriter,
    ) -> None:
        super().__init__()
        self.client = client
        self.store = store
        self.config = config
        self.status = status
        self.queue = queue
        self._dirty = asyncio.Event()
        self._pacer = PassPacer(
            config.admission.min_interval_ms / 1000, debounce=config.admission.debounce_ms / 1000
        )
        self.last_compute_seconds = 0.0
        """The last pass's snapshot and decisions, without applying them (paces passes)."""
        self.snapshot_cache: dict[Any, Any] = {}
        """Parsed specs and their Jobs' hashes, per generation (shared with the reconciler)."""
        self.last_result: PassResult | None = None
        self.observers: list[Callable[[SnapshotBuild, PassResult], None]] = []
        """Called after each pass with its input and result (the budget writer)."""
        self.reconcile_serving: Callable[[str], None] = lambda key: None
        """Hands a ModelDeployment to its reconciler after its admission changed."""
        self.serving_waiting: dict[str, str] = {}
        """ModelDeployment key -> why its extra replicas wait (the pass's message)."""
        self._next_deadline: datetime | None = None
        """When the clock alone next changes a decision (see SnapshotBuild.next_deadline)."""
        self._queued_teams: set[str] = set()
        """Teams with a `cadre_team_oldest_queued_seconds` series."""
        self._jobs_made: dict[str, str] = {}
        """TrainingJob key -> the admission whose Job this replica last created."""
        self._creating: dict[str, asyncio.Task[None]] = {}
        """TrainingJob key -> the creation of its Job after its admission was written,
        which the pass does not wait for (`_create_after_admission`)."""

    # -- control ---------------------------------------------------------------------
    def notify(self) -> None:
        """Something that can change a decision happened: run a pass soon."""
        self._dirty.set()

    def _starting(self) -> None:
        self._dirty.set()  # a first pass at once (the leader, its store in sync)

    async def stop(self) -> None:
        await super().stop()
        # No longer the leader: no Job is created after this (a new leader's pass starts
        # the admitted jobs that have none).
        creating = list(self._creating.values())
        for task in creating:
            task.cancel()
        await asyncio.gather(*creating, return_exceptions=True)

    async def jobs_created(self) -> None:
        """Wait for the Jobs of the admissions written so far (for tests)."""
        while self._creating:
            await asyncio.gather(*self._creating.values(), return_exceptions=True)

    async def run(self) -> None:
        settings = self.config.admission
        refresh = float(settings.position_refresh_seconds)
        while True:
            # Wake now and then even when nothing moves, to refresh queue positions, and
            # when a clock-driven decision falls due (a waitForPodsReady timeout, the end
            # of a requeue's backoff).
            timeout = refresh
            if self._next_deadline is not None:
                due = (self._next_deadline - utcnow()).total_seconds()
                timeout = min(refresh, max(due, 0.0) + 0.05)
            await wait_at_most(self._dirty.wait(), timeout)
            # Batch under load, not when idle: after a quiet spell a change is decided at
            # once; while passes follow each other, a burst of changes is gathered first.
            noticed = time.monotonic()
            wait = self._pacer.wait(noticed, noticed=noticed)
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            started = time.monotonic()
            self.last_compute_seconds = 0.0
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("admission pass failed; running again")
                self._dirty.set()
            finally:
                self._pacer.ran(started, self.last_compute_seconds)

    # -- one pass --------------------------------------------------------------------
    async def run_pass(self) -> PassResult:
        await self._parse_ahead()
        started = time.perf_counter()
        now = utcnow()
        build = build_snapshot(self.store, self.config, self.snapshot_cache, now=now)
        self._next_deadline = build.next_deadline
        # The core's pass, off the event loop: a pass over 50,000 jobs took seconds, and
        # the loop (watches, writers, probes) stood still meanwhile, long enough to pass
        # for a stalled process and relist everything (S2). The snapshot is immutable and
        # `schedule` pure, so a thread is safe; the GIL still lets the loop run between.
        result = await asyncio.to_thread(schedule, build.snapshot)
        self.last_compute_seconds = time.perf_counter() - started
        PASS_SECONDS.observe(self.last_compute_seconds)
        PASSES.inc()
        PENDING.set(len(result.pending) + len(build.problems))
        self._export_oldest_queued(oldest_queued_seconds(build.snapshot, result, now))
        allocated: dict[str, int] = {}
        for team in result.teams:
            for usage in team.flavours:
                allocated[usage.flavour] = allocated.get(usage.flavour, 0) + usage.usage.gpus
        for flavour in build.snapshot.flavours:
            CAPACITY_GPUS.labels(flavour.name).set(flavour.capacity.gpus)
            ALLOCATED_GPUS.labels(flavour.name).set(allocated.get(flavour.name, 0))
        self.last_result = result
        for observer in self.observers:
            observer(build, result)
        self._bound_cache()

        # Queue statuses wait meanwhile: the API server is shared, and an admission
        # matters more than a waiting job's phase shown a moment sooner.
        with self.queue.admissions_writing():
            deferred = await self._write_effects(build, result, now)
        wanted: dict[str, QueueEntry] = {}
        if deferred:
            limit = self.config.admission.max_admissions_per_pass
            DEFERRED.inc(len(deferred))
            self._dirty.set()
            # Said in their status, or a new job shows none until its admission is written.
            message = (
                f"fits now: a later pass writes its admission (one pass writes {limit} at "
                "most, admission.maxAdmissionsPerPass)"
            )
            for key in deferred:
                wanted[key] = QueueEntry(
                    str(Reason.WAITING_FOR_NEXT_PASS), message, None, build.info.get(key)
                )
        waiting: dict[str, str] = {}
        for p in result.pending:
            wanted[p.key] = QueueEntry(str(p.reason), p.message, p.position, build.info.get(p.key))
            view = build.serving.get(p.key)
            if view is not None and view.admission is not None:
                waiting[p.key] = p.message
        for key in set(waiting) ^ set(self.serving_waiting):
            self.reconcile_serving(key)  # QuotaLimited turns on or off
        self.serving_waiting = waiting
        for key, problem in build.problems.items():
            wanted[key] = QueueEntry(problem.reason, problem.message, None, build.info.get(key))
        self.queue.publish(wanted)
        if result.admitted or result.victims:
            log.info(
                "admission pass",
                admitted=len(result.admitted),
                preempted=len(result.victims),
                deferred=len(deferred),
                pending=len(result.pending),
                seconds=round(time.perf_counter() - started, 4),
            )
        return result

    async def _parse_ahead(self) -> None:
        """Parse the new specs a chunk at a time before the pass, yielding in between: a
        pass that met 26,000 new jobs at once held the event loop for 10 s (S2 in
        docs/benchmarks.md), and watches, writers and probes wait while it does. The
        pass then finds them in its cache, keyed by what they depend on."""
        missing = unparsed(self.store, self.snapshot_cache)
        for start in range(0, len(missing), _PARSE_CHUNK):
            chunk = missing[start : start + _PARSE_CHUNK]
            parse_ahead(self.store, self.config, self.snapshot_cache, chunk)
            await asyncio.sleep(0)

    def _bound_cache(self) -> None:
        # Entries of deleted jobs and old generations are never read again: drop them all
        # now and then (the next pass parses what is left again).
        if len(self.snapshot_cache) > 8 * max(len(self.store.trainingjobs), 256):
            self.snapshot_cache.clear()

    async def stand_by(self, interval: float = STANDBY_PARSE_SECONDS) -> None:
        """A standby's work while another replica leads (cancelled by `Runtime.lead`):
        parse the specs it would meet on taking over, as they come, so that its first pass
        as leader decides instead of parsing (10,000 new specs took a first pass 1.6 s in
        S7). Only the store is read, and nothing is written. A change wakes it, at most once
        an `interval`; the leader's own first pass (`_starting`) is unaffected."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._parse_ahead()
                self._bound_cache()
            except Exception:  # the leader's pass parses it anyway; never end on one spec
                log.exception("parsing ahead failed on a standby; trying again")
                self._dirty.set()
            await asyncio.sleep(interval)

    def _export_oldest_queued(self, ages: dict[str, float]) -> None:
        # Level-based: every budgeted team gets a value each pass, gone teams lose theirs.
        for team in self._queued_teams - set(ages):
            OLDEST_QUEUED.remove_team(team)
        for team, age in ages.items():
            OLDEST_QUEUED.labels(team).set(age)
        self._queued_teams = set(ages)

    async def _write_effects(
        self, build: SnapshotBuild, result: PassResult, now: datetime
    ) -> list[str]:
        """What the pass decided, written: unadmitted Jobs removed, victims stopped, then
        the admissions (at most maxAdmissionsPerPass); returns the jobs deferred to the
        next pass. Nothing is admitted if a victim's suspension failed."""
        await self._each(self._remove_unadmitted(key) for key in build.unadmitted)
        await self._each(self._start(key) for key in build.to_start if key not in self._creating)
        await self._each(self._release_serving(view) for view in build.serving.values())
        stops = [
            (v.key, str(v.reason), v.message) for v in result.victims if not is_serving(v.key)
        ] + [
            (key, build.problems[key].reason, build.problems[key].message)
            for key in build.invalid_running
        ]
        suspended = await self._each(
            self._preempt(build, key, reason, message) for key, reason, message in stops
        )
        if build.invalid_running:
            # Stopped for their spec, they wait as they are now: decide on them again
            # (no watch event does: the status and the Job's deletion are our own writes).
            self.notify()
        suspended += await self._each(
            self._requeue(build, key, build.problems[key].message)
            for key in build.timed_out
            if not is_serving(key)
        )
        suspended += await self._each(
            self._requeue_serving(build, key, build.problems[key].message)
            for key in build.timed_out
            if is_serving(key)
        )
        suspended += await self._each(
            self._preempt_serving(build, v) for v in result.victims if is_serving(v.key)
        )
        limit = self.config.admission.max_admissions_per_pass
        deferred: list[str] = []
        if all(suspended):
            # At most max_admissions_per_pass TrainingJobs, in the order the pass admitted
            # them: the next pass decides the rest again, with what arrived meanwhile.
            gangs = [a.key for a in result.admitted if a.gang and not is_serving(a.key)]
            unbudgeted = [key for key in build.unbudgeted if not is_serving(key)]
            deferred = (gangs + unbudgeted)[limit:]
            gangs = gangs[:limit]
            unbudgeted = unbudgeted[: limit - len(gangs)]
            creations = asyncio.Semaphore(_CONCURRENCY)
            await self._each(self._admit(build, key, creations) for key in gangs)
            readiness = self.config.admission.wait_for_pods_ready
            if readiness.enabled and any(a.gang for a in result.admitted):
                # A gang admitted now is looked at again when its timeout falls due.
                due = now + timedelta(seconds=readiness.timeout_seconds)
                self._next_deadline = min(self._next_deadline or due, due)
            await self._each(
                self._admit_serving(build, a) for a in result.admitted if is_serving(a.key)
            )
            await self._each(self._admit(build, key, creations) for key in unbudgeted)
            await self._each(
                self._admit_serving_unbudgeted(build, key)
                for key in build.unbudgeted
                if is_serving(key)
            )
        else:
            HELD_BACK.inc()
            log.warning(
                "a victim's suspension failed: this pass admits nothing",
                victims=len(stops),
                failed=suspended.count(False),
            )
            self._dirty.set()
        return deferred

    async def _each(self, effects: Iterable[Awaitable[bool]]) -> list[bool]:
        """Run the effects, at most _CONCURRENCY at once; True for each that is done."""
        semaphore = asyncio.Semaphore(_CONCURRENCY)

        async def one(effect: Awaitable[bool]) -> bool:
            async with semaphore:
                try:
                    return await effect
                except (ApiError, NotLeaderError) as err:
                    log.warning("admission effect failed", error=str(err))
                    self._dirty.set()
                    return False

        return list(await asyncio.gather(*(one(e) for e in effects)))

    async def _admit(
        self, build: SnapshotBuild, key: str, slots: asyncio.Semaphore | None = None
    ) -> bool:
        """Write the pass's admission of TrainingJob `key`, then have its Job created
        (`slots`: the pass's bound on creations in flight)."""
        info = build.info.get(key)
        now = utcnow()
        admission_id = uuid.uuid4().hex[:16]
        written: list[str] = []

        def fn(status: dict[str, Any] | None, tj: dict[str, Any]) -> dict[str, Any] | None:
            metadata = tj.get("metadata") or {}
            if (
                info is None
                or info.flavor is None
                or info.job_digest is None
                or str(metadata.get("uid")) != info.uid
                or generation_of(tj) != info.generation
                or pending_admission(status) is not None
            ):
                return None  # changed since the pass (or admitted already): decide again
            written.append(admission_id)
            admission = {
                "id": admission_id,
                "jobDigest": info.job_digest,
                "team": info.team,
                "flavor": info.flavor,
                "priority": info.priority,
                "gpus": info.gpus,
                **(admission_record(info.request) if info.request is not None else {}),
            }
            return admitted(
                status,
                generation=generation_of(tj),
                now=now,
                admission={k: v for k, v in admission.items() if v is not None},
                team=info.team,
                gpus=info.gpus,
                message="the whole gang was admitted: its Job is created",
            )

        # The admission first, then the Job: a Job never runs on an admission that was not
        # written. The write under the job's lock, so no other writer of this replica
        # comes in between; the Job is created under it again, once the status is written.
        async with self.status.lock(key):
            if self.store.admitted(key) or key in self.store.jobs:
                self.notify()  # changed since the pass: decide again
                return True
            await self.status.update(key, fn, locked=True)
            tj = self.store.trainingjobs.get(key)
            if not written or pending_admission((tj or {}).get("status")) != admission_id:
                self.notify()
                return True
            self.store.admitted_at[key] = time.time()
            DECISIONS.labels("admit").inc()
            self._observe_admission(key, info.team if info is not None else None)
            self.queue.admitted(key)
            log.info("admitted", trainingjob=key, admission=admission_id)
        self._create_after_admission(key, slots or asyncio.Semaphore(_CONCURRENCY))
        return True

    def _create_after_admission(self, key: str, slots: asyncio.Semaphore) -> None:
        """Create the admitted job's Job without holding the pass back: the admission,
        written, already counts in the next pass, which can start while the Jobs are
        created (in S1's medium phase a pass's writes were twice its computation, and
        every freed slot waited for both). `slots` bounds the creations in flight. A
        creation that fails is done again by a later pass (`to_start`)."""

        async def create() -> None:
            try:
                async with slots:
                    with self.queue.admissions_writing():
                        async with self.status.lock(key):
                            if self.store.awaits_job(key):
                                await self._create_job(key)
            except (ApiError, NotLeaderError) as err:
                log.warning("creating an admitted job's Job failed", error=str(err))
                self.notify()
            except Exception:  # never lose the loop's attention: a later pass tries again
                log.exception("creating an admitted job's Job failed", trainingjob=key)
                self.notify()
            finally:
                if self._creating.get(key) is task:
                    del self._creating[key]

        task = asyncio.create_task(create(), name=f"cadre create job {key}")
        self._creating[key] = task

    async def _create_job(self, key: str) -> None:
        """Create the admitted TrainingJob's children, running. Under the job's lock."""
        tj = self.store.trainingjobs.get(key)
        if (
            tj is not None
            and key in self._jobs_made
            and self._jobs_made[key] == pending_admission(tj.get("status"))
        ):
            # Its Job for this admission was made and is gone: read the TrainingJob first.
            # If it is gone too (a ghost until the next resync), a Job made for it would
            # be deleted by the garbage collector as an orphan, and made again, and again.
            await self._confirm_exists(key, tj)
            if not self.store.awaits_job(key):
                return
            tj = self.store.trainingjobs[key]
        status = (tj or {}).get("status") or {}
        admission_id = pending_admission(status)
        if tj is None or admission_id is None:
            return
        created = await create_admitted_children(
            self.client,
            self.store,
            key,
            tj,
            admission_id=admission_id,
            team=(status.get("admission") or {}).get("team"),
            config=self.config,
        )
        if created.outcome == "created":
            if holds(self.store.trainingjobs, key, tj):  # not deleted meanwhile
                self._jobs_made[key] = admission_id
        elif created.outcome == "wait":
            await self._confirm_exists(key, tj)
            self.notify()  # an earlier child of its name goes first: a later pass creates it
        elif created.outcome == "refused":
            # What the spec builds is refused: the admission is given back at once, and
            # the job waits until its spec changes (the snapshot reads this condition).
            log.info("children refused: admission revoked", trainingjob=key)
            self.store.admitted_at.pop(key, None)
            await self.status.update(
                key,
                lambda status, obj: queued(
                    status,
                    generation=generation_of(obj),
                    now=utcnow(),
                    reason="InvalidSpec",
                    message=created.message[:1000],
                    place=None,
                    team=None,
                    gpus=None,
                ),
                locked=True,
            )
            self.notify()

    async def _confirm_exists(self, key: str, tj: dict[str, Any]) -> None:
        """Read the TrainingJob afresh into the cache, or drop it if it is gone. Two uses:
        - an admitted job whose Job is missing: a ghost (deleted while a watch was cut,
          until the resync drops it) would otherwise hold its quota and get a Job the
          garbage collector deletes, again and again;
        - a Job no admission seems to name: the cached TrainingJob may lag behind its Job
          (a new leader, the old one's last admission), and a gang must not lose its Job
          to a stale view."""
        metadata = tj.get("metadata") or {}
        uid = str(metadata.get("uid"))
        fresh = await self.client.get(
            trainingjob_path(str(metadata.get("namespace")), str(metadata.get("name")))
        )
        if fresh is None or uid_of(fresh) != uid:
            if self.store.delete_trainingjob(key, uid=uid):
                self.forget(key)
        else:
            self.store.upsert_trainingjob(fresh, read=True)

    async def _start(self, key: str) -> bool:
        """The status admits the job but its Job is not there (its creation after the
        admission failed, or the operator stopped in between, or someone deleted it):
        create it. An earlier Cadre's admitted Job still suspended: unsuspend it."""
        async with self.status.lock(key):
            if self.store.awaits_job(key):
                await self._create_job(key)
                return True
            job = self.store.jobs.get(key)
            if job is None or not job.suspended or job.finished:
                return True
            if not self.store.has_admission(key):
                return True
            log.info("starting an admitted job", trainingjob=key, job_uid=job.uid)
            ref = JobRef(job.namespace, job.name, job.uid, job.spec_hash)
            if await set_job_suspend(self.client, self.store, key, ref, suspend=False) == "gone":
                self.notify()
        return True

    async def _remove_unadmitted(self, key: str) -> bool:
        """A Job no admission names: delete it. Cadre creates Jobs only at admission, so
        it is an earlier Cadre's waiting Job, one whose revocation's delete failed, or
        someone else's. When it ran, and not because this replica is stopping it (a
        preemption whose delete is on its way), say so (Event, condition, metric)."""
        async with self.status.lock(key):
            job = self.store.jobs.get(key)
            if job is None or not self.store.stray(key):
                return True
            ours = self.store.stopping_by_cadre(key)
            if not ours:
                # The cache's TrainingJob may lag behind its Job (a new leader, the old
                # one's last admission): read it before deleting anything.
                await self._confirm_exists(key, self.store.trainingjobs.get(key) or {})
                if not self.store.stray(key):
                    return True
            ran = self.store.runs_unadmitted(key)
            await delete_job(self.client, self.store, key, JobRef(job.namespace, job.name, job.uid))
            self.store.admitted_at.pop(key, None)
            if ours or not ran:
                self.notify()
                return True
            UNADMITTED.inc()
            log.warning("deleted a job that ran without admission", trainingjob=key)
            now = utcnow()
            current = self.store.trainingjobs.get(key)
            if current is not None:
                self.status.post(unadmitted_run_event(current, now))
            await self.status.update(
                key,
                lambda status, obj: ran_without_admission(
                    status, generation=generation_of(obj), now=now
                ),
                locked=True,
            )
        self.notify()
        return True

    async def _preempt(self, build: SnapshotBuild, key: str, reason: str, message: str) -> bool:
        """Revoke a victim's admission, then suspend its Job; True once both are done (or
        the Job is gone)."""
        now = utcnow()
        return await self._stop(
            build,
            key,
            lambda status, tj: preempted(
                status, generation=generation_of(tj), now=now, reason=reason, message=message
            ),
            decision="preempt",
        )

    async def _requeue(self, build: SnapshotBuild, key: str, message: str) -> bool:
        """An admitted gang whose workers were not all running in time: its admission is
        revoked and its Job suspended (its GPUs are free), and it waits in the queue again
        after its backoff (or fails past the limit: `timed_out`)."""
        now = utcnow()
        readiness = self.config.admission.wait_for_pods_ready
        log.info("workers not running in time: requeued", trainingjob=key, why=message)
        return await self._stop(
            build,
            key,
            lambda status, tj: timed_out(
                status,
                generation=generation_of(tj),
                now=now,
                message=message,
                backoff=_backoff(readiness),
            ),
            decision="requeue",
        )

    async def _stop(
        self,
        build: SnapshotBuild,
        key: str,
        status_fn: Callable[[dict[str, Any] | None, dict[str, Any]], dict[str, Any] | None],
        *,
        decision: str,
    ) -> bool:
        """Write the status `status_fn` gives (its admission revoked), then delete the Job
        (by UID: a waiting job has none); True once both are done (or the Job is gone)."""
        async with self.status.lock(key):
            job = self.store.jobs.get(key)
            if job is not None:
                self.store.mark_stopping(key, job.uid)
            await self.status.update(key, status_fn, locked=True)
            self.store.admitted_at.pop(key, None)
            DECISIONS.labels(decision).inc()
            if job is not None:
                await delete_job(
                    self.client, self.store, key, JobRef(job.namespace, job.name, job.uid)
                )
            self.store.unexpect(key)
        return True

    def _observe_admission(self, key: str, team: str | None) -> None:
        """Time from the workload's creation to its admission, per team."""
        if team is None:
            return
        stored = stored_key(key)
        obj = (
            self.store.modeldeployments.get(stored)
            if is_serving(key)
            else self.store.trainingjobs.get(stored)
        )
        created = parse_api_time(((obj or {}).get("metadata") or {}).get("creationTimestamp"))
        if isinstance(created, datetime):
            TIME_TO_ADMISSION.labels(team).observe(max(0.0, (utcnow() - created).total_seconds()))

    # -- ModelDeployments ------------------------------------------------------------
    async def _write_serving(
        self,
        key: str,
        fn: Callable[[dict[str, Any] | None, dict[str, Any]], dict[str, Any] | None],
        *,
        released: bool = False,
    ) -> bool:
        async with self.status.lock(key):
            written = await self.status.update(key, fn, locked=True)
        self.reconcile_serving(key)
        if released and written is not None:
            self.notify()  # what it gave back may admit others: decide again
        return True

    def _serving_admission(
        self, view: ServingView, build: SnapshotBuild, replicas: int, extra: int
    ) -> dict[str, Any]:
        info = build.info.get(view.workload_key)
        record = {
            "uid": view.uid,
            "team": view.team,
            "flavor": info.flavor if info is not None else None,
            "priority": info.priority if info is not None else None,
            "replicas": replicas,
            "extraReplicas": extra,
            "gpusPerReplica": info.gpus if info is not None else 0,
        }
        return {k: v for k, v in record.items() if v is not None}

    async def _admit_serving(self, build: SnapshotBuild, admission: Admission) -> bool:
        """Admit the gang of replicas.min (with its first extras), or more extras: the
        status first; the reconciler scales up to it."""
        view = build.serving.get(admission.key)
        if view is None:
            return True
        now = utcnow()

        def fn(status: dict[str, Any] | None, md: dict[str, Any]) -> dict[str, Any] | None:
            uid = str((md.get("metadata") or {}).get("uid", ""))
            current = admission_of(status, uid)
            if uid != view.uid or (current is None) != admission.gang:
                return None  # changed since the pass: the next one decides
            gang = view.gang if current is None else int(current.get("replicas") or 0)
            record = self._serving_admission(view, build, gang, admission.total_extra_replicas)
            return serving_admitted(
                status, generation=generation_of(md), now=now, admission=record, team=view.team
            )

        if admission.gang:
            self.store.admitted_at[admission.key] = time.time()
            DECISIONS.labels("admit").inc()
            self._observe_admission(admission.key, view.team)
        self.queue.admitted(admission.key)
        log.info(
            "serving admitted",
            modeldeployment=view.key,
            gang=admission.gang,
            extra_replicas=admission.total_extra_replicas,
        )
        return await self._write_serving(admission.key, fn)

    async def _admit_serving_unbudgeted(self, build: SnapshotBuild, key: str) -> bool:
        """No budget covers its namespace and the config runs such work: everything it
        wants is admitted, without quota."""
        view = build.serving.get(key)
        if view is None or view.spec is None:
            return True
        now = utcnow()

        def fn(status: dict[str, Any] | None, md: dict[str, Any]) -> dict[str, Any] | None:
            if str((md.get("metadata") or {}).get("uid", "")) != view.uid:
                return None
            gang = view.gang
            record = self._serving_admission(view, build, gang, max(0, view.wanted - gang))
            return serving_admitted(
                status, generation=generation_of(md), now=now, admission=record, team=None
            )

        return await self._write_serving(key, fn)

    async def _preempt_serving(self, build: SnapshotBuild, victim: Victim) -> bool:
        """Lower (extra replicas) or revoke (the gang) a ModelDeployment's admission; the
        reconciler scales down to it."""
        view = build.serving.get(victim.key)
        if view is None:
            return True
        now = utcnow()

        def fn(status: dict[str, Any] | None, md: dict[str, Any]) -> dict[str, Any] | None:
            uid = str((md.get("metadata") or {}).get("uid", ""))
            current = admission_of(status, uid)
            if current is None:
                return None
            generation = generation_of(md)
            if victim.replicas == 0:
                return serving_revoked(
                    status,
                    generation=generation,
                    now=now,
                    reason=str(victim.reason),
                    message=victim.message,
                )
            record = {**current, "extraReplicas": victim.extra_replicas_left}
            return serving_admitted(
                status, generation=generation, now=now, admission=record, team=view.team
            )

        DECISIONS.labels("preempt").inc()
        log.info(
            "serving preempted",
            modeldeployment=view.key,
            replicas=victim.replicas or "all",
            reason=str(victim.reason),
        )
        return await self._write_serving(victim.key, fn)

    async def _requeue_serving(self, build: SnapshotBuild, key: str, message: str) -> bool:
        """A ModelDeployment whose replicas.min were not all scheduled in time: its
        admission is taken back (the reconciler scales it to 0, its GPUs are free) and it
        waits in the queue again after its backoff (`serving_timed_out`)."""
        view = build.serving.get(key)
        if view is None:
            return True
        now = utcnow()
        readiness = self.config.admission.wait_for_pods_ready

        def fn(status: dict[str, Any] | None, md: dict[str, Any]) -> dict[str, Any] | None:
            uid = str((md.get("metadata") or {}).get("uid", ""))
            if admission_of(status, uid) is None:
                return None
            return serving_timed_out(
                status,
                generation=generation_of(md),
                now=now,
                message=message,
                backoff=_backoff(readiness),
            )

        DECISIONS.labels("requeue").inc()
        log.info("replicas not scheduled in time: requeued", modeldeployment=view.key, why=message)
        return await self._write_serving(key, fn, released=True)

    async def _release_serving(self, view: ServingView) -> bool:
        """Give back what is admitted beyond what the ModelDeployment wants and runs: all
        of it when it is stopped or cannot be served, extra replicas when the autoscaler
        wants fewer or a rolling update is done."""
        if view.admission is None:
            return True
        now = utcnow()
        stopped = view.spec is not None and view.spec.stopped
        if view.problem is not None or stopped:
            reason, message = view.problem or (
                "Stopped",
                "spec.stopped is true: no replica runs and the quota is released",
            )
            return await self._write_serving(
                view.workload_key,
                lambda status, md: (
                    serving_revoked(
                        status,
                        generation=generation_of(md),
                        now=now,
                        reason=reason,
                        message=message,
                    )
                    if admission_of(status, view.uid) is not None
                    else None
                ),
                released=True,
            )
        keep = max(view.wanted, view.running)
        if view.admitted <= keep:
            return True

        def fn(status: dict[str, Any] | None, md: dict[str, Any]) -> dict[str, Any] | None:
            current = admission_of(status, view.uid)
            if current is None:
                return None
            gang = min(int(current.get("replicas") or 0), keep)
            record = {**current, "replicas": gang, "extraReplicas": max(0, keep - gang)}
            if record == current:
                return None
            return serving_admitted(
                status, generation=generation_of(md), now=now, admission=record, team=view.team
            )

        log.info("serving released", modeldeployment=view.key, admitted=view.admitted, keep=keep)
        return await self._write_serving(view.workload_key, fn, released=True)

    def forget(self, key: str) -> None:
        self.queue.forget(key)
        self.status.forget(key)
        self._jobs_made.pop(key, None)

    def forget_gone(self) -> None:
        """Drop what the writers keep for workloads the cache no longer holds. Each
        deletion forgets its own (`forget`); this is the level-based repair for one whose
        forgetting was missed (bench_churn once found three, with no event path to show),
        which would otherwise stay until the process ends: no resync lists them again.
        Called after each resync (`Cache`), not each pass: it walks every key the writers
        hold, 4.7 ms a pass at 15,000 (S1)."""
        gone = sorted(
            k for k in set(self._jobs_made) | self.status.held() if not self.status.cached(k)
        )
        for key in gone:
            self.forget(key)
        if gone:
            log.warning(
                "dropped the state kept for workloads gone from the cache",
                keys=gone[:5],
                count=len(gone),
            )

    def sizes(self) -> dict[str, int]:
        return {"jobs_made": len(self._jobs_made)}


class PassPacer:
    """When the next pass may start: PASSES_PER_COMPUTE lengths of the last pass's
    computation (snapshot and decisions) after its start, at least MIN_SPACING and at
    most `min_interval` after it. Under load (passes over long queues) that is one pass
    per `min_interval`, as ever; a cheap pass (an idle cluster) lets the next one start
    MIN_SPACING later, so a change there is decided at once, even at one a second.
    MIN_SPACING is there because passes closer than that decided on a ModelDeployment
    its reconciler had not caught up with yet (a second QuotaLimited Event in
    test_the_autoscaler_grows_it_one_replica_at_a_time_until_the_quota_stops_it).

    A pass that has to wait also starts no sooner than `debounce` after the loop noticed
    the change it will decide on, to gather a burst. The wait for the pacer counts
    towards it: it was added on top, and in S1's large phase, where every pass waits
    for the pacer, it made each cycle 1.2 s instead of 1 s (docs/benchmarks.md)."""

    def __init__(self, min_interval: float, *, debounce: float = 0.0) -> None:
        self.min_interval = min_interval
        self.debounce = debounce
        self._ready = 0.0

    def wait(self, now: float, *, noticed: float | None = None) -> float:
        """Seconds until a pass may start (0: now). `noticed`: when the loop noticed the
        change (monotonic; `now` if not given)."""
        wait = self._ready - now
        if wait <= 0:
            return 0.0  # nothing to wait out: decide at once
        noticed = now if noticed is None else noticed
        return max(wait, noticed + self.debounce - now)

    def ran(self, started: float, compute_seconds: float) -> None:
        """A pass started at `started` (monotonic) and computed for `compute_seconds`."""
        spacing = min(self.min_interval, max(MIN_SPACING, PASSES_PER_COMPUTE * compute_seconds))
        self._ready = started + spacing


def _backoff(readiness: WaitForPodsReady) -> Backoff:
    return Backoff(
        readiness.backoff_base_seconds,
        readiness.backoff_max_seconds,
        readiness.backoff_limit_count,
    )
