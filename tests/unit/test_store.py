"""The controller's cache (cadre.core.cluster.store): what keeps it safe without comparing
resourceVersions for order: relists merged by time, own writes superseding their base,
admissions as expectations until the watch shows them."""

from __future__ import annotations

from typing import Any

from cadre.core.cluster.store import EXPECTATION_SECONDS, FORGET_AFTER_SECONDS, Store
from cadre.core.objects import key_of

NS = "team-a"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def tj(name: str, *, uid: str | None = None, rv: str = "1", phase: str | None = None) -> Any:
    obj: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid or f"uid-{name}",
            "resourceVersion": rv,
            "generation": 1,
        },
        "spec": {"workers": 1},
    }
    if phase:
        obj["status"] = {"phase": phase}
    return obj


def job(name: str, *, running: bool, uid: str | None = None, owner: str | None = None) -> Any:
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid or f"job-{name}",
            "resourceVersion": "7",
            "labels": {"cadre.dev/trainingjob": name},
            "ownerReferences": [
                {"kind": "TrainingJob", "controller": True, "uid": owner or f"uid-{name}"}
            ],
        },
        "spec": {"suspend": not running},
        "status": {},
    }


def node(name: str) -> Any:
    return {"metadata": {"name": name, "labels": {}}, "status": {"allocatable": {}}}


def test_a_relist_drops_what_is_gone_and_keeps_what_changed_since_it_was_sent() -> None:
    clock = Clock()
    store = Store(clock=clock)
    store.upsert_node(node("ghost"))
    store.upsert_trainingjob(tj("gone"))
    store.upsert_job(job("gone", running=True))
    clock.now = 200.0
    listed_at = clock.now  # the list is sent now...
    clock.now = 201.0
    store.upsert_node(node("new"))  # ...and a watch event arrives before its answer
    changed = store.merge_listing("node", [], listed_at)
    assert changed
    assert set(store.nodes) == {"new"}  # the ghost went, the newer one stayed
    assert store.merge_listing("trainingjob", [], listed_at)
    assert store.merge_listing("job", [], listed_at)
    assert f"{NS}/gone" not in store.trainingjobs
    assert f"{NS}/gone" not in store.jobs
    assert not store.admitted(f"{NS}/gone")


def test_a_relist_replaces_records_older_than_itself() -> None:
    clock = Clock()
    store = Store(clock=clock)
    store.upsert_trainingjob(tj("a", rv="5", phase="Queued"))
    clock.now = 150.0
    store.merge_listing("trainingjob", [tj("a", rv="9", phase="Running")], 140.0)
    assert store.trainingjobs[f"{NS}/a"]["status"]["phase"] == "Running"
    # A list sent before the record's last update does not replace it.
    store.upsert_trainingjob(tj("a", rv="11", phase="Succeeded"))
    store.merge_listing("trainingjob", [tj("a", rv="10", phase="Running")], 149.0)
    assert store.trainingjobs[f"{NS}/a"]["status"]["phase"] == "Succeeded"


def test_an_admission_holds_until_the_watch_shows_it() -> None:
    clock = Clock()
    store = Store(clock=clock)
    key = f"{NS}/a"
    store.upsert_trainingjob(tj("a"))
    store.upsert_job(job("a", running=False))
    store.expect_admitted(key, "job-a")
    assert store.admitted(key)
    # A lagging event from before the unsuspension: still admitted (its quota is held).
    store.upsert_job(job("a", running=False))
    assert store.admitted(key)
    # The watch catches up: the expectation is met and goes.
    store.upsert_job(job("a", running=True))
    assert store.admitted(key)
    assert key not in store.expectations
    # An expectation never seen runs out.
    store.upsert_job(job("a", running=False))
    store.expect_admitted(key, "job-a")
    clock.now += EXPECTATION_SECONDS + 1
    assert not store.admitted(key)


def test_a_job_listed_running_is_not_undone_by_a_lagging_event() -> None:
    """A new leader's relist shows a Job the old leader unsuspended in its last moment;
    the standby's watch still delivers the older, suspended version afterwards."""
    clock = Clock()
    store = Store(clock=clock)
    key = f"{NS}/a"
    store.upsert_trainingjob(tj("a"))
    store.upsert_job(job("a", running=False))
    clock.now = 110.0
    store.merge_listing("job", [job("a", running=True)], 105.0)
    store.upsert_job(job("a", running=False))  # the lagging watch event
    assert store.admitted(key)


def test_a_write_answer_supersedes_its_base() -> None:
    store = Store()
    key = f"{NS}/a"
    store.upsert_trainingjob(tj("a", rv="5", phase="Queued"))
    store.upsert_trainingjob(tj("a", rv="6", phase="Admitted"), written_from="5")
    assert not store.upsert_trainingjob(tj("a", rv="5", phase="Queued"))  # the late event
    assert store.trainingjobs[key]["status"]["phase"] == "Admitted"
    store.upsert_trainingjob(tj("a", rv="8", phase="Running"))  # anything else applies
    assert store.trainingjobs[key]["status"]["phase"] == "Running"
    store.upsert_trainingjob(tj("a", rv="5", phase="Queued"), read=True)  # a GET's answer
    assert store.trainingjobs[key]["status"]["phase"] == "Queued"


def test_an_answer_that_comes_after_the_deletion_does_not_bring_the_object_back() -> None:
    """A status PATCH sent before the TrainingJob's deletion, answered after its DELETED
    event: stored, it was a ghost that held quota and had Jobs made for it until the
    next resync (bench_churn, sixteenth sitting)."""
    store = Store()
    key = f"{NS}/a"
    store.upsert_trainingjob(tj("a", rv="5", phase="Queued"))
    store.delete_trainingjob(key, uid="uid-a")
    assert not store.upsert_trainingjob(tj("a", rv="6", phase="Admitted"), written_from="5")
    assert not store.upsert_trainingjob(tj("a", rv="6", phase="Admitted"), read=True)
    assert key not in store.trainingjobs
    # A new object of the name: an answer about the old one does not replace it.
    assert store.upsert_trainingjob(tj("a", uid="new", rv="9"))
    assert not store.upsert_trainingjob(tj("a", rv="10", phase="Admitted"), written_from="6")
    assert store.trainingjobs[key]["metadata"]["uid"] == "new"
    # The same for ModelDeployments and ResourceBudgets.
    md = tj("m") | {"kind": "ModelDeployment"}
    store.upsert_modeldeployment(md)
    store.delete_modeldeployment(f"{NS}/m")
    assert not store.upsert_modeldeployment(md, written_from="1")
    assert f"{NS}/m" not in store.modeldeployments
    budget = {"metadata": {"name": "vision", "uid": "b1", "resourceVersion": "3"}, "spec": {}}
    store.upsert_budget(budget)
    store.delete_budget("vision")
    assert not store.upsert_budget(budget, read=True)
    assert "vision" not in store.budgets


def test_a_new_trainingjob_of_the_same_name_does_not_inherit_the_old_job() -> None:
    store = Store()
    key = f"{NS}/a"
    store.upsert_trainingjob(tj("a", uid="old"))
    store.upsert_job(job("a", running=True, owner="old"))
    store.expect_admitted(key, "job-a")
    store.delete_trainingjob(key, uid="old")
    assert store.deleted_trainingjobs[key][0] == "old"  # its Job may still be stopped
    store.upsert_trainingjob(tj("a", uid="new"))
    assert key not in store.jobs
    assert not store.admitted(key)
    # Late events of the old Job are not the new TrainingJob's.
    assert not store.upsert_job(job("a", running=True, owner="old"))
    assert key not in store.jobs
    # A DELETED event of the old TrainingJob does not remove the new one.
    assert not store.delete_trainingjob(key, uid="old")
    assert key in store.trainingjobs


def test_retired_jobs_are_forgotten() -> None:
    clock = Clock()
    store = Store(clock=clock)
    key = f"{NS}/a"
    store.upsert_trainingjob(tj("a"))
    store.upsert_job(job("a", running=False, uid="j1"))
    store.retire_job(key, "j1")
    assert not store.upsert_job(job("a", running=False, uid="j1"))  # a late event
    store.delete_job(key, "j1")  # its deletion seen: nothing late comes any more
    assert "j1" not in store.retired_jobs
    store.retire_job(key, "j2")  # never seen deleted (a watch gap)
    clock.now += FORGET_AFTER_SECONDS + 1
    store.merge_listing("job", [], clock.now)
    assert store.retired_jobs == {}
    assert store.sizes()["retired_jobs"] == 0


def test_no_tombstone_when_the_job_went_first() -> None:
    """A deleted TrainingJob is remembered only while its Job may still run; a Job whose
    deletion was seen first leaves nothing to remember."""
    store = Store()
    key = f"{NS}/a"
    store.upsert_trainingjob(tj("a"))
    store.upsert_job(job("a", running=True))
    store.delete_job(key, "job-a")
    store.delete_trainingjob(key, uid="uid-a")
    assert store.deleted_trainingjobs == {}
    assert all(size == 0 for size in store.sizes().values())


def test_the_reconciler_is_handed_only_trainingjobs_it_has_work_for() -> None:
    """A waiting job (no Job, no admission) is the loop's and the queue writer's: their
    status writes come back as watch events, which need no reconcile."""
    store = Store(clock=Clock())
    for name, phase in (("waiting", "Queued"), ("new", None), ("preempted", "Preempted")):
        store.upsert_trainingjob(tj(name, phase=phase))
        assert not store.reconciler_has_work(f"{NS}/{name}")
    for name, phase in (("done", "Succeeded"), ("failed", "Failed"), ("paused", "Suspended")):
        store.upsert_trainingjob(tj(name, phase=phase))  # a TTL, a resume
        assert store.reconciler_has_work(f"{NS}/{name}")
    admitted = tj("admitted", phase="Admitted")
    admitted["status"]["admission"] = {"id": "a1"}  # its Job is on its way
    suspending = tj("suspending", phase="Queued")
    suspending["spec"]["suspend"] = True
    for obj in (admitted, suspending):
        store.upsert_trainingjob(obj)
        assert store.reconciler_has_work(key_of(obj))
    store.upsert_trainingjob(tj("running", phase="Queued"))
    store.upsert_job(job("running", running=True))
    assert store.reconciler_has_work(f"{NS}/running")  # its Job's status to follow
    assert store.reconciler_has_work(f"{NS}/gone")  # deleted: its Job may need stopping
