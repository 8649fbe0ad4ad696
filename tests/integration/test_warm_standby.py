"""A warm standby on a real API server: two operator runtimes in this process, one leading.
The standby parses the specs it would meet on taking over (those its fill listed and those
its watch brings) and runs no pass; once the leader lets the Lease go, its passes as
leader parse no spec again, and it admits the waiting job when quota frees."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from cadre.controller.client import ApiClient, ClientSettings
from cadre.controller.runtime.context import Runtime
from cadre.core.api.config import OperatorConfig, parse_config
from cadre.core.cluster import snapshot
from cadre.core.cluster.snapshot import unparsed
from cadre_process import EXAMPLE_CONFIG
from localcluster import LocalCluster
from trainingjobs import TJS, trainingjob

pytestmark = pytest.mark.integration


async def until(what: str, check: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll a replica's own state (no signal to wait on from outside it)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def config_for(namespace: str) -> OperatorConfig:
    config = parse_config(EXAMPLE_CONFIG.read_text())
    election = config.leader_election.model_copy(
        update={
            "lease_name": f"standby-{uuid.uuid4().hex[:6]}",
            "lease_namespace": namespace,
            "lease_duration_seconds": 6,
            "renew_deadline_seconds": 4,
            "retry_period_seconds": 0.5,
        }
    )
    return config.model_copy(update={"leader_election": election})


def test_a_standby_parses_ahead_and_as_leader_parses_nothing_again(
    apiserver: LocalCluster,
    namespace: str,
    team: str,
    t4_node: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = TJS.format(ns=namespace)
    config = config_for(namespace)
    # Its quota (4 GPUs) holds one of these: the leader admits "listed", "watched" waits.
    apiserver.api.create(path, trainingjob("listed", workers=2, gpus=2))

    async def scenario() -> None:
        def replica(identity: str) -> Runtime:
            client = ApiClient.connect(str(apiserver.kubeconfig), ClientSettings(retries=2))
            return Runtime.create(config, client, identity=identity)

        leader, standby = replica("replica-a"), replica("replica-b")
        stopped: list[Runtime] = []
        try:
            await leader.start()
            await until("replica-a leading", leader.leading)
            await standby.start()
            assert not standby.leading()
            apiserver.api.create(path, trainingjob("watched", workers=2, gpus=2))
            keys = {f"{namespace}/listed", f"{namespace}/watched"}

            await until(
                "the standby parsing both specs",
                lambda: (
                    keys <= set(standby.store.trainingjobs)
                    and not unparsed(standby.store, standby.loop.snapshot_cache)
                ),
            )
            assert not standby.leading() and standby.loop.last_result is None  # no pass ran
            assert standby.ready() and standby.alive()

            # The leader stops gracefully and lets the Lease go: the standby takes over.
            await leader.stop()
            stopped.append(leader)
            parsed: list[str] = []
            parse = snapshot._parse

            def counted(tj: Any, config: OperatorConfig) -> Any:
                parsed.append(tj["metadata"]["name"])
                return parse(tj, config)

            monkeypatch.setattr(snapshot, "_parse", counted)
            listed, watched = sorted(keys)
            await until(
                "replica-b leading, with the job the quota holds admitted and one waiting",
                lambda: (
                    standby.store.admitted(listed)
                    and (result := standby.loop.last_result) is not None
                    and watched in result.pending_by_key()
                ),
            )

            # Quota frees: the new leader admits the job it parsed while standing by.
            apiserver.api.call("DELETE", f"{path}/listed")
            await until("watched admitted", lambda: standby.store.admitted(watched))
            assert parsed == []
            assert standby.alive()
        finally:
            for runtime in (leader, standby):
                if runtime not in stopped:
                    await runtime.stop()

    asyncio.run(scenario())
