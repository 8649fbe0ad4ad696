"""Leader election on a real Lease: one leader; a leader that cannot renew stops writing
before a standby can take over (fencing); a released Lease is taken over at once.

Two electors in this process, each with its own client, on the test's namespace; short
durations (lease 6 s, renew deadline 4 s, retry 0.5 s). A leader's renewals are cut by
the client's fault injection (every PUT of leases fails), as a partition would.
"""

from __future__ import annotations

import asyncio
import time

from cadre.controller.client import (
    ApiClient,
    ApiUnreachableError,
    ClientSettings,
    NotLeaderError,
)
from cadre.controller.faults import FaultInjector
from cadre.controller.leader import LeaderElector
from cadre.core.api.config import LeaderElectionSettings
from localcluster import LocalCluster

SETTINGS = LeaderElectionSettings.model_validate(
    {
        "leaseName": "test-leader",
        "leaseDurationSeconds": 6,
        "renewDeadlineSeconds": 4,
        "retryPeriodSeconds": 0.5,
    }
)


class Replica:
    def __init__(
        self,
        apiserver: LocalCluster,
        namespace: str,
        identity: str,
        *,
        settings: ClientSettings | None = None,
        start_until: asyncio.Event | None = None,
    ) -> None:
        self.faults = FaultInjector()
        self.client = ApiClient.connect(
            str(apiserver.kubeconfig), settings or ClientSettings(retries=0), faults=self.faults
        )
        self.started = asyncio.Event()
        self.stopped_at: float | None = None
        self.started_at: float | None = None
        self.start_until = start_until
        """A start that lasts until this is set (a long takeover sync)."""
        self.start_done = False
        self.start_cancelled = False
        self.elector = LeaderElector(
            self.client,
            SETTINGS,
            identity=identity,
            namespace=namespace,
            on_started_leading=self._started,
            on_stopped_leading=self._stopped,
        )
        self.client.write_gate = self.elector.may_write
        self.task = asyncio.create_task(self.elector.run())

    async def _started(self) -> None:
        self.started_at = time.monotonic()
        self.started.set()
        if self.start_until is not None:
            try:
                await self.start_until.wait()
            except asyncio.CancelledError:
                self.start_cancelled = True
                raise
        self.start_done = True

    def _stopped(self) -> None:
        self.stopped_at = time.monotonic()

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()


def lease_path(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/test-leader"


async def renewals_seen(
    replica: Replica, namespace: str, count: int, timeout: float, reader: ApiClient | None = None
) -> None:
    """Until `count` renewals of the replica's lease were seen on the Lease itself (read
    through `reader`, by default the replica's own client); the replica holds it all along."""
    reader = reader or replica.client
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        assert time.monotonic() < deadline, f"{len(seen)} renewals seen, {count} wanted"
        spec = (await reader.get(lease_path(namespace)) or {})["spec"]
        assert spec["holderIdentity"] == replica.elector.identity, spec
        seen.add(spec["renewTime"])
        await asyncio.sleep(0.1)  # the poll's interval: renewals come every 0.5 s


async def wait(what: str, check: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_one_leader_fenced_before_takeover_and_released_at_once(
    apiserver: LocalCluster, namespace: str
) -> None:
    async def scenario() -> None:
        a = Replica(apiserver, namespace, "replica-a")
        await asyncio.wait_for(a.started.wait(), 10)
        b = Replica(apiserver, namespace, "replica-b")
        try:
            # b stands by: the lease is a's, b never writes.
            # a renews, b stands by: three renewals seen on the Lease, and b took nothing.
            await renewals_seen(a, namespace, count=3, timeout=30, reader=b.client)
            assert not b.started.is_set()
            assert a.elector.may_write() and not b.elector.may_write()

            # a is cut off from renewing: it stops writing by its renew deadline...
            a.faults.add({"verb": "PUT", "resource": "leases", "fault": "network", "times": 999})
            await wait("a fenced", lambda: not a.elector.may_write())
            fenced = time.monotonic()
            try:
                await a.client.merge_patch(f"/api/v1/namespaces/{namespace}", {})
                raise AssertionError("a wrote after its deadline")
            except NotLeaderError:
                pass
            # ...and b takes over only after the lease duration, later than that: by the
            # margin of lease duration over renew deadline.
            await asyncio.wait_for(b.started.wait(), 30)
            assert b.started_at is not None
            assert fenced <= b.started_at
            assert b.started_at - fenced >= (
                SETTINGS.lease_duration_seconds - SETTINGS.renew_deadline_seconds - 0.5
            )
            await wait("a stepped down", lambda: a.stopped_at is not None)

            # A graceful stop releases the lease: a new replica takes over at once.
            c = Replica(apiserver, namespace, "replica-c")
            try:
                # c tries once a retry period (0.5 s): one try, and it took nothing while
                # b holds the lease (a "nothing happened" check: a fixed wait says how long).
                await asyncio.sleep(SETTINGS.retry_period_seconds)
                assert not c.started.is_set()
                released = time.monotonic()
                await b.elector.release()
                assert not b.elector.may_write()
                await asyncio.wait_for(c.started.wait(), 10)
                assert c.started_at is not None
                assert c.started_at - released < SETTINGS.lease_duration_seconds
            finally:
                await c.close()
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())


def test_a_start_longer_than_the_renew_deadline_keeps_the_lease(
    apiserver: LocalCluster, namespace: str
) -> None:
    """A takeover sync of a large cluster lasts longer than the renew deadline: the leader
    renews while it starts (before, the renewals began only once the start returned, by
    when the deadline had passed, and a big cluster's leader stepped down at every start);
    a lease lost during the start stops the start."""

    async def scenario() -> None:
        long_start = asyncio.Event()
        a = Replica(apiserver, namespace, "replica-a", start_until=long_start)
        try:
            await asyncio.wait_for(a.started.wait(), 10)
            # Renewals through twice the renew deadline while the start still runs. The
            # span is the check: a leader that did not renew would step down within one
            # renew deadline (4 s), so none within two says it renewed.
            await renewals_seen(a, namespace, count=4, timeout=30)
            await wait(
                "two renew deadlines",
                lambda: (
                    time.monotonic() - (a.started_at or 0) > 2 * SETTINGS.renew_deadline_seconds
                ),
                timeout=30,
            )
            assert not a.start_done and a.stopped_at is None
            assert a.elector.may_write()
            long_start.set()
            await wait("the start done", lambda: a.start_done)
            assert a.elector.may_write()
        finally:
            await a.close()

        # A lease lost while the start runs stops the start and steps down.
        b_start = asyncio.Event()
        b = Replica(apiserver, namespace, "replica-b", start_until=b_start)
        try:
            await asyncio.wait_for(b.started.wait(), 30)  # a's lease lapsed (not released)
            b.faults.add({"verb": "PUT", "resource": "leases", "fault": "network", "times": 999})
            await wait("b stepped down", lambda: b.stopped_at is not None, timeout=30)
            assert b.start_cancelled and not b.start_done
            assert not b.elector.may_write()
        finally:
            await b.close()

    asyncio.run(scenario())


def test_a_leader_whose_event_loop_is_blocked_keeps_the_lease(
    apiserver: LocalCluster, namespace: str
) -> None:
    """An admission pass over a burst of new jobs once held the event loop for 10 s, past
    the renew deadline, and the leader stepped down (S2, docs/benchmarks.md). The
    renewals run on a thread of their own: a loop blocked for longer than the lease
    duration loses nothing, and a standby sees the renewals and takes nothing."""

    async def scenario() -> None:
        a = Replica(apiserver, namespace, "replica-a")
        await asyncio.wait_for(a.started.wait(), 10)
        b = Replica(apiserver, namespace, "replica-b")
        try:
            await renewals_seen(a, namespace, count=2, timeout=30, reader=b.client)
            before = (await b.client.get(lease_path(namespace)) or {})["spec"]["renewTime"]
            blocked = SETTINGS.lease_duration_seconds + 1
            # The fault under test: this loop (both replicas' loop) runs nothing for longer
            # than the lease duration, as a long synchronous pass would.
            time.sleep(blocked)
            assert a.stopped_at is None and a.elector.may_write()
            spec = (await b.client.get(lease_path(namespace)) or {})["spec"]
            assert spec["holderIdentity"] == "replica-a"
            assert spec["renewTime"] != before  # renewed while the loop was blocked
            await renewals_seen(a, namespace, count=3, timeout=30, reader=b.client)
            assert not b.started.is_set() and a.stopped_at is None
        finally:
            await b.close()
            await a.close()

    asyncio.run(scenario())


def test_lease_renewals_do_not_wait_for_the_clients_pool(
    apiserver: LocalCluster, namespace: str
) -> None:
    """Every pooled connection busy (here one, held by a watch; in a takeover, pages of
    pods and thousands of status writes): the Lease still renews, on its own connection.
    Before, the renewal waited for a pooled connection until its connect timeout, and the
    leader of a loaded cluster lost its lease to its own traffic."""

    async def scenario() -> None:
        settings = ClientSettings(retries=0, max_connections=1, connect_timeout_seconds=1)
        a = Replica(apiserver, namespace, "replica-a", settings=settings)
        watching = asyncio.Event()

        async def hold_the_pool() -> None:
            path = f"/api/v1/namespaces/{namespace}/configmaps"
            async for _ in a.client.watch(path, {"timeoutSeconds": "60"}):
                watching.set()
            watching.set()

        holder: asyncio.Task[None] | None = None
        observer = ApiClient.connect(str(apiserver.kubeconfig))
        try:
            await asyncio.wait_for(a.started.wait(), 10)
            # A ConfigMap, so that the watch's first event (its ADDED) says it is connected.
            await a.client.create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "pool-holder", "namespace": namespace},
                }
            )
            holder = asyncio.create_task(hold_the_pool())
            await asyncio.wait_for(watching.wait(), 10)
            # The pool is taken: a pooled request times out waiting for its connection...
            try:
                await a.client.request("GET", f"/api/v1/namespaces/{namespace}")
                raise AssertionError("the pool had a free connection")
            except ApiUnreachableError:
                pass
            # ...and the lease renews through three renew deadlines all the same (as
            # another client sees it).
            await renewals_seen(a, namespace, count=3, timeout=30, reader=observer)
            await wait(
                "three renew deadlines",
                lambda: (
                    time.monotonic() - (a.started_at or 0) > 3 * SETTINGS.renew_deadline_seconds
                ),
                timeout=30,
            )
            assert a.stopped_at is None and a.elector.may_write()
        finally:
            if holder is not None:
                holder.cancel()
                await asyncio.gather(holder, return_exceptions=True)
            await a.close()
            await observer.close()

    asyncio.run(scenario())
