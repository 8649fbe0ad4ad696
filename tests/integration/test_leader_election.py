"""Leader election on a real Lease: one leader; a leader that cannot renew stops writing
before a standby can take over (fencing); a released Lease is taken over at once.

Two electors in this process, each with its own client, on the test's namespace; short
durations (lease 6 s, renew deadline 4 s, retry 0.5 s). A leader's renewals are cut by
the client's fault injection (every PUT of leases fails), as a partition would.
"""

from __future__ import annotations

import asyncio
import time

from cadre.controller.client import ApiClient, ClientSettings, NotLeaderError
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
    def __init__(self, apiserver: LocalCluster, namespace: str, identity: str) -> None:
        self.faults = FaultInjector()
        self.client = ApiClient.connect(
            str(apiserver.kubeconfig), ClientSettings(retries=0), faults=self.faults
        )
        self.started = asyncio.Event()
        self.stopped_at: float | None = None
        self.started_at: float | None = None
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

    def _stopped(self) -> None:
        self.stopped_at = time.monotonic()

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()


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
            lease = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/test-leader"
            renewals: set[str] = set()

            async def renewed_thrice() -> bool:
                spec = (await b.client.get(lease) or {})["spec"]
                assert spec["holderIdentity"] == "replica-a"
                renewals.add(spec["renewTime"])
                return len(renewals) >= 3

            deadline = time.monotonic() + 30
            while not await renewed_thrice():
                assert time.monotonic() < deadline, "the leader does not renew"
                await asyncio.sleep(0.1)
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
