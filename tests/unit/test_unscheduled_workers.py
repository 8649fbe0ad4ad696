"""An admitted gang whose workers the scheduler cannot place says so: which workers wait
and kube-scheduler's own reason, in its Running condition and one Warning Event per cause
(cadre.core.workloads.scheduling, cadre.core.training.lifecycle, the store; pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from test_lifecycle import admission, cond, job

from cadre.core.cluster.store import Store
from cadre.core.training.lifecycle import admitted, from_job, transition_event
from cadre.core.workloads.scheduling import (
    UnscheduledPod,
    unbound,
    unscheduled_message,
    unscheduled_summary,
)

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)
SCHEDULER = (
    "0/8 nodes are available: 2 Insufficient nvidia.com/gpu, 6 node(s) had untolerated taint"
)
TJ = {
    "apiVersion": "cadre.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "big", "namespace": "ns", "uid": "t"},
}


def pod(name: str = "big-2-x", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {}, "status": {"phase": "Pending", **status}}


def unschedulable(message: str = SCHEDULER) -> list[dict[str, Any]]:
    return [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    ]


def test_the_schedulers_message_is_read_only_from_a_pod_it_could_not_place() -> None:
    assert unscheduled_message(pod(conditions=unschedulable())) == SCHEDULER
    assert unscheduled_message(pod()) is None  # not tried yet
    placed = pod(conditions=[{"type": "PodScheduled", "status": "True"}])
    assert unscheduled_message(placed) is None
    gated = pod(
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
    )
    assert unscheduled_message(gated) is None  # held on purpose, not refused
    bound = {**pod(conditions=unschedulable()), "spec": {"nodeName": "n1"}}
    assert unscheduled_message(bound) is None
    going = {**pod(conditions=unschedulable()), "metadata": {"name": "p", "deletionTimestamp": "x"}}
    assert unscheduled_message(going) is None
    assert (
        unscheduled_message({**pod(conditions=unschedulable()), "status": {"phase": "Running"}})
        is None
    )


def test_the_summary_names_how_many_have_a_node_and_the_first_that_waits() -> None:
    one = [UnscheduledPod("big-2-x", SCHEDULER)]
    assert unscheduled_summary(3, one) == f"2/3 workers scheduled; big-2-x waits: {SCHEDULER}"
    two = [UnscheduledPod("big-2-x", SCHEDULER), UnscheduledPod("big-1-y", "other")]
    assert unscheduled_summary(3, two) == "1/3 workers scheduled; big-1-y (and 1 more) waits: other"


def test_an_admitted_gang_says_which_workers_wait_and_why_then_that_they_run() -> None:
    a = admitted(None, generation=1, now=T0, admission=admission(24), team="t", gpus=24)
    starting = job(ready=2, active=3)
    waiting = [UnscheduledPod("big-2-x", SCHEDULER)]
    w = from_job(a, starting, workers=3, generation=1, now=T1, unscheduled=waiting)
    running_condition = cond(w, "Running")
    assert w["phase"] == "Admitted"
    assert (running_condition["status"], running_condition["reason"]) == (
        "False",
        "WorkersUnschedulable",
    )
    assert running_condition["message"] == f"2/3 workers scheduled; big-2-x waits: {SCHEDULER}"
    assert w["queue"] == {"reason": running_condition["message"]}  # kubectl get -o wide
    # Said once: the same cause writes nothing new.
    assert from_job(w, starting, workers=3, generation=1, now=T1, unscheduled=waiting) == w
    event = transition_event(TJ, a, w, T1)
    assert event is not None
    assert (event["type"], event["reason"]) == ("Warning", "WorkersUnschedulable")
    assert event["message"] == running_condition["message"]
    assert transition_event(TJ, w, w, T1) is None
    # Placed at last (the small jobs finished): back to waiting for them to start ...
    back = from_job(w, starting, workers=3, generation=1, now=T1)
    assert cond(back, "Running")["reason"] == "WaitingForWorkers"
    assert "queue" not in back
    assert transition_event(TJ, w, back, T1) is None
    # ... and Running once all run.
    run = from_job(back, job(ready=3, active=3), workers=3, generation=1, now=T1)
    assert run["phase"] == "Running"


def test_the_store_keeps_what_the_scheduler_says_per_pod_until_the_pod_or_job_goes() -> None:
    store = Store()
    one = UnscheduledPod("big-2-x", SCHEDULER)
    assert store.set_unscheduled("ns/big", "p2", one)
    assert not store.set_unscheduled("ns/big", "p2", one)  # unchanged
    assert store.unscheduled_of("ns/big") == (one,)
    assert store.set_unscheduled("ns/big", "p2", None)  # placed
    assert store.unscheduled_of("ns/big") == ()
    assert "ns/big" not in store.unscheduled
    # A pod found gone by a relist (its DELETED event missed): forgotten, its job named.
    store.set_unscheduled("ns/big", "p2", one)
    assert store.drop_unscheduled("p2") == "ns/big"
    assert store.drop_unscheduled("p2") is None
    assert store.unscheduled_of("ns/big") == ()
    store.set_unscheduled("ns/big", "p2", one)
    store.delete_trainingjob("ns/big")
    assert store.unscheduled_of("ns/big") == ()


def test_workers_not_tried_yet_count_as_waiting_but_say_nothing_until_one_is_refused() -> None:
    """With native gang scheduling no worker is bound until all can be: the ones the
    scheduler has not tried (or holds for their gang) still have no node."""
    quiet = [UnscheduledPod("big-0-a", None), UnscheduledPod("big-1-b", None)]
    assert unscheduled_summary(2, quiet) is None
    refused = [UnscheduledPod("big-0-a", None), UnscheduledPod("big-1-b", SCHEDULER)]
    assert unscheduled_summary(2, refused) == (
        f"0/2 workers scheduled; big-1-b (and 1 more) waits: {SCHEDULER}"
    )
    assert unbound(pod())
    assert not unbound({**pod(), "spec": {"nodeName": "n1"}})
    assert not unbound({**pod(), "metadata": {"name": "x", "deletionTimestamp": "2026"}})
