"""The budget writer's settling order against a small in-memory fake of the API: a going
pod's charge is in the budget's status before its finalizer is removed, never twice.
(The real thing, with the operator killed in between, is e2e/test_budgets_e2e.py.)"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cadre.controller.budget_writer import BudgetWriter
from cadre.controller.client import ApiError, budget_path, pod_path
from cadre.core.accounting import pod_charge
from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.snapshot import build_snapshot
from cadre.core.cluster.store import Store
from cadre.core.scheduling import schedule

FINALIZERS = ["batch.kubernetes.io/job-tracking", "cadre.dev/accounting"]
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
"""The writer's clock in these tests: mid-month, so that a pod that started 100 s before is
in the current budget period whatever the wall clock says (with the real clock, the tests
failed in the first 100 s of a month: the charge went to the previous period)."""
START = NOW - timedelta(seconds=100)
CONFIG = OperatorConfig.model_validate(
    {
        "flavors": [
            {
                "name": "a100",
                "nodeLabels": {"cadre.dev/flavor": "a100"},
                "prices": {"gpuHour": "3600"},
            }
        ]
    }
)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(uid: str, *, seconds: int | None, deleting: bool = True) -> dict[str, Any]:
    state: dict[str, Any]
    if seconds is None:
        state = {"running": {"startedAt": stamp(START)}}
    else:
        state = {
            "terminated": {
                "startedAt": stamp(START),
                "finishedAt": stamp(START + timedelta(seconds=seconds)),
            }
        }
    metadata: dict[str, Any] = {
        "name": f"w-{uid}",
        "namespace": "ns",
        "uid": uid,
        "labels": {"cadre.dev/team": "vision", "cadre.dev/flavor": "a100"},
        "finalizers": list(FINALIZERS),
    }
    if deleting:
        metadata["deletionTimestamp"] = stamp(NOW)
    return {
        "metadata": metadata,
        "spec": {
            "containers": [{"name": "worker", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]
        },
        "status": {"containerStatuses": [{"name": "worker", "state": state}]},
    }


class FakeKube:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.fail_status = False
        self.conflict_with: dict[str, Any] | None = None
        """The next status write fails with 409; a read then returns this budget."""
        self.wrote = asyncio.Event()
        """Set by the first status write."""

    async def patch_status(
        self, path: str, status: dict[str, Any], *, resource_version: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(("status", path, copy.deepcopy(status)))
        self.wrote.set()
        if self.fail_status:
            raise ApiError("PATCH", path, 500, b"etcd is away")
        if self.conflict_with is not None:
            raise ApiError("PATCH", path, 409, b'{"reason": "Conflict"}')
        return {
            "metadata": {"name": "vision", "uid": "b1", "resourceVersion": str(len(self.calls))},
            "spec": {"namespaces": ["ns"]},
            "status": status,
        }

    async def get(self, path: str) -> dict[str, Any] | None:
        """The budget as someone else left it (a 409 made the writer read it again)."""
        self.calls.append(("get", path, None))
        budget, self.conflict_with = self.conflict_with, None
        return budget

    async def json_patch(self, path: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(("finalizer", path, operations))
        return {"metadata": {"finalizers": FINALIZERS[:1]}}

    async def create(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return obj, True


def keeper(status: dict[str, Any] | None = None) -> tuple[BudgetWriter, Store, FakeKube]:
    store = Store()
    store.upsert_budget(
        {
            "metadata": {"name": "vision", "uid": "b1", "resourceVersion": "1"},
            "spec": {"namespaces": ["ns"]},
            "status": status or {},
        }
    )
    kube = FakeKube()
    writer = BudgetWriter(kube, store, CONFIG, lambda: None, clock=lambda: NOW)  # type: ignore[arg-type]
    return writer, store, kube


def feed(store: Store, keeper: BudgetWriter, obj: dict[str, Any]) -> None:
    labels = obj["metadata"].get("labels") or {}
    charge = pod_charge(
        obj,
        ("nvidia.com/gpu",),
        team=labels.get("cadre.dev/team"),
        flavor=labels.get("cadre.dev/flavor"),
    )
    store.upsert_pod(charge)
    keeper.pod_changed(charge)


def test_charge_is_written_before_the_finalizer_is_removed() -> None:
    k, store, kube = keeper()
    feed(store, k, pod("p1", seconds=30))
    asyncio.run(k.settle())
    assert [c[0] for c in kube.calls] == ["status", "finalizer"]
    _, path, status = kube.calls[0]
    assert path == budget_path("vision")
    assert status["ledger"]["settled"]["cost"] == "60"  # 2 GPUs x 30 s x 1 per GPU-second
    assert status["ledger"]["settledPods"] == ["p1"]
    assert status["spend"]["spent"] == "60.00"
    _, path, operations = kube.calls[1]
    assert path == pod_path("ns", "w-p1")
    assert operations == [
        {"op": "test", "path": "/metadata/finalizers/1", "value": "cadre.dev/accounting"},
        {"op": "remove", "path": "/metadata/finalizers/1"},
    ]


def test_a_failed_status_write_keeps_the_pod_held() -> None:
    k, store, kube = keeper()
    feed(store, k, pod("p1", seconds=30))
    kube.fail_status = True
    asyncio.run(k.settle())
    assert [c[0] for c in kube.calls] == ["status"]
    kube.fail_status = False
    asyncio.run(k.settle())  # next round: charged once, then released
    assert [c[0] for c in kube.calls] == ["status", "status", "finalizer"]
    assert kube.calls[1][2]["ledger"]["settled"]["cost"] == "60"


def test_a_pod_already_in_the_ledger_is_only_released() -> None:
    """The operator stopped after recording the charge, before removing the finalizer."""
    ledger = {"settled": {"cost": "60", "gpuSeconds": "60"}, "settledPods": ["p1"]}
    k, store, kube = keeper({"ledger": ledger})
    feed(store, k, pod("p1", seconds=30))
    asyncio.run(k.settle())
    assert [c[0] for c in kube.calls] == ["finalizer"]


def test_a_pod_whose_containers_still_run_waits_for_its_node() -> None:
    k, store, kube = keeper()
    feed(store, k, pod("p1", seconds=None))
    asyncio.run(k.settle())
    assert kube.calls == []
    live = pod("p2", seconds=None, deleting=False)
    feed(store, k, live)
    asyncio.run(k.settle())
    assert kube.calls == []


def test_a_conflicting_ledger_write_is_computed_again_and_never_charges_twice() -> None:
    """Someone (a previous leader) recorded the pod's charge after this writer read the
    budget: the write carries the resourceVersion it was computed from, so it is refused
    (409); the writer reads the budget again, finds the pod in its ledger and only
    releases it."""
    k, store, kube = keeper()
    feed(store, k, pod("p1", seconds=30))
    theirs = {
        "periodStart": "2025-06-01T00:00:00Z",
        "settled": {"cost": "60", "gpuSeconds": "60"},
        "settledPods": ["p1"],
    }
    kube.conflict_with = {
        "metadata": {"name": "vision", "uid": "b1", "resourceVersion": "7"},
        "spec": {"namespaces": ["ns"]},
        "status": {"ledger": theirs},
    }
    asyncio.run(k.settle())
    kinds = [c[0] for c in kube.calls]
    assert kinds[:2] == ["status", "get"]  # refused, read again
    assert kinds[-1] == "finalizer"  # then released
    # The write computed again from their ledger leaves its sums as they were (60, never
    # 120): a merge patch carries only what changes.
    again = [status for kind, _, status in kube.calls if kind == "status"][1]
    assert "settled" not in again.get("ledger", {}), again.get("ledger")
    assert "settledPods" not in again.get("ledger", {})


def test_no_status_is_written_before_the_first_pass_gives_the_teams_usage() -> None:
    """A new leader's writer and admission loop start together. A round before the first
    pass knew no team's usage, wrote every budget as using nothing, and the pass's figures
    rewrote them a moment later (S7: ~40 budget writes per restart instead of 1)."""

    async def scenario() -> None:
        k, store, kube = keeper()
        task = asyncio.create_task(k.run())
        try:
            # Proving that nothing is written needs a bound: 1 s, five of the writer's
            # 0.2 s debounces (the old writer wrote after one).
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(kube.wrote.wait(), timeout=1.0)
            assert kube.calls == []
            build = build_snapshot(store, CONFIG)
            k.after_pass(build, schedule(build.snapshot))
            await kube.wrote.wait()
            assert kube.calls[0][:2] == ("status", budget_path("vision"))
        finally:
            task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))
