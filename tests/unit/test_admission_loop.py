"""The admission loop's decisions and write economy, against an in-memory fake API."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from cadre.controller.admission_loop import AdmissionLoop
from cadre.controller.client import job_path, trainingjob_path
from cadre.controller.handlers.trainingjob import update_from_job
from cadre.core.api.config import OperatorConfig, parse_config
from cadre.core.cluster.store import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NS = "vision-research"


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch."""
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class FakeKube:
    """merge_patch and patch_status over a dict of objects by path; records the writes."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []
        self._rv = 100

    def put(self, path: str, obj: dict[str, Any]) -> None:
        self.objects[path] = copy.deepcopy(obj)

    async def _patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        obj = merge(self.objects[path], patch)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self.objects[path] = obj
        self.writes.append((path, patch))
        return copy.deepcopy(obj)

    async def create(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        assert obj["kind"] == "Event"
        self.events.append(copy.deepcopy(obj))
        return obj, True

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self._patch(path, dict(patch))

    async def patch_status(self, path: str, status: dict[str, Any]) -> dict[str, Any]:
        return await self._patch(f"{path}/status", {"status": dict(status)})


class World:
    def __init__(self, config: OperatorConfig) -> None:
        self.store = Store()
        self.kube = FakeKube()
        self.loop = AdmissionLoop(self.store, config, self.kube)  # type: ignore[arg-type]
        for doc in yaml.safe_load_all((EXAMPLES / "budgets.yaml").read_text()):
            if doc["kind"] == "ResourceBudget":
                self.store.upsert_budget(doc)
            else:
                self.store.upsert_namespace(doc)
        for i in range(2):
            self.store.upsert_node(
                {
                    "metadata": {"name": f"t4-{i}", "labels": {"cadre.dev/flavor": "t4"}},
                    "status": {
                        "allocatable": {"cpu": "48", "memory": "192Gi", "nvidia.com/gpu": "4"}
                    },
                }
            )

    def add(self, name: str, *, gpus: int, priority: str = "normal", running: bool = False) -> str:
        tj = {
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{name}",
                "generation": 1,
                "resourceVersion": "1",
                "creationTimestamp": f"2026-11-27T03:00:{len(self.store.trainingjobs):02d}Z",
            },
            "spec": {
                "image": "train:1",
                "workers": 1,
                "priority": priority,
                "resources": {"flavor": "t4", "gpus": gpus},
            },
        }
        job = {
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"job-{name}",
                "resourceVersion": "1",
                "labels": {"cadre.dev/trainingjob": name},
            },
            "spec": {"suspend": not running, "parallelism": 1},
            "status": {},
        }
        path = trainingjob_path(NS, name)
        self.kube.put(path, tj)
        self.kube.objects[f"{path}/status"] = self.kube.objects[path]
        self.kube.put(job_path(NS, name), job)
        self.store.upsert_trainingjob(tj)
        self.store.upsert_job(job)
        return f"{NS}/{name}"

    def run_pass(self) -> list[tuple[str, dict[str, Any]]]:
        before = len(self.kube.writes)

        async def one_pass() -> None:
            await self.loop.run_pass()
            await self.loop.write_queue_statuses(paced=False)
            await asyncio.sleep(0)  # let the events be posted
            await asyncio.gather(*self.loop.status._posting)

        asyncio.run(one_pass())
        return self.kube.writes[before:]

    def event_reasons(self, name: str) -> list[str]:
        return [e["reason"] for e in self.kube.events if e["involvedObject"]["name"] == name]

    def status(self, name: str) -> dict[str, Any]:
        return self.store.trainingjobs[f"{NS}/{name}"].get("status") or {}


@pytest.fixture
def world() -> World:
    return World(parse_config((EXAMPLES / "operator-config.yaml").read_text()))


def test_admit_unsuspends_the_job_then_writes_status_once(world: World) -> None:
    world.add("a", gpus=2)
    writes = world.run_pass()
    assert [path for path, _ in writes] == [
        job_path(NS, "a"),
        trainingjob_path(NS, "a") + "/status",
    ]
    assert writes[0][1] == {"spec": {"suspend": False}}
    assert world.status("a")["phase"] == "Admitted"
    assert world.store.jobs[f"{NS}/a"].running
    assert world.event_reasons("a") == ["Admitted"]
    assert world.run_pass() == []  # nothing changed: nothing written
    assert world.event_reasons("a") == ["Admitted"]


def test_queued_reason_written_once_then_rate_limited(world: World) -> None:
    world.add("running", gpus=8, running=True)  # all 8 t4 GPUs
    world.add("waiting", gpus=4)
    writes = world.run_pass()
    assert [path for path, _ in writes] == [trainingjob_path(NS, "waiting") + "/status"]
    status = world.status("waiting")
    assert status["phase"] == "Queued"
    assert status["queue"]["position"] == 1
    reason = status["queue"]["reason"]
    assert world.event_reasons("waiting") == ["Queued"]  # on arrival only
    assert world.run_pass() == []

    # A third job queues behind it: "waiting" keeps its reason code, so no write for it.
    world.add("later", gpus=2)
    writes = world.run_pass()
    assert [path for path, _ in writes] == [trainingjob_path(NS, "later") + "/status"]
    assert world.status("waiting")["queue"]["reason"] == reason

    # Once the refresh interval has passed, a changed message or position is written.
    key = f"{NS}/waiting"
    code, _ = world.loop._queue_written[key]
    world.loop._queue_written[key] = (code, -1e9)
    world.store.trainingjobs[key]["status"]["queue"]["position"] = 7  # stale position
    writes = world.run_pass()
    assert [path for path, _ in writes] == [trainingjob_path(NS, "waiting") + "/status"]
    assert world.status("waiting")["queue"]["position"] == 1


def test_higher_priority_preempts_and_the_victim_says_so(world: World) -> None:
    world.add("low", gpus=8, priority="low", running=True)
    world.add("high", gpus=4, priority="high")
    writes = world.run_pass()
    paths = [path for path, _ in writes]
    assert paths[0] == job_path(NS, "low")  # victims first
    assert writes[0][1] == {"spec": {"suspend": True}}
    assert job_path(NS, "high") in paths
    low = world.status("low")
    assert low["phase"] == "Preempted"
    admitted = next(c for c in low["conditions"] if c["type"] == "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("False", "Preempted")
    assert "high" in admitted["message"]
    assert world.status("high")["phase"] == "Admitted"
    assert world.event_reasons("low") == ["Preempted"]
    (event,) = [e for e in world.kube.events if e["reason"] == "Preempted"]
    assert event["type"] == "Warning"
    assert event["involvedObject"]["uid"] == "uid-low"
    assert "high" in event["message"]

    # Next pass: the victim waits (phase stays Preempted) with the reason in its queue.
    world.run_pass()
    low = world.status("low")
    assert low["phase"] == "Preempted"
    assert low["queue"]["reason"]


def test_worker_counts_alone_are_written_at_a_bounded_rate() -> None:
    """update_from_job: a change of the worker counts only is held back until
    positionRefreshSeconds after the job's last status write, then flushed once."""
    config = parse_config((EXAMPLES / "operator-config.yaml").read_text())
    world = World(config)
    key = world.add("w", gpus=1)
    world.run_pass()
    assert world.status("w")["phase"] == "Admitted"
    memo: Any = SimpleNamespace(store=world.store, loop=world.loop, config=config)
    writer = world.loop.status
    interval = config.admission.position_refresh_seconds

    def job_status(rv: int, **status: int) -> None:
        job = copy.deepcopy(world.kube.objects[job_path(NS, "w")])
        job["metadata"]["resourceVersion"] = str(rv)
        job["status"] = status
        world.store.upsert_job(job)

    async def scenario() -> list[tuple[str, dict[str, Any]]]:
        before = len(world.kube.writes)
        job_status(1000, active=1, ready=0)
        writer.last_write[key] = time.monotonic() - interval + 0.2  # written 0.2 s short
        await update_from_job(memo, key)
        assert len(world.kube.writes) == before  # held back
        await update_from_job(memo, key)  # a second event: one flush only
        await asyncio.sleep(0.4)
        flushed = world.kube.writes[before:]
        # Due now: a change is written at once.
        writer.last_write[key] = time.monotonic() - interval
        job_status(1001, active=1, ready=0, failed=1)
        await update_from_job(memo, key)
        return flushed + world.kube.writes[before + len(flushed) :]

    writes = asyncio.run(scenario())
    assert [patch for _, patch in writes] == [
        {"status": {"workers": {"active": 1, "ready": 0, "succeeded": 0, "failed": 0}}},
        {"status": {"workers": {"failed": 1}}},  # a merge patch: only what changed
    ]
    assert world.status("w")["phase"] == "Admitted"


def test_a_pass_never_waits_for_queued_statuses(world: World) -> None:
    """The 10,000-job bench found admissions waiting a minute behind position writes: a
    pass now hands waiting jobs to the queue writer and returns."""
    world.add("running", gpus=8, running=True)
    waiting = [world.add(f"w{i:02d}", gpus=4) for i in range(30)]

    async def passes() -> list[tuple[str, dict[str, Any]]]:
        await world.loop.run_pass()
        assert world.kube.writes == []  # no status written by the pass itself
        assert set(world.loop._queue_wanted) == set(waiting)
        # The running job finishes; the next pass admits at once, queue writes pending.
        world.store.delete_trainingjob(f"{NS}/running")
        await world.loop.run_pass()
        admitted = [path for path, _ in world.kube.writes]
        # Then the queue writer catches up, and never writes an admitted job as Queued.
        await world.loop.write_queue_statuses(paced=False)
        return admitted

    admitted = asyncio.run(passes())
    assert admitted == [
        job_path(NS, "w00"),
        trainingjob_path(NS, "w00") + "/status",
        job_path(NS, "w01"),
        trainingjob_path(NS, "w01") + "/status",
    ]
    assert world.status("w00")["phase"] == "Admitted"
    assert world.status("w02")["phase"] == "Queued"
    assert world.status("w02")["queue"]["position"] == 1
    assert world.status("w29")["queue"]["position"] == 28
