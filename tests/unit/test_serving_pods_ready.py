"""admission.waitForPodsReady for a ModelDeployment's replicas.min (issue #14 item 3): its
replicas not all scheduled in time, it gives its quota back and waits out a backoff in the
queue; a model that loads slowly on nodes it has is left alone (pure: the snapshot, the
lifecycle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from test_serving_snapshot import NS, config, md, store_with

from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.snapshot import build_snapshot
from cadre.core.cluster.store import Store, serving_key
from cadre.core.serving.lifecycle import serving_timed_out
from cadre.core.serving.observed import ServingPod
from cadre.core.workloads.scheduling import Backoff, UnscheduledPod

__all__ = ["config"]  # the fixture, shared with test_serving_snapshot

ADMITTED_AT = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
KEY = serving_key(f"{NS}/fraud")


def loading(**status: Any) -> dict[str, Any]:
    doc = md(admission={"replicas": 2, "extraReplicas": 0})
    doc["status"].update(phase="Loading", **status)
    return doc


def with_pods(store: Store, scheduled: int, pending: int) -> Store:
    for i in range(scheduled + pending):
        pod = ServingPod(
            f"p{i}", f"fraud-{i}", "stable", False, False, True, None, scheduled=i < scheduled
        )
        store.upsert_serving_pod(f"{NS}/fraud", pod)
        if i >= scheduled:
            waiting = UnscheduledPod(f"fraud-{i}", "0/8 nodes are available: 2 Insufficient")
            store.set_unscheduled(KEY, f"p{i}", waiting)
    return store


def test_replicas_not_scheduled_in_time_are_requeued_and_free_their_quota(
    config: OperatorConfig,
) -> None:
    timeout = config.admission.wait_for_pods_ready.timeout_seconds
    store = with_pods(store_with(loading()), scheduled=1, pending=1)
    before = build_snapshot(store, config, now=ADMITTED_AT + timedelta(seconds=timeout - 1))
    assert before.timed_out == ()
    assert [w.key for w in before.snapshot.workloads] == [KEY]
    assert before.next_deadline == ADMITTED_AT + timedelta(seconds=timeout)

    after = build_snapshot(store, config, now=ADMITTED_AT + timedelta(seconds=timeout))
    assert after.timed_out == (KEY,)
    assert after.problems[KEY].reason == "PodsReadyTimeout"
    assert after.problems[KEY].message == (
        f"1/2 replicas scheduled {timeout}s after admission "
        "(fraud-1 waits: 0/8 nodes are available: 2 Insufficient)"
    )
    assert after.snapshot.workloads == ()  # what it holds is not counted: it is stopped


def test_a_model_that_loads_slowly_on_its_nodes_is_left_alone(config: OperatorConfig) -> None:
    store = with_pods(store_with(loading()), scheduled=2, pending=0)
    build = build_snapshot(store, config, now=ADMITTED_AT + timedelta(days=1))
    assert build.timed_out == ()
    assert build.next_deadline is None


def test_requeued_it_waits_out_its_backoff_then_asks_again(config: OperatorConfig) -> None:
    readiness = config.admission.wait_for_pods_ready
    now = ADMITTED_AT + timedelta(seconds=readiness.timeout_seconds)
    doc = loading()
    doc["status"] = serving_timed_out(
        doc["status"],
        generation=1,
        now=now,
        message="1/2 replicas scheduled 600s after admission",
        backoff=Backoff(readiness.backoff_base_seconds, readiness.backoff_max_seconds, None),
    )
    status = doc["status"]
    assert "admission" not in status and "admittedAt" not in status
    assert status["phase"] == "Queued"
    assert status["requeue"] == {"count": 1, "requeueAt": "2026-11-30T01:11:00Z"}
    admitted = next(c for c in status["conditions"] if c["type"] == "Admitted")
    assert admitted["reason"] == "PodsReadyTimeout"
    assert admitted["message"].endswith("; requeued (1), tried again from 2026-11-30T01:11:00Z")

    waiting = build_snapshot(store_with(doc), config, now=now + timedelta(seconds=30))
    assert waiting.snapshot.workloads == ()
    assert waiting.problems[KEY].message == admitted["message"]
    assert waiting.next_deadline == datetime(2026, 11, 30, 1, 11, tzinfo=UTC)

    again = build_snapshot(store_with(doc), config, now=now + timedelta(minutes=2))
    (workload,) = again.snapshot.workloads
    assert (workload.key, workload.admitted) == (KEY, False)


def test_past_the_limit_it_waits_for_a_new_spec(config: OperatorConfig) -> None:
    doc = loading(requeue={"count": 2})
    doc["status"] = serving_timed_out(
        doc["status"],
        generation=1,
        now=ADMITTED_AT,
        message="0/2 replicas scheduled 600s after admission",
        backoff=Backoff(60, 3600, 2),
    )
    assert doc["status"]["requeue"] == {"count": 2, "generation": 1}
    later = ADMITTED_AT + timedelta(days=1)
    build = build_snapshot(store_with(doc), config, now=later)
    assert build.snapshot.workloads == ()
    assert build.problems[KEY].message.endswith(
        "(requeued 2 time(s), the limit): not tried again until its spec changes"
    )
    changed = {**doc, "metadata": {**doc["metadata"], "generation": 2}}
    (workload,) = build_snapshot(store_with(changed), config, now=later).snapshot.workloads
    assert workload.key == KEY


def test_without_a_clock_or_when_disabled_nothing_times_out(config: OperatorConfig) -> None:
    store = with_pods(store_with(loading()), scheduled=0, pending=2)
    assert build_snapshot(store, config).timed_out == ()
    readiness = config.admission.wait_for_pods_ready.model_copy(update={"enabled": False})
    admission = config.admission.model_copy(update={"wait_for_pods_ready": readiness})
    off = config.model_copy(update={"admission": admission})
    late = ADMITTED_AT + timedelta(days=1)
    assert build_snapshot(store, off, now=late).timed_out == ()
