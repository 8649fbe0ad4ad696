"""Leader election on a coordination.k8s.io Lease, with fencing: one replica writes.

Every replica watches and keeps its cache warm; only the holder of the Lease runs the
admission loop, the queue-status writer, the budget writer and the reconcilers. The
algorithm is client-go's:

- a candidate takes the Lease when it is free, or when its record (holder, renewTime,
  transitions) has not changed for `leaseDurationSeconds` *as measured on the candidate's
  own monotonic clock* from when it first saw that record (no clocks are compared across
  machines);
- the leader renews every `retryPeriodSeconds` with an update conditional on the Lease's
  resourceVersion (a 409 means someone else wrote it: the leader reads it again);
- **fencing**: the leader may write only until `renewDeadlineSeconds` after it *sent* its
  last successful renewal. The server applied that renewal after it was sent, and a
  candidate starts its lease-duration count only once it sees it, so the leader's writes
  stop at least `leaseDuration - renewDeadline` seconds before anyone can take over. The
  API client checks `may_write()` before each write attempt and again right before the
  request goes on the wire; a replica past its deadline raises `NotLeaderError` instead.
- a leader that cannot renew by its deadline stops leading and its process exits (the
  Deployment restarts it as a standby); on a graceful stop it releases the Lease, so the
  standby takes over at once instead of after the lease duration.
- the leader renews from a thread of its own, with its own event loop and connection, as
  client-go renews from a goroutine of its own: a long synchronous stretch of the main
  loop (an admission pass over a burst of 26,000 new jobs took 10 s in S2,
  docs/benchmarks.md) cannot cost the lease. A main loop that hangs for good stops
  answering `/healthz`, which it serves, so the liveness probe restarts the process.

Why not `kubernetes.leaderelection` (or its async port in kubernetes.aio): it measures
expiry with the wall clock (`time.time()`), counts its renew deadline from the start of
each renewal attempt rather than from the last success, and offers no way to ask "may I
write now?" — the fencing that "a partitioned leader never writes after the new leader's
first write" needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from prometheus_client import Gauge

from cadre.controller.client import ApiClient, ApiError, lease_path
from cadre.core.api.config import LeaderElectionSettings

log = structlog.get_logger("cadre.leader")

IS_LEADER = Gauge("cadre_leader", "1 while this replica holds the leader's Lease.")
_JITTER: Final = 0.2


def micro_time(now: datetime) -> str:
    """metav1.MicroTime, as a Lease's renewTime and acquireTime are written."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    """The pod's name in a cluster (POD_NAME from the downward API), else host and pid.
    A container restarted in its pod (a crash, an OOM kill) keeps the pod's name, so it
    takes its own lease back at once instead of waiting out the lease duration: the
    process that held it is gone."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


class LeaderElector:
    def __init__(
        self,
        client: ApiClient,
        settings: LeaderElectionSettings,
        *,
        identity: str,
        namespace: str,
        on_started_leading: Callable[[], Coroutine[Any, Any, None]],
        on_stopped_leading: Callable[[], None],
    ) -> None:
        self.client = client
        self.settings = settings
        self.identity = identity
        self.namespace = namespace
        self.path = lease_path(namespace, settings.lease_name)
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._leading = False
        self._released = False
        self._renewed_at = float("-inf")
        """Monotonic time at which the last successful renewal was sent."""
        self._lease: dict[str, Any] | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.leader_since: float | None = None
        self.holder: str | None = None
        """The holder as last seen (for the health endpoint and logs)."""

    # -- the write gate ---------------------------------------------------------------------
    def may_write(self) -> bool:
        return self._leading and time.monotonic() < (
            self._renewed_at + self.settings.renew_deadline_seconds
        )

    @property
    def leading(self) -> bool:
        return self._leading

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Acquire, lead until the lease is lost, then call `on_stopped_leading`."""
        retry = self.settings.retry_period_seconds
        log.info("waiting to acquire the leader lease", lease=self.path, identity=self.identity)
        while True:
            if await self._attempt(self.client):
                break
            await asyncio.sleep(retry * (1 + random.uniform(0, _JITTER)))
        self._leading = True
        self.leader_since = time.monotonic()
        IS_LEADER.set(1)
        log.info("acquired the leader lease", lease=self.path, identity=self.identity)
        # The start (a takeover sync: TrainingJobs, Jobs, nodes and budgets read afresh) runs
        # beside the renewals, as client-go runs OnStartedLeading in its own goroutine:
        # a start longer than the renew deadline must not cost the lease it starts under.
        renewing = asyncio.create_task(self._renew_from_thread(), name="cadre lease renewal")
        starting = asyncio.create_task(self._on_started(), name="cadre leader start")
        try:
            await asyncio.wait((renewing, starting), return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # a start that failed stops leading with its error
                await renewing
        finally:
            self._leading = False
            IS_LEADER.set(0)
            for task in (starting, renewing):
                task.cancel()  # a lease lost mid-start stops the start
            await asyncio.gather(starting, renewing, return_exceptions=True)
        if self._released:
            return  # given up on purpose (a graceful stop)
        log.error(
            "lost the leader lease: stopping (the process exits, a standby takes over)",
            lease=self.path,
            identity=self.identity,
            holder=self.holder,
        )
        self._on_stopped()

    async def _renew_from_thread(self) -> None:
        """Renew on a thread of its own until the lease is lost; cancelled, stop it."""
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()

        def on_lost() -> None:
            def settle() -> None:
                if not lost.done():
                    lost.set_result(None)

            # A closed main loop (RuntimeError) has nobody waiting for this any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle)

        renewer = _RenewalThread(self._renew_until_lost, self.client, on_lost)
        renewer.start()
        try:
            await lost
        finally:
            renewer.stop()
            # A renewal in flight ends within its deadline; until then it cannot make this
            # replica write again (`_leading` is off), and a release after it is
            # conditional on the Lease's version, so it cannot be overtaken.
            await asyncio.to_thread(renewer.join, self.settings.renew_deadline_seconds)

    async def _renew_until_lost(self, client: ApiClient) -> None:
        retry = self.settings.retry_period_seconds
        deadline_seconds = self.settings.renew_deadline_seconds
        while True:
            await asyncio.sleep(retry)
            deadline = self._renewed_at + deadline_seconds
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                try:
                    async with asyncio.timeout(left):  # not wait_for: see tasks.wait_at_most
                        renewed = await self._attempt(client)
                except TimeoutError:
                    return
                if renewed:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                await asyncio.sleep(min(retry / 2, left))

    async def _attempt(self, client: ApiClient) -> bool:
        """One try to acquire or renew; True when this replica holds the lease now."""
        try:
            return await self._try_acquire_or_renew(client)
        except ApiError as err:
            if err.status == 404 and "namespaces" in err.message:
                log.error(
                    "the leader Lease's namespace does not exist: create it, or set "
                    "leaderElection.leaseNamespace in the operator config",
                    namespace=self.namespace,
                )
            else:
                log.warning("leader lease: request failed", error=str(err), status=err.status)
            return False

    async def _try_acquire_or_renew(self, client: ApiClient) -> bool:
        if self._released:
            return False  # a graceful stop gave the lease up: never take it again
        lease = self._lease if self._leading else None
        if lease is None:
            lease = await client.get(self.path, own_connection=True)
            if lease is None:
                return await self._create(client)
        spec = lease.get("spec") or {}
        record = (
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            spec.get("leaseTransitions"),
        )
        now_mono = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now_mono
        holder = spec.get("holderIdentity") or None
        self.holder = holder
        duration = float(spec.get("leaseDurationSeconds") or self.settings.lease_duration_seconds)
        if holder not in (None, self.identity) and now_mono < self._observed_at + duration:
            return False  # held by another, and not expired by our own clock
        now = datetime.now(UTC)
        mine = holder == self.identity
        new_spec = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.settings.lease_duration_seconds),
            "renewTime": micro_time(now),
            "acquireTime": spec.get("acquireTime") if mine else micro_time(now),
            "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (0 if mine else 1),
        }
        body = {**lease, "spec": new_spec}
        sent = time.monotonic()
        try:
            updated = await client.request(
                "PUT", self.path, body, fenced=False, retries=0, own_connection=True
            )
        except ApiError as err:
            if err.status == 409:
                self._lease = None  # someone else wrote it: read it again next time
                return False
            raise
        self._remember(updated[1], sent)
        if not mine:
            log.info("took the lease over", previous=holder, identity=self.identity)
        return True

    async def _create(self, client: ApiClient) -> bool:
        now = micro_time(datetime.now(UTC))
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.settings.lease_name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.settings.lease_duration_seconds),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        sent = time.monotonic()
        status, answer = await client.request(
            "POST",
            self.path.rsplit("/", 1)[0],
            body,
            ok=(409,),
            fenced=False,
            retries=0,
            own_connection=True,
        )
        if status == 409:
            return False
        self._remember(answer, sent)
        return True

    def _remember(self, lease: dict[str, Any], sent: float) -> None:
        self._lease = lease
        self._renewed_at = sent
        spec = lease.get("spec") or {}
        self._observed = (
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            spec.get("leaseTransitions"),
        )
        self._observed_at = time.monotonic()
        self.holder = self.identity

    async def release(self) -> None:
        """Give the lease up (a graceful stop): the standby takes over at once."""
        self._released = True  # no renewal from now on
        if not self.may_write() or self._lease is None:
            return
        self._leading = False
        IS_LEADER.set(0)
        lease: dict[str, Any] | None = self._lease
        for _ in range(3):  # a renewal in flight may have moved the Lease on: read it again
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = dict(lease.get("spec") or {})
            spec.update(
                holderIdentity="",
                leaseDurationSeconds=1,
                renewTime=micro_time(datetime.now(UTC)),
            )
            try:
                await self.client.request(
                    "PUT",
                    self.path,
                    {**lease, "spec": spec},
                    fenced=False,
                    retries=0,
                    own_connection=True,
                )
                log.info("released the leader lease", lease=self.path)
                return
            except ApiError as err:
                if err.status != 409:
                    log.warning("releasing the leader lease failed", error=str(err))
                    return
                lease = await self.client.get(self.path, own_connection=True)


class _RenewalThread(threading.Thread):
    """The leader's renewals (`LeaderElector._renew_until_lost`) on an event loop of this
    thread's own, through a client of its own (`ApiClient.fork`). The elector's state they
    write (`_renewed_at`, `_lease`, the observed record) is plain attributes, each assigned
    whole, which the main loop reads (`may_write`)."""

    def __init__(
        self,
        renew_until_lost: Callable[[ApiClient], Awaitable[None]],
        client: ApiClient,
        on_lost: Callable[[], None],
    ) -> None:
        super().__init__(name="cadre-lease-renewal", daemon=True)
        self._renew_until_lost = renew_until_lost
        self._client = client
        self._on_lost = on_lost
        self._started = threading.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def run(self) -> None:
        try:
            lost = asyncio.run(self._renew())
        except Exception:  # a bug: leading without renewals would be worse than stopping
            log.exception("the lease's renewal thread failed")
            lost = True
        if lost:
            self._on_lost()

    async def _renew(self) -> bool:
        """True when the lease was lost, False when stopped."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._started.set()
        client = self._client.fork()
        try:
            if self._stopping:
                return False
            await self._renew_until_lost(client)
            return True
        except asyncio.CancelledError:
            return False
        finally:
            await client.close()

    def stop(self) -> None:
        """Stop renewing (the main loop stops leading); returns at once, `join` waits."""
        self._stopping = True
        if not self._started.is_set():
            return  # it will see `_stopping` once started (both are set before looked at)
        loop, task = self._loop, self._task
        if loop is None or task is None:
            return
        with contextlib.suppress(RuntimeError):  # its loop is closed: it ended already
            loop.call_soon_threadsafe(task.cancel)
