"""The admission loop's decisions and write economy, against an in-memory fake API
(tests/unit/fake_api.py): what is written, in which order, and what is not."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cadre.controller import admission_loop, queue_status
from cadre.controller.admission_loop import AdmissionLoop
from cadre.controller.cache import Cache
from cadre.controller.client import job_path, trainingjob_path
from cadre.controller.queue_status import QueueStatusWriter
from cadre.controller.status_writer import StatusWriter
from cadre.controller.team_metrics import render_all
from cadre.controller.trainingjobs import TrainingJobReconciler
from cadre.core.accounting import Interval, PodCharge, PodUsage
from cadre.core.api.config import OperatorConfig, parse_config
from cadre.core.cluster.snapshot import unparsed
from cadre.core.cluster.store import Store
from cadre.core.training import build_job
from cadre.core.training.job import placement_digest
from fake_api import FakeApi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NS = "vision-research"
CREATED = datetime(2026, 11, 27, 3, tzinfo=UTC)


class World:
    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.clock = 1000.0
        self.store = Store(clock=lambda: self.clock)
        self.kube = FakeApi()
        api: Any = self.kube
        self.status_writer = StatusWriter(api, self.store, config)
        self.queue = QueueStatusWriter(self.store, config, self.status_writer)
        self.loop = AdmissionLoop(api, self.store, config, self.status_writer, self.queue)
        self.cache = Cache(
            api,
            self.store,
            config,
            changed=lambda: None,
            reconcile=lambda key: None,
            pod_changed=lambda pod: None,
            resynced=self.loop.forget_gone,
        )
        self.reconciler = TrainingJobReconciler(
            api,
            self.store,
            config,
            status=self.status_writer,
            cache=self.cache,
            notify=lambda: None,
        )
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
                "creationTimestamp": (
                    CREATED + timedelta(seconds=len(self.store.trainingjobs))
                ).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "spec": {
                "image": "train:1",
                "workers": 1,
                "priority": priority,
                "resources": {"flavor": "t4", "gpus": gpus},
            },
        }
        path = trainingjob_path(NS, name)
        if running:  # admitted by Cadre: its Job made for the admission in its status
            job = build_job(
                tj,
                name=name,
                namespace=NS,
                uid=f"uid-{name}",
                team="vision",
                config=self.config,
                admission_id=f"adm-{name}",
            )
            job["metadata"]["uid"] = f"job-{name}"
            tj["status"] = {
                "phase": "Running",
                "admittedAt": "2026-11-27T03:00:00Z",
                "admission": {
                    "id": f"adm-{name}",
                    "jobDigest": placement_digest(job["spec"]),
                    "flavor": "t4",
                    "gpus": gpus,
                },
            }
            self.kube.put(job_path(NS, name), job)
            self.store.upsert_job(self.kube.objects[job_path(NS, name)])
        self.kube.put(path, tj)  # a waiting job has no Job
        self.store.upsert_trainingjob(self.kube.objects[path])
        return f"{NS}/{name}"

    def make_job_by_hand(self, name: str, *, suspend: bool = False) -> str:
        """What someone else does (an earlier Cadre, or an editor without the admission
        policies): a Job of the TrainingJob, built from its spec, with no admission."""
        tj = self.kube.objects[trainingjob_path(NS, name)]
        job = build_job(
            tj, name=name, namespace=NS, uid=f"uid-{name}", team="vision", config=self.config
        )
        job["metadata"]["uid"] = f"byhand-{name}"
        job["spec"]["suspend"] = suspend
        self.kube.put(job_path(NS, name), job)
        self.store.upsert_job(self.kube.objects[job_path(NS, name)])
        return f"{NS}/{name}"

    def run_pass(self) -> list[tuple[str, dict[str, Any]]]:
        before = len(self.kube.writes)

        async def one_pass() -> None:
            await self.loop.run_pass()
            await self.loop.jobs_created()
            await self.queue.write_round(paced=False)
            await asyncio.sleep(0)  # let the events be posted
            await asyncio.gather(*self.status_writer._posting)

        asyncio.run(one_pass())
        return self.kube.writes[before:]

    def event_reasons(self, name: str) -> list[str]:
        return [e["reason"] for e in self.kube.events if e["involvedObject"]["name"] == name]

    def status(self, name: str) -> dict[str, Any]:
        return self.store.trainingjobs[f"{NS}/{name}"].get("status") or {}


@pytest.fixture
def world() -> World:
    return World(parse_config((EXAMPLES / "operator-config.yaml").read_text()))


def test_admit_writes_the_admission_then_creates_the_job(world: World) -> None:
    key = world.add("a", gpus=2)
    assert key not in world.store.jobs  # a waiting job has no Job
    writes = world.run_pass()
    assert writes == [
        (trainingjob_path(NS, "a") + "/status", writes[0][1]),
        (job_path(NS, "a"), "create"),
    ]
    # The admission lives in the status (users cannot write it) and names the Job made
    # for it: by an id the Job carries, and the shape it may have.
    admission = writes[0][1]["status"]["admission"]
    ident = admission.pop("id")
    assert len(ident) == 16
    job = world.kube.objects[job_path(NS, "a")]
    assert admission == {
        "jobDigest": placement_digest(job["spec"]),
        "team": "vision",
        "flavor": "t4",
        "priority": "normal",
        "gpus": 2,
        # What it holds, so a spec edited under the Job is caught (SpecChanged).
        "workers": 1,
        "perWorker": {"gpus": 2, "cpuMillicores": 0, "memoryBytes": 0},
    }
    # Created running, annotated with the admission's id.
    assert job["spec"]["suspend"] is False
    assert job["metadata"]["annotations"]["cadre.dev/admission"] == ident
    assert world.status("a")["phase"] == "Admitted"
    assert world.store.jobs[key].running and world.store.has_admission(key)
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
    code, _ = world.queue._written[key]
    world.queue._written[key] = (code, -1e9)
    world.store.trainingjobs[key]["status"]["queue"]["position"] = 7  # stale position
    writes = world.run_pass()
    assert [path for path, _ in writes] == [trainingjob_path(NS, "waiting") + "/status"]
    assert world.status("waiting")["queue"]["position"] == 1


def test_higher_priority_preempts_and_the_victim_says_so(world: World) -> None:
    world.add("low", gpus=8, priority="low", running=True)
    world.add("high", gpus=4, priority="high")
    writes = world.run_pass()
    paths = [path for path, _ in writes]
    # Victims first: the admission is revoked, then the Job deleted (a waiting job has
    # none); then the admission, and the Job it is made for.
    assert paths[:2] == [trainingjob_path(NS, "low") + "/status", job_path(NS, "low")]
    assert writes[0][1]["status"]["admission"] is None
    assert writes[1][1] == "delete"
    assert (job_path(NS, "high"), "create") in writes
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
    """The reconciler: a change of the worker counts only is held back until
    positionRefreshSeconds after the job's last status write (it asks to look again
    then), and written at once when due."""
    config = parse_config((EXAMPLES / "operator-config.yaml").read_text())
    world = World(config)
    key = world.add("w", gpus=1)
    world.run_pass()
    assert world.status("w")["phase"] == "Admitted"
    writer = world.status_writer
    interval = config.admission.position_refresh_seconds

    def job_status(**status: int) -> None:
        path = job_path(NS, "w")
        job = world.kube.objects[path]
        job["status"] = status
        world.kube.put(path, job)
        world.store.upsert_job(world.kube.objects[path])

    async def scenario() -> tuple[float | None, list[tuple[str, Any]]]:
        before = len(world.kube.writes)
        job_status(active=1, ready=0)
        writer.last_write[key] = time.monotonic() - interval + 5  # written 5 s short
        again = await world.reconciler.reconcile(key)
        assert len(world.kube.writes) == before  # held back
        # Due now: a change is written at once.
        writer.last_write[key] = time.monotonic() - interval
        job_status(active=1, ready=0, failed=1)
        await world.reconciler.reconcile(key)
        return again, world.kube.writes[before:]

    again, writes = asyncio.run(scenario())
    assert again is not None and 4 < again <= 5  # look again when it is due
    assert [patch for _, patch in writes] == [
        {"status": {"workers": {"active": 1, "ready": 0, "succeeded": 0, "failed": 1}}}
    ]
    assert world.status("w")["phase"] == "Admitted"


def test_a_status_write_from_a_stale_base_rereads_and_retries(world: World) -> None:
    """Conflict-safe writes: the status patch carries the resourceVersion it was computed
    from; a 409 re-reads the object and computes again (never a blind overwrite)."""
    world.add("a", gpus=2)
    path = trainingjob_path(NS, "a")
    # Someone else writes the object after the cache saw it (a label, say).
    obj = world.kube.objects[path]
    obj["metadata"]["labels"] = {"x": "y"}
    world.kube.put(path, obj)
    writes = world.run_pass()
    status_writes = [patch for p, patch in writes if p == path + "/status"]
    assert len(status_writes) == 1  # the 409 was not a write; the retry was
    assert world.status_writer.conflicts == 1
    assert world.status("a")["phase"] == "Admitted"
    assert world.kube.objects[path]["metadata"]["labels"] == {"x": "y"}


def test_no_admission_when_a_victims_deletion_fails(world: World) -> None:
    """A victim's stop is confirmed before the work it makes room for is admitted."""
    world.add("low", gpus=8, priority="low", running=True)
    world.add("high", gpus=4, priority="high")
    world.kube.fail[job_path(NS, "low")] = [500]
    writes = world.run_pass()
    assert job_path(NS, "high") not in [p for p, _ in writes]
    assert f"{NS}/high" not in world.store.jobs
    # The next pass decides again from what is observed, and goes through.
    writes = world.run_pass()
    paths = [p for p, _ in writes]
    assert paths.index(job_path(NS, "low")) < paths.index(job_path(NS, "high"))
    assert world.status("high")["phase"] == "Admitted"


def test_an_admission_is_never_written_for_a_spec_changed_since_the_pass(
    world: World,
) -> None:
    """The pass decided on generation 1; the spec changed before its effects: the status
    write meets a 409, re-reads, sees another generation and admits nothing (the next
    pass decides on the new spec). No Job is made."""
    key = world.add("a", gpus=2)

    async def scenario() -> None:
        from cadre.core.cluster.snapshot import build_snapshot  # noqa: PLC0415

        snapshot = build_snapshot(world.store, world.config)
        path = trainingjob_path(NS, "a")
        tj = world.kube.objects[path]
        tj["spec"]["resources"]["gpus"] = 4
        tj["metadata"]["generation"] = 2
        world.kube.put(path, tj)
        assert await world.loop._admit(snapshot, key)

    asyncio.run(scenario())
    assert "admission" not in world.status("a")
    assert job_path(NS, "a") not in world.kube.objects
    assert not world.store.admitted(key)


def test_a_pass_never_waits_for_queued_statuses(world: World) -> None:
    """The 10,000-job bench found admissions waiting a minute behind position writes: a
    pass now hands waiting jobs to the queue writer and returns."""
    world.add("running", gpus=8, running=True)
    waiting = [world.add(f"w{i:02d}", gpus=4) for i in range(30)]

    async def passes() -> list[tuple[str, dict[str, Any]]]:
        await world.loop.run_pass()
        assert world.kube.writes == []  # no status written by the pass itself
        assert set(world.queue._wanted) == set(waiting)
        # The running job finishes; the next pass admits at once, queue writes pending.
        world.store.delete_trainingjob(f"{NS}/running")
        await world.loop.run_pass()
        await world.loop.jobs_created()
        admitted = [path for path, _ in world.kube.writes]
        # Then the queue writer catches up, and never writes an admitted job as Queued.
        await world.queue.write_round(paced=False)
        return admitted

    admitted = asyncio.run(passes())
    assert sorted(admitted) == sorted(
        [
            trainingjob_path(NS, "w00") + "/status",
            job_path(NS, "w00"),
            trainingjob_path(NS, "w01") + "/status",
            job_path(NS, "w01"),
        ]
    )
    for name in ("w00", "w01"):  # each job's admission is written before its Job
        assert admitted.index(trainingjob_path(NS, name) + "/status") < admitted.index(
            job_path(NS, name)
        )
    assert world.status("w00")["phase"] == "Admitted"
    assert world.status("w02")["phase"] == "Queued"
    assert world.status("w02")["queue"]["position"] == 1
    assert world.status("w11")["queue"]["position"] == 10
    assert world.status("w12")["queue"]["positionRange"] == "11-100"
    assert "position" not in world.status("w12")["queue"]


def test_new_jobs_first_statuses_go_first_paced_apart_several_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the rewrites' 50 a second, a burst of 10,000 new jobs showed no phase for 193 s:
    a job's one first status is paced apart (newJobStatusWritesPerSecond), several in
    flight, before any rewrite."""
    world.add("running", gpus=8, running=True)
    world.add("old", gpus=4)
    world.run_pass()
    assert world.status("old")["phase"] == "Queued"
    # Its reason is stale: a rewrite ("urgent").
    world.queue._written[f"{NS}/old"] = ("SomeOtherReason", 0.0)
    world.store.trainingjobs[f"{NS}/old"]["status"]["queue"]["reason"] = "some other reason"
    new = [world.add(f"new{i:02d}", gpus=4) for i in range(20)]

    slots: list[tuple[str, int]] = []

    async def new_slot(per_second: int) -> None:
        slots.append(("new", per_second))

    async def rewrite_slot(per_second: int) -> None:
        slots.append(("rewrite", per_second))

    monkeypatch.setattr(world.queue._new_pace, "slot", new_slot)
    monkeypatch.setattr(world.queue._rewrite_pace, "slot", rewrite_slot)
    in_flight, most_in_flight, order = 0, 0, []
    replace_status = world.kube.replace_status
    two_in_flight = asyncio.Event()

    async def slow_replace_status(path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        if in_flight > 1:
            two_in_flight.set()
        # The first answer comes once another write has started: written one at a time,
        # the round would wait here until the timeout below.
        await two_in_flight.wait()
        in_flight -= 1
        order.append(path.rsplit("/", 1)[-1])
        return await replace_status(path, *args, **kwargs)

    monkeypatch.setattr(world.kube, "replace_status", slow_replace_status)

    async def one_round() -> int:
        await world.loop.run_pass()
        async with asyncio.timeout(10):
            return await world.queue.write_round()

    admission = world.config.admission
    assert asyncio.run(one_round()) == 21
    assert all(world.status(key.split("/")[1])["phase"] == "Queued" for key in new)
    assert order[-1] == "old"  # the rewrite after every first status
    assert 1 < most_in_flight <= queue_status.NEW_WRITES_IN_FLIGHT
    assert slots == [("new", admission.new_job_status_writes_per_second)] * 20 + [
        ("rewrite", admission.queue_status_writes_per_second)
    ]
    assert admission.new_job_status_writes_per_second > admission.queue_status_writes_per_second


def test_no_queue_write_starts_while_a_pass_writes_its_admissions(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a saturated API server (S1: a status PATCH answered in 120 ms) queue writes
    beside a pass's writes would slow admissions: they wait for them."""
    world.add("running", gpus=8, running=True)
    world.add("next", gpus=4)  # admitted once "running" ends
    world.add("behind", gpus=8)
    new = [world.add(f"new{i}", gpus=8) for i in range(3)]
    create = world.kube.create
    creating, release = asyncio.Event(), asyncio.Event()

    async def slow_create(obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if obj["kind"] == "Job":
            creating.set()
            await release.wait()  # the admission's Job POST is answered later
        return await create(obj)

    monkeypatch.setattr(world.kube, "create", slow_create)

    async def scenario() -> list[str]:
        await world.loop.run_pass()  # every job waits; nothing written yet
        assert world.kube.writes == []
        world.store.delete_trainingjob(f"{NS}/running")
        admitting = asyncio.create_task(world.loop.run_pass())
        await creating.wait()
        queue_round = asyncio.create_task(world.queue.write_round(paced=False))
        # Proves nothing is written meanwhile: 20 hand-overs of the event loop (no time
        # passes) give the round every chance; without the gate it writes within them.
        for _ in range(20):
            await asyncio.sleep(0)
        during = [path.rsplit("/", 1)[-1] for path, _ in world.kube.writes]
        release.set()
        await asyncio.gather(admitting, queue_round)
        return during

    during = asyncio.run(scenario())
    assert during == ["status"]  # the admission's own status write only
    assert world.status("next")["phase"] == "Admitted"
    assert all(world.status(key.split("/")[1])["phase"] == "Queued" for key in new)


def test_a_pass_does_not_wait_for_its_jobs_and_the_next_one_creates_none_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A written admission counts in the next pass whether its Job is there yet or not:
    the pass returns once its statuses are written, the Jobs are created meanwhile, and a
    pass in between neither admits more into that room nor creates the Job a second time."""
    first = world.add("first", gpus=8)
    world.add("second", gpus=8)  # waits: the cluster has 8 GPUs
    create = world.kube.create
    creating, release = asyncio.Event(), asyncio.Event()

    async def slow_create(obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if obj["kind"] == "Job":
            creating.set()
            await release.wait()  # the Job POST is answered later
        return await create(obj)

    monkeypatch.setattr(world.kube, "create", slow_create)

    async def scenario() -> tuple[list[str], list[str]]:
        async with asyncio.timeout(30):  # a pass that waited for its Job would never return
            await world.loop.run_pass()  # returns with the Job POST in flight
        await creating.wait()
        before = [path for path, _ in world.kube.writes]
        await world.loop.run_pass()  # its admission counts; its Job is not made again
        between = [path for path, _ in world.kube.writes]
        release.set()
        await world.loop.jobs_created()
        return before, between

    before, between = asyncio.run(scenario())
    assert before == [trainingjob_path(NS, "first") + "/status"]
    assert between == before
    assert [path for path, _ in world.kube.writes] == [*before, job_path(NS, "first")]
    assert world.store.jobs[first].uid
    assert world.status("second").get("phase") != "Admitted"


def test_a_job_whose_creation_failed_after_its_admission_is_created_by_the_next_pass(
    world: World,
) -> None:
    key = world.add("a", gpus=2)
    world.kube.fail["/apis/batch/v1/namespaces/" + NS + "/jobs"] = [500]
    assert [path for path, _ in world.run_pass()] == [trainingjob_path(NS, "a") + "/status"]
    assert key not in world.store.jobs
    assert world.loop._dirty.is_set()  # a later pass is asked for
    assert world.run_pass() == [(job_path(NS, "a"), "create")]
    assert world.store.has_admission(key)


def test_stopping_the_loop_cancels_the_jobs_it_was_creating(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No longer the leader: nothing is created after the loop stopped (the next leader
    creates the Jobs of the admissions it finds written)."""
    world.add("a", gpus=2)
    creating = asyncio.Event()

    async def never_answered(obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        creating.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(world.kube, "create", never_answered)

    async def scenario() -> None:
        world.loop.start()
        await creating.wait()
        await world.loop.stop()
        assert not world.loop._creating

    asyncio.run(scenario())
    assert world.status("a")["phase"] == "Admitted"
    assert job_path(NS, "a") not in world.kube.objects


def test_a_standby_parses_what_it_would_meet_and_writes_nothing(world: World) -> None:
    """Standing by, the loop parses new specs as changes come (the leader's first pass
    then finds them parsed); it runs no pass and writes nothing."""
    waiting = [world.add(f"w{i}", gpus=4) for i in range(3)]

    async def standing_by() -> None:
        standby = asyncio.create_task(world.loop.stand_by(interval=0))

        async def all_parsed() -> None:
            # sleep(0) only hands the event loop to the standby's task (no time passes);
            # the wait_for around the scenario bounds it.
            while unparsed(world.store, world.loop.snapshot_cache):
                await asyncio.sleep(0)

        try:
            world.loop.notify()
            await all_parsed()
            later = world.add("later", gpus=4)  # a change after the first round
            world.loop.notify()
            await all_parsed()
            assert later in world.store.trainingjobs
        finally:
            standby.cancel()
            await asyncio.gather(standby, return_exceptions=True)

    asyncio.run(asyncio.wait_for(standing_by(), 10))
    assert world.kube.writes == [] and world.loop.last_result is None
    assert all(world.status(key.split("/")[1]) == {} for key in waiting)


def test_a_queue_move_rewrites_the_head_and_the_range_bounds_not_the_queue(
    world: World,
) -> None:
    """Issue #15: at 10,000 waiting, two admissions rewrote 19,985 statuses, since every
    waiting job's position changed. Positions are exact only for the first
    admission.exactQueuePositions (10) of a team's queue, ranges behind: an admission
    moves at most the head and the jobs crossing a range's bound."""
    assert world.config.admission.exact_queue_positions == 10
    world.add("running", gpus=8, running=True)  # all 8 t4 GPUs
    for i in range(150):
        world.add(f"w{i:03d}", gpus=4)
    queued = world.run_pass()
    assert len(queued) == 150  # each waiting job's reason, once
    assert world.status("w009")["queue"]["position"] == 10
    assert world.status("w010")["queue"]["positionRange"] == "11-100"
    assert world.status("w099")["queue"]["positionRange"] == "11-100"
    assert world.status("w100")["queue"]["positionRange"] == "101-1,000"
    reason_behind = world.status("w050")["queue"]["reason"]

    # The running job ends: w000 and w001 are admitted, everyone else moves up two.
    world.store.delete_trainingjob(f"{NS}/running")
    writes = world.run_pass()
    assert sorted(path for path, _ in writes) == sorted(
        [trainingjob_path(NS, name) + "/status" for name in ("w000", "w001")]
        + [job_path(NS, name) for name in ("w000", "w001")]
    )  # the admissions; places are refreshed when due, not at once

    # Once positionRefreshSeconds has passed: the new head (w002-w011, ten positions),
    # and the two jobs that crossed into 11-100 (w100, w101). Not the other 136.
    for key, (code, _) in list(world.queue._written.items()):
        world.queue._written[key] = (code, -1e9)
    writes = world.run_pass()
    moved = sorted(path.split("/")[-2] for path, _ in writes)
    assert moved == [f"w{i:03d}" for i in range(2, 12)] + ["w100", "w101"]
    assert [world.status(f"w{i:03d}")["queue"]["position"] for i in range(2, 12)] == list(
        range(1, 11)
    )
    assert world.status("w012")["queue"]["positionRange"] == "11-100"
    assert world.status("w101")["queue"] == {
        "reason": world.status("w101")["queue"]["reason"],
        "positionRange": "11-100",
    }
    assert world.status("w050")["queue"]["reason"] == reason_behind
    assert world.run_pass() == []  # nothing moved since


def test_no_children_and_no_error_in_a_namespace_being_deleted(world: World) -> None:
    """A TrainingJob whose namespace is going: the Job's create is refused (403 or 404),
    which is no failure to retry (its own deletion follows)."""
    key = world.add("late", gpus=1)
    world.kube.fail["/apis/batch/v1/namespaces/vision-research/jobs"] = [403, 404]
    for message in (
        '{"message": "jobs.batch \\"late\\" is forbidden: unable to create new content in '
        'namespace vision-research because it is being terminated"}',
        '{"message": "namespaces \\"vision-research\\" not found"}',
    ):
        world.kube.fail_message = message
        world.run_pass()
    assert key not in world.store.jobs
    assert world.kube.fail["/apis/batch/v1/namespaces/vision-research/jobs"] == []


def test_a_job_someone_else_made_is_deleted_and_reported(world: World) -> None:
    """Without the admission policies, an editor can make the Job of a queued
    TrainingJob themselves: it holds what it uses until it is gone, and is deleted."""
    from cadre.controller.admission_loop import UNADMITTED  # noqa: PLC0415

    world.add("running", gpus=8, running=True)  # all 8 t4 GPUs
    world.add("sneaky", gpus=4)
    world.run_pass()
    assert world.status("sneaky")["phase"] == "Queued"
    before = UNADMITTED._value.get()
    key = world.make_job_by_hand("sneaky")
    # It holds what it uses until it is stopped: never more admitted than the quota.
    assert world.store.admitted(key) and world.store.runs_unadmitted(key)
    writes = world.run_pass()
    assert writes[0] == (job_path(NS, "sneaky"), "delete")
    assert job_path(NS, "sneaky") not in world.kube.objects
    assert UNADMITTED._value.get() == before + 1
    assert "UnadmittedRunSuspended" in world.event_reasons("sneaky")
    status = world.status("sneaky")
    assert status["phase"] == "Queued"
    assert "admission" not in status
    (flag,) = [c for c in status["conditions"] if c["type"] == "UnadmittedRun"]
    assert flag["reason"] == "JobRanWithoutAdmission"
    # The running job is untouched, and the next pass has nothing to undo.
    assert world.store.jobs[f"{NS}/running"].running
    assert world.run_pass() == []
    # Once it is admitted for real, the flag goes, and its own Job is made.
    world.store.delete_trainingjob(f"{NS}/running")
    world.run_pass()
    status = world.status("sneaky")
    assert status["phase"] == "Admitted"
    assert not [c for c in status["conditions"] if c["type"] == "UnadmittedRun"]
    assert world.store.has_admission(key)


def test_an_earlier_cadres_waiting_job_is_deleted_quietly_then_admitted(world: World) -> None:
    """Before Cadre made Jobs at admission, a waiting job had a suspended Job: after an
    upgrade it is deleted (no report: nobody tampered), and the job admitted as any."""
    from cadre.controller.admission_loop import UNADMITTED  # noqa: PLC0415

    key = world.add("old", gpus=2)
    world.make_job_by_hand("old", suspend=True)
    before = UNADMITTED._value.get()
    assert not world.store.admitted(key) and world.store.stray(key)
    writes = world.run_pass()
    assert [(p, w) for p, w in writes if p == job_path(NS, "old")] == [
        (job_path(NS, "old"), "delete"),
        (job_path(NS, "old"), "create"),
    ]
    assert UNADMITTED._value.get() == before
    assert "UnadmittedRunSuspended" not in world.event_reasons("old")
    assert world.status("old")["phase"] == "Admitted"
    assert world.store.has_admission(key) and world.store.jobs[key].running


def test_an_admission_whose_job_was_not_made_gets_it_on_a_later_pass(world: World) -> None:
    world.add("a", gpus=2)
    world.kube.fail["/apis/batch/v1/namespaces/vision-research/jobs"] = [503]
    world.run_pass()
    key = f"{NS}/a"
    assert world.status("a")["admission"]["id"]
    assert job_path(NS, "a") not in world.kube.objects
    assert world.store.admitted(key) and world.store.awaits_job(key)  # it holds its quota
    writes = world.run_pass()
    assert writes == [(job_path(NS, "a"), "create")]
    assert world.store.has_admission(key)
    # Someone deletes the Job of an admitted job: it is made again, for that admission.
    del world.kube.objects[job_path(NS, "a")]
    world.store.delete_job(key, uid=world.store.jobs[key].uid)
    assert world.run_pass() == [(job_path(NS, "a"), "create")]
    assert world.store.has_admission(key)


def test_a_job_the_api_server_refuses_gives_its_admission_back(world: World) -> None:
    """The CRD let the spec through, the API server refuses its Job (422): the admission
    is revoked at once, the job waits with InvalidSpec until its spec changes."""
    key = world.add("bad", gpus=2)
    world.kube.fail["/apis/batch/v1/namespaces/vision-research/jobs"] = [422]
    world.kube.fail_message = '{"message": "metadata.labels: Invalid value"}'
    world.run_pass()
    status = world.status("bad")
    assert "admission" not in status and status["phase"] == "Queued"
    (condition,) = [c for c in status["conditions"] if c["type"] == "Admitted"]
    assert condition["reason"] == "InvalidSpec"
    assert "the API server refused its job: " in condition["message"]
    assert not world.store.admitted(key)
    assert world.run_pass() == []  # not admitted again for this generation
    path = trainingjob_path(NS, "bad")
    tj = world.kube.objects[path]
    tj["metadata"]["generation"] = 2
    world.kube.put(path, tj)
    world.store.upsert_trainingjob(world.kube.objects[path])
    world.run_pass()
    assert world.status("bad")["phase"] == "Admitted"


def test_a_victim_whose_deletion_failed_is_stopped_without_a_tamper_report(
    world: World,
) -> None:
    from cadre.controller.admission_loop import UNADMITTED  # noqa: PLC0415

    world.add("low", gpus=8, priority="low", running=True)
    world.add("high", gpus=4, priority="high")
    world.kube.fail[job_path(NS, "low")] = [500]
    before = UNADMITTED._value.get()
    world.run_pass()
    low = f"{NS}/low"
    assert "admission" not in world.status("low")  # revoked first
    assert world.store.runs_unadmitted(low) and world.store.stopping_by_cadre(low)
    world.run_pass()
    assert job_path(NS, "low") not in world.kube.objects
    assert UNADMITTED._value.get() == before  # Cadre's own stop, not a user's doing
    assert "UnadmittedRunSuspended" not in world.event_reasons("low")
    assert world.status("high")["phase"] == "Admitted"


def test_a_team_cannot_use_a_priority_above_its_budgets_max(world: World) -> None:
    budget = world.store.budgets["vision"]
    world.store.upsert_budget({**budget, "spec": {**budget["spec"], "maxPriority": "normal"}})
    world.add("urgent", gpus=2, priority="high")
    world.add("fine", gpus=2, priority="normal")
    world.run_pass()
    assert world.status("fine")["phase"] == "Admitted"
    urgent = world.status("urgent")
    assert urgent["phase"] == "Queued"
    (condition,) = [c for c in urgent["conditions"] if c["type"] == "Admitted"]
    assert condition["reason"] == "PriorityNotAllowed"
    assert "'high' is above the highest team vision may use ('normal'" in condition["message"]


def test_an_admitted_job_whose_spec_no_longer_parses_is_stopped_first(world: World) -> None:
    """Its spec was stored under an older, looser CRD (or edited so since): what it holds
    cannot be counted any more, so it is stopped before anything is admitted."""
    key = world.add("old", gpus=8, running=True)
    world.add("next", gpus=4)
    world.store.trainingjobs[key]["spec"]["workers"] = "many"
    world.store.trainingjobs[key]["metadata"]["generation"] = 2
    writes = world.run_pass()
    paths = [p for p, _ in writes]
    assert paths.index(job_path(NS, "old")) < paths.index(job_path(NS, "next"))
    assert job_path(NS, "old") not in world.kube.objects
    old = world.status("old")
    (condition,) = [c for c in old["conditions"] if c["type"] == "Admitted"]
    assert condition["reason"] == "InvalidSpec"
    assert "workers" in condition["message"]
    assert "admission" not in old


def test_a_running_job_whose_spec_changed_is_stopped_and_admitted_as_it_is(
    world: World,
) -> None:
    """Its GPUs edited under its running Job (no admission policy installed): counted by
    the spec it would hold 1 GPU and leave 7 to others while 8 run. It is stopped before
    anything is admitted, says why, and is admitted again for what it asks now."""
    world.add("shrunk", gpus=8, running=True)  # all 8 t4 GPUs
    world.add("next", gpus=4)
    edited = copy.deepcopy(world.kube.objects[trainingjob_path(NS, "shrunk")])
    edited["spec"]["resources"]["gpus"] = 1
    edited["metadata"]["generation"] = 2
    world.kube.put(trainingjob_path(NS, "shrunk"), edited)
    world.store.upsert_trainingjob(world.kube.objects[trainingjob_path(NS, "shrunk")])
    writes = world.run_pass()
    paths = [p for p, _ in writes]
    assert paths.index(job_path(NS, "shrunk")) < paths.index(job_path(NS, "next"))
    shrunk = world.status("shrunk")
    assert shrunk["phase"] == "Preempted" and "admission" not in shrunk
    (condition,) = [c for c in shrunk["conditions"] if c["type"] == "Admitted"]
    assert condition["reason"] == "SpecChanged"
    assert "waits in the queue with the spec as it is now" in condition["message"]
    # A Warning named for why: it was not preempted by another job.
    assert world.event_reasons("shrunk") == ["SpecChanged"]
    assert world.loop._dirty.is_set()  # no watch event asks for the pass that admits it
    world.run_pass()
    again = world.status("shrunk")["admission"]
    assert (again["gpus"], again["perWorker"]["gpus"]) == (1, 1)
    assert world.kube.objects[job_path(NS, "shrunk")]["spec"]["suspend"] is False


def test_a_job_whose_last_pods_are_still_stopping_waits_for_them(world: World) -> None:
    """Preempted moments ago: its Job is deleted, its pods still stop (counted running).
    It is not admitted again until they have stopped, so its new pods never meet its old
    ones on the GPUs."""
    key = world.add("again", gpus=2)
    started = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    world.store.upsert_pod_usage(key, "old-pod", (PodUsage(Interval(started), gpus=2),))
    assert world.run_pass()[0][0] == trainingjob_path(NS, "again") + "/status"
    assert job_path(NS, "again") not in world.kube.objects
    (condition,) = [c for c in world.status("again")["conditions"] if c["type"] == "Admitted"]
    assert condition["reason"] == "Stopping"
    stopped = PodUsage(Interval(started, started.replace(minute=5)), gpus=2)
    world.store.upsert_pod_usage(key, "old-pod", (stopped,))
    world.run_pass()
    assert world.store.admitted(key)
    assert world.kube.objects[job_path(NS, "again")]["spec"]["suspend"] is False


def test_stopped_pods_held_for_accounting_do_not_hold_a_job_back(world: World) -> None:
    """Stopped and counted, still there (held by Cadre's accounting finalizer): the new
    Job does not own them, so the job is admitted without waiting for them to go."""
    key = world.add("again", gpus=2)
    stopped = PodCharge(
        uid="old-pod",
        name="again-0-abcde",
        namespace=NS,
        team="vision",
        flavor="t4",
        usages=(),
        finalizers=("cadre.dev/accounting",),
        deleting=True,
    )
    world.store.upsert_pod(stopped)
    world.store.upsert_pod_usage(key, "old-pod", ())
    world.run_pass()
    assert world.store.admitted(key)
    assert world.kube.objects[job_path(NS, "again")]["spec"]["suspend"] is False


def scraped(name: str, **labels: str) -> float | None:
    """A sample of what the metrics endpoint serves (None when it has no such series)."""
    for family in text_string_to_metric_families(render_all().decode()):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def test_an_admission_is_timed_and_allocation_is_exported(world: World) -> None:
    def sample(name: str, **labels: str) -> float:
        return scraped(name, **labels) or 0.0

    before = sample("cadre_time_to_admission_seconds_count", team="vision")
    world.add("timed", gpus=2)
    world.run_pass()
    assert sample("cadre_time_to_admission_seconds_count", team="vision") == before + 1
    assert sample("cadre_flavor_capacity_gpus", flavor="t4") == 8
    assert sample("cadre_flavor_allocated_gpus", flavor="t4") >= 2


def test_the_oldest_queued_workloads_age_is_exported_per_team(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def oldest(team: str) -> float | None:
        return scraped("cadre_team_oldest_queued_seconds", team=team)

    now = datetime(2026, 11, 27, 4, 0, 0, tzinfo=UTC)
    monkeypatch.setattr("cadre.controller.admission_loop.utcnow", lambda: now)
    world.add("running", gpus=8, running=True)  # all 8 t4 GPUs
    world.run_pass()
    assert oldest("vision") == 0  # nothing waits: a level, not an absent series

    world.add("first", gpus=4)  # created 03:00:01, an hour before `now`
    world.add("second", gpus=2)  # created 03:00:02
    world.run_pass()
    assert oldest("vision") == 3599

    world.store.delete_trainingjob(f"{NS}/first")  # the oldest goes: the next in line counts
    world.run_pass()
    assert oldest("vision") == 3598


def test_a_jobs_create_answer_never_undoes_what_the_watch_showed_since(world: World) -> None:
    """The Job's watch can be quicker than the loop handling the create's answer: the Job
    created, run and finished before the answer is read. The answer is older than what
    the watch showed, and must not make the finished Job look running (holding its
    quota, its TrainingJob never Succeeded until a resync)."""
    key = world.add("quick", gpus=2)
    path = job_path(NS, "quick")

    def finished_at_once(created: str) -> None:
        if created != path:
            return
        job = world.kube.objects[path]
        job["status"] = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
        world.kube.put(path, job)
        world.clock += 0.1
        world.store.upsert_job(world.kube.objects[path])  # the watch's event

    world.kube.on_create.append(finished_at_once)
    world.run_pass()
    assert world.store.jobs[key].complete
    assert not world.store.admitted(key)  # its GPUs are free
    asyncio.run(world.reconciler.reconcile(key))
    assert world.status("quick")["phase"] == "Succeeded"


def test_a_trainingjob_deleted_while_its_admission_is_written_leaves_nothing_behind(
    world: World,
) -> None:
    """The user deletes the job as its admission is written: the DELETED event comes
    before the status write's answer. The answer must not bring it back (a ghost holding its
    quota and getting Jobs until the resync), nor leave per-object state behind
    (bench_churn found both at 10,000 cycles)."""
    key = world.add("brief", gpus=1)
    replace_status = world.kube.replace_status

    async def deleted_meanwhile(path: str, status: dict[str, Any], **kw: Any) -> dict[str, Any]:
        answer = await replace_status(path, status, **kw)
        if path == trainingjob_path(NS, "brief"):
            world.store.delete_trainingjob(key, uid="uid-brief")  # the watch's DELETED
            world.loop.forget(key)
        return answer

    world.kube.replace_status = deleted_meanwhile  # type: ignore[method-assign]
    world.run_pass()
    assert key not in world.store.trainingjobs
    assert job_path(NS, "brief") not in world.kube.objects  # no Job for the gone job
    assert world.status_writer.sizes() == {"status_locks": 0, "status_last_write": 0}
    assert world.loop.sizes() == {"jobs_made": 0}


def test_a_resync_drops_the_writers_state_of_workloads_gone_from_the_cache(world: World) -> None:
    """Level-based: whatever path left a lock, a last-write time or a made-Job record
    behind for a TrainingJob the cache no longer holds (its forgetting missed), the next
    resync drops it; what a listed one keeps stays. Passes do not: walking every key
    the writers hold took 4.7 ms a pass at 15,000."""
    kept = world.add("kept", gpus=1)
    world.run_pass()
    assert world.status_writer.sizes()["status_last_write"] == 1  # its admission's write
    gone = f"{NS}/gone"
    world.status_writer._locks[gone] = asyncio.Lock()
    world.status_writer.last_write[gone] = world.clock
    world.loop._jobs_made[gone] = "an-admission"
    world.run_pass()
    assert gone in world.status_writer.held()
    asyncio.run(world.cache.resync(kinds=("trainingjob",)))
    assert set(world.store.trainingjobs) == {kept}  # listed again: kept
    assert world.status_writer.held() == {kept}
    assert world.loop.sizes() == {"jobs_made": 1}


def test_a_pass_applies_at_most_its_share_of_admissions_and_the_next_the_rest() -> None:
    """admission.maxAdmissionsPerPass: a pass writes the first admissions in its order and
    leaves the rest to the next pass, which it asks for at once; nothing is lost."""
    config = parse_config((EXAMPLES / "operator-config.yaml").read_text())
    config = config.model_copy(
        update={"admission": config.admission.model_copy(update={"max_admissions_per_pass": 2})}
    )
    world = World(config)
    for name in ("first", "second", "third"):
        world.add(name, gpus=1)  # created in this order: admitted in this order
    deferred = scraped("cadre_admission_deferred_total") or 0.0
    world.run_pass()
    created = sorted(path for path, verb in world.kube.writes if verb == "create")
    assert created == [job_path(NS, "first"), job_path(NS, "second")]
    assert world.status("first")["phase"] == world.status("second")["phase"] == "Admitted"
    third = world.status("third")
    assert "admission" not in third
    # It says so: without it, a new job would show no status until a later pass.
    assert third["phase"] == "Queued"
    (admitted,) = [c for c in third["conditions"] if c["type"] == "Admitted"]
    assert admitted["reason"] == "WaitingForNextPass"
    assert "maxAdmissionsPerPass" in admitted["message"]
    assert scraped("cadre_admission_deferred_total") == deferred + 1
    assert world.loop._dirty.is_set()  # the next pass comes without waiting for a change
    world.run_pass()
    assert world.status("third")["phase"] == "Admitted"
    assert job_path(NS, "third") in world.kube.objects
    assert scraped("cadre_admission_deferred_total") == deferred + 1


def test_the_event_loop_runs_while_the_core_decides(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`schedule()` runs off the event loop: here it asks the loop to run a callback and
    waits for it, which it could never see if it held the loop (a pass over 50,000 jobs
    took seconds of it in S2, long enough to pass for a stalled process)."""
    real_schedule = admission_loop.schedule
    loop_ran = threading.Event()
    main_loop: list[asyncio.AbstractEventLoop] = []

    def schedule_that_needs_the_loop(snapshot: Any) -> Any:
        main_loop[0].call_soon_threadsafe(loop_ran.set)
        assert loop_ran.wait(timeout=5), "the event loop did not run during the pass"
        return real_schedule(snapshot)

    monkeypatch.setattr(admission_loop, "schedule", schedule_that_needs_the_loop)
    world.add("a", gpus=1)

    async def one_pass() -> None:
        main_loop.append(asyncio.get_running_loop())
        await world.loop.run_pass()

    asyncio.run(one_pass())
    assert world.status("a")["phase"] == "Admitted"
