"""The admission loop's decisions and write economy, against an in-memory fake API
(tests/unit/fake_api.py): what is written, in which order, and what is not."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from cadre.controller.admission_loop import AdmissionLoop
from cadre.controller.cache import Cache
from cadre.controller.client import job_path, trainingjob_path
from cadre.controller.queue_status import QueueStatusWriter
from cadre.controller.status_writer import StatusWriter
from cadre.controller.trainingjobs import TrainingJobReconciler
from cadre.core.accounting import PodCharge
from cadre.core.api.config import OperatorConfig, parse_config
from cadre.core.cluster.store import Store
from cadre.core.training import build_job
from fake_api import FakeApi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NS = "vision-research"


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
                "creationTimestamp": f"2026-11-27T03:00:{len(self.store.trainingjobs):02d}Z",
            },
            "spec": {
                "image": "train:1",
                "workers": 1,
                "priority": priority,
                "resources": {"flavor": "t4", "gpus": gpus},
            },
        }
        job = build_job(
            tj, name=name, namespace=NS, uid=f"uid-{name}", team="vision", config=self.config
        )
        job["metadata"]["uid"] = f"job-{name}"
        job["spec"]["suspend"] = not running
        if running:  # admitted by Cadre: the status holds the admission of that Job
            tj["status"] = {
                "phase": "Running",
                "admittedAt": "2026-11-27T03:00:00Z",
                "admission": {"jobUID": f"job-{name}", "flavor": "t4", "gpus": gpus},
            }
        path = trainingjob_path(NS, name)
        self.kube.put(path, tj)
        self.kube.put(job_path(NS, name), job)
        self.store.upsert_trainingjob(self.kube.objects[path])
        self.store.upsert_job(self.kube.objects[job_path(NS, name)])
        return f"{NS}/{name}"

    def run_pass(self) -> list[tuple[str, dict[str, Any]]]:
        before = len(self.kube.writes)

        async def one_pass() -> None:
            await self.loop.run_pass()
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


def test_admit_writes_the_admission_then_unsuspends_the_job(world: World) -> None:
    world.add("a", gpus=2)
    writes = world.run_pass()
    assert [path for path, _ in writes] == [
        trainingjob_path(NS, "a") + "/status",
        job_path(NS, "a"),
    ]
    # The admission lives in the status (users cannot write it) and names that Job.
    assert writes[0][1]["status"]["admission"] == {
        "jobUID": "job-a",
        "team": "vision",
        "flavor": "t4",
        "priority": "normal",
        "gpus": 2,
    }
    # The unsuspension names the Job the pass decided on: its UID and spec hash are tested.
    assert [op["op"] for op in writes[1][1]] == ["test", "test", "add"]
    assert writes[1][1][0] == {"op": "test", "path": "/metadata/uid", "value": "job-a"}
    assert writes[1][1][2] == {"op": "add", "path": "/spec/suspend", "value": False}
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
    # Victims first: the admission is revoked, then the Job suspended.
    assert paths[:2] == [trainingjob_path(NS, "low") + "/status", job_path(NS, "low")]
    assert writes[0][1]["status"]["admission"] is None
    assert writes[1][1][-1] == {"op": "add", "path": "/spec/suspend", "value": True}
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


def test_no_admission_when_a_victims_suspension_fails(world: World) -> None:
    """A victim's suspension is confirmed before the work it makes room for is admitted."""
    world.add("low", gpus=8, priority="low", running=True)
    world.add("high", gpus=4, priority="high")
    world.kube.fail[job_path(NS, "low")] = [500]
    writes = world.run_pass()
    assert job_path(NS, "high") not in [p for p, _ in writes]
    assert not world.store.jobs[f"{NS}/high"].running
    # The next pass decides again from what is observed, and goes through.
    writes = world.run_pass()
    paths = [p for p, _ in writes]
    assert paths.index(job_path(NS, "low")) < paths.index(job_path(NS, "high"))
    assert world.status("high")["phase"] == "Admitted"


def test_an_admission_never_unsuspends_a_job_rebuilt_since_the_pass(world: World) -> None:
    """The pass decided on Job `job-a`; it was replaced by another of the same name before
    the unsuspend: the UID test fails and nothing is admitted."""
    key = world.add("a", gpus=2)

    async def scenario() -> None:
        build = world.loop  # the pass runs, then the Job is swapped before its effects
        from cadre.core.cluster.snapshot import build_snapshot  # noqa: PLC0415

        snapshot = build_snapshot(world.store, world.config)
        path = job_path(NS, "a")
        job = world.kube.objects[path]
        job["metadata"]["uid"] = "job-a-rebuilt"
        world.kube.put(path, job)
        assert await build._admit(snapshot, key)

    asyncio.run(scenario())
    assert world.kube.objects[job_path(NS, "a")]["spec"]["suspend"] is True
    # The admission written names the Job decided on: the rebuilt one holds nothing.
    assert world.status("a")["admission"]["jobUID"] == "job-a"
    world.store.upsert_job(world.kube.objects[job_path(NS, "a")])
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
        admitted = [path for path, _ in world.kube.writes]
        # Then the queue writer catches up, and never writes an admitted job as Queued.
        await world.queue.write_round(paced=False)
        return admitted

    admitted = asyncio.run(passes())
    assert admitted == [
        trainingjob_path(NS, "w00") + "/status",
        job_path(NS, "w00"),
        trainingjob_path(NS, "w01") + "/status",
        job_path(NS, "w01"),
    ]
    assert world.status("w00")["phase"] == "Admitted"
    assert world.status("w02")["phase"] == "Queued"
    assert world.status("w02")["queue"]["position"] == 1
    assert world.status("w29")["queue"]["position"] == 28


def test_no_children_and_no_error_in_a_namespace_being_deleted(world: World) -> None:
    """A TrainingJob whose namespace is going: the create is refused (403 or 404), which
    is no failure to retry (its own deletion follows)."""
    key = world.add("late", gpus=1)
    del world.store.jobs[key]
    world.store.trainingjobs[key].pop("status", None)
    world.kube.fail["/apis/batch/v1/namespaces/vision-research/jobs"] = [403, 404]
    for message in (
        '{"message": "jobs.batch \\"late\\" is forbidden: unable to create new content in '
        'namespace vision-research because it is being terminated"}',
        '{"message": "namespaces \\"vision-research\\" not found"}',
    ):
        world.kube.fail_message = message
        assert asyncio.run(world.reconciler.reconcile(key)) is None
    assert key not in world.store.jobs


def _unsuspend_by_hand(world: World, name: str) -> str:
    """What an editor of the namespace can do: `kubectl patch job <name> -p
    '{"spec":{"suspend":false}}'`, and the watch brings it to the store."""
    path = job_path(NS, name)
    job = world.kube.objects[path]
    job["spec"]["suspend"] = False
    world.kube.put(path, job)
    world.store.upsert_job(world.kube.objects[path])
    return f"{NS}/{name}"


def test_a_job_unsuspended_by_hand_is_suspended_again_and_reported(world: World) -> None:
    from cadre.controller.admission_loop import UNADMITTED  # noqa: PLC0415

    world.add("running", gpus=8, running=True)  # all 8 t4 GPUs
    world.add("sneaky", gpus=4)
    world.run_pass()
    assert world.status("sneaky")["phase"] == "Queued"
    before = UNADMITTED._value.get()
    key = _unsuspend_by_hand(world, "sneaky")
    # It holds what it uses until it is stopped: never more admitted than the quota.
    assert world.store.admitted(key) and world.store.runs_unadmitted(key)
    writes = world.run_pass()
    assert writes[0][0] == job_path(NS, "sneaky")
    assert writes[0][1][-1] == {"op": "add", "path": "/spec/suspend", "value": True}
    assert world.kube.objects[job_path(NS, "sneaky")]["spec"]["suspend"] is True
    assert UNADMITTED._value.get() == before + 1
    assert "UnadmittedRunSuspended" in world.event_reasons("sneaky")
    status = world.status("sneaky")
    assert status["phase"] == "Queued"
    assert "admission" not in status
    (flag,) = [c for c in status["conditions"] if c["type"] == "UnadmittedRun"]
    assert flag["reason"] == "JobUnsuspendedWithoutAdmission"
    # The running job is untouched, and the next pass has nothing to undo.
    assert world.store.jobs[f"{NS}/running"].running
    assert world.run_pass() == []
    # Once it is admitted for real, the flag goes.
    world.store.delete_trainingjob(f"{NS}/running")
    world.run_pass()
    status = world.status("sneaky")
    assert status["phase"] == "Admitted"
    assert not [c for c in status["conditions"] if c["type"] == "UnadmittedRun"]


def test_an_admission_whose_unsuspension_failed_is_started_by_a_later_pass(
    world: World,
) -> None:
    world.add("a", gpus=2)
    world.kube.fail[job_path(NS, "a")] = [503]
    world.run_pass()
    key = f"{NS}/a"
    assert world.status("a")["admission"]["jobUID"] == "job-a"
    assert world.kube.objects[job_path(NS, "a")]["spec"]["suspend"] is True
    assert world.store.admitted(key)  # the admission holds the quota meanwhile
    writes = world.run_pass()
    assert [p for p, _ in writes] == [job_path(NS, "a")]
    assert world.kube.objects[job_path(NS, "a")]["spec"]["suspend"] is False


def test_a_victim_whose_suspension_failed_is_stopped_without_a_tamper_report(
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
    assert world.kube.objects[job_path(NS, "low")]["spec"]["suspend"] is True
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
    assert world.kube.objects[job_path(NS, "old")]["spec"]["suspend"] is True
    old = world.status("old")
    (condition,) = [c for c in old["conditions"] if c["type"] == "Admitted"]
    assert condition["reason"] == "InvalidSpec"
    assert "workers" in condition["message"]
    assert "admission" not in old


def test_a_job_whose_last_pods_are_still_stopping_waits_for_them(world: World) -> None:
    """Suspended moments ago (a preemption, an unsuspension undone): its killed pods are not
    counted yet. Unsuspended now, the Job controller could count their SIGKILL (exit 137)
    as a worker failure of the new run; it waits until they are gone."""
    key = world.add("again", gpus=2)
    path = job_path(NS, "again")

    def job_status(**status: Any) -> None:
        job = world.kube.objects[path]
        job["status"] = status
        world.kube.put(path, job)
        world.store.upsert_job(world.kube.objects[path])

    job_status(active=1)
    assert world.run_pass()[0][0] == trainingjob_path(NS, "again") + "/status"
    assert world.kube.objects[path]["spec"]["suspend"] is True
    (condition,) = [c for c in world.status("again")["conditions"] if c["type"] == "Admitted"]
    assert condition["reason"] == "Stopping"
    job_status(active=0, uncountedTerminatedPods={"failed": ["pod-uid"]})
    world.run_pass()
    assert world.kube.objects[path]["spec"]["suspend"] is True
    job_status(active=0, failed=0)
    world.run_pass()
    assert world.store.admitted(key)
    assert world.kube.objects[path]["spec"]["suspend"] is False


def test_a_job_whose_stopped_pods_still_exist_waits_until_they_are_gone(world: World) -> None:
    """Stopped and counted, but still there (held by Cadre's accounting finalizer, Failed
    with exit 137): the Job controller reads every pod it owns against the podFailurePolicy,
    so a Job resumed now would fail at once on that exit code. It waits until the pod goes."""
    key = world.add("again", gpus=2)
    path = job_path(NS, "again")
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
    assert world.kube.objects[path]["spec"]["suspend"] is True
    (condition,) = [c for c in world.status("again")["conditions"] if c["type"] == "Admitted"]
    assert condition["reason"] == "Stopping"
    world.store.upsert_pod(replace(stopped, gone=True))  # its DELETED event
    world.run_pass()
    assert world.store.admitted(key)
    assert world.kube.objects[path]["spec"]["suspend"] is False


def test_an_admission_is_timed_and_allocation_is_exported(world: World) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

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
        return REGISTRY.get_sample_value("cadre_team_oldest_queued_seconds", {"team": team})

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
