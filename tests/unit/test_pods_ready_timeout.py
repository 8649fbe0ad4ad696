"""An admitted gang whose workers are not all running within
admission.waitForPodsReady.timeoutSeconds gives its GPUs back: the snapshot hands it to the
loop to stop (and does not count what it holds), it waits out an exponential backoff in
the queue, and fails after backoffLimitCount requeues (pure: the snapshot, the
lifecycle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_admission_snapshot import add, config, example_store, job, tj
from test_lifecycle import admission, cond

__all__ = ["config"]  # the fixture, shared with test_admission_snapshot

from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.snapshot import build_snapshot
from cadre.core.scheduling import schedule
from cadre.core.training.lifecycle import admitted, requeue_delay, timed_out, transition_event
from cadre.core.workloads.scheduling import Backoff

ADMITTED_AT = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
KEY = "vision-research/big"


def admitted_gang(phase: str = "Admitted", **status: Any) -> dict[str, Any]:
    doc = tj("big", workers=2, gpus=4)
    doc["status"] = {
        "phase": phase,
        "admission": {"jobUID": "job-big", "team": "vision", "flavor": "t4", "gpus": 8},
        "admittedAt": "2026-11-30T06:00:00Z",
        "conditions": [
            {
                "type": "Running",
                "status": "False",
                "reason": "WorkersUnschedulable",
                "message": "1/2 workers scheduled; big-1-x waits: 0/8 nodes are available",
            }
        ],
        **status,
    }
    return doc


def test_requeue_waits_double_each_time_up_to_the_maximum() -> None:
    waits = [requeue_delay(n, 60, 3600).total_seconds() for n in range(1, 9)]
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_within_the_timeout_the_gang_keeps_its_quota_and_the_loop_knows_when_to_look(
    config: OperatorConfig,
) -> None:
    store = example_store()
    add(store, admitted_gang(), job("big", suspend=False))
    timeout = config.admission.wait_for_pods_ready.timeout_seconds
    build = build_snapshot(store, config, now=ADMITTED_AT + timedelta(seconds=timeout - 1))
    assert build.timed_out == ()
    assert [w.key for w in build.snapshot.workloads] == [KEY]
    assert build.next_deadline == ADMITTED_AT + timedelta(seconds=timeout)
    # Without a clock (a tool's snapshot) nothing ever times out.
    assert build_snapshot(store, config).timed_out == ()


def test_past_the_timeout_the_gang_is_stopped_and_what_it_holds_is_free(
    config: OperatorConfig,
) -> None:
    store = example_store()
    add(store, admitted_gang(), job("big", suspend=False))
    add(store, tj("small", workers=8, gpus=1, created="2026-11-30T06:01:00Z"))
    timeout = config.admission.wait_for_pods_ready.timeout_seconds
    build = build_snapshot(store, config, now=ADMITTED_AT + timedelta(seconds=timeout))
    assert build.timed_out == (KEY,)
    problem = build.problems[KEY]
    assert problem.reason == "PodsReadyTimeout"
    assert problem.message == (
        f"0/2 workers running {timeout}s after admission "
        "(1/2 workers scheduled; big-1-x waits: 0/8 nodes are available)"
    )
    # Its 8 t4 GPUs are not counted: the job that waited for them is admitted this pass.
    result = schedule(build.snapshot)
    assert [a.key for a in result.admitted] == ["vision-research/small"]


def test_a_requeued_gang_waits_out_its_backoff_then_is_offered_again(
    config: OperatorConfig,
) -> None:
    at = ADMITTED_AT + timedelta(minutes=20)
    requeued = tj("big", workers=2, gpus=4)
    requeued["status"] = {
        "phase": "Queued",
        "requeue": {"count": 1, "requeueAt": "2026-11-30T06:20:00Z"},
    }
    store = example_store()
    add(store, requeued)
    early = build_snapshot(store, config, now=at - timedelta(seconds=1))
    assert early.problems[KEY].reason == "PodsReadyTimeout"
    assert "tried again from 2026-11-30T06:20:00Z" in early.problems[KEY].message
    assert early.snapshot.workloads == ()
    assert early.next_deadline == at
    # What the requeue wrote, with the scheduler's reason, is what the queue keeps saying.
    said = "1/2 workers running 600s after admission (big-1-x waits: 0/8 nodes are available)"
    said += "; requeued (1), tried again from 2026-11-30T06:20:00Z"
    requeued["status"]["conditions"] = [
        {"type": "Admitted", "status": "False", "reason": "PodsReadyTimeout", "message": said}
    ]
    store.upsert_trainingjob(
        {**requeued, "metadata": {**requeued["metadata"], "resourceVersion": "2"}}
    )
    assert (
        build_snapshot(store, config, now=at - timedelta(seconds=1)).problems[KEY].message == said
    )
    late = build_snapshot(store, config, now=at)
    assert KEY not in late.problems
    assert [a.key for a in schedule(late.snapshot).admitted] == [KEY]


def test_the_status_of_a_timed_out_gang_then_its_next_admission_then_the_limit() -> None:
    now = ADMITTED_AT + timedelta(minutes=10)
    first = admitted(
        None, generation=1, now=ADMITTED_AT, admission=admission(8), team="vision", gpus=8
    )
    kwargs: dict[str, Any] = {"backoff": Backoff(60, 3600, 2)}
    back = timed_out(
        first, generation=1, now=now, message="0/2 workers running 600s after admission", **kwargs
    )
    assert back["phase"] == "Queued"
    assert "admission" not in back and "admittedAt" not in back
    assert back["requeue"] == {"count": 1, "requeueAt": "2026-11-30T06:11:00Z"}
    assert cond(back, "Admitted")["reason"] == "PodsReadyTimeout"
    assert back["queue"]["reason"].endswith("requeued (1), tried again from 2026-11-30T06:11:00Z")
    event = transition_event({"metadata": {"name": "big", "namespace": "ns"}}, first, back, now)
    assert event is not None and (event["type"], event["reason"]) == ("Warning", "PodsReadyTimeout")
    again = admitted(back, generation=1, now=now, admission=admission(8), team="vision", gpus=8)
    assert again["requeue"] == {"count": 1}  # the count stays, the wait is over
    second = timed_out(again, generation=1, now=now, message="late again", **kwargs)
    assert second["requeue"] == {"count": 2, "requeueAt": "2026-11-30T06:12:00Z"}
    third = timed_out(
        admitted(second, generation=1, now=now, admission=admission(8), team="vision", gpus=8),
        generation=1,
        now=now,
        message="late once more",
        **kwargs,
    )
    assert third["phase"] == "Failed"
    assert cond(third, "Finished")["reason"] == "PodsReadyTimeout"
    assert "requeued 2 time(s), the limit" in cond(third, "Finished")["message"]


@pytest.mark.parametrize("phase", ["Running", "Queued"])
def test_only_an_admitted_gang_not_yet_running_times_out(
    config: OperatorConfig, phase: str
) -> None:
    store = example_store()
    add(store, admitted_gang(phase), job("big", suspend=False))
    build = build_snapshot(store, config, now=ADMITTED_AT + timedelta(days=1))
    assert build.timed_out == ()


def test_a_gang_failed_at_the_limit_is_never_offered_again(config: OperatorConfig) -> None:
    failed = tj("big", workers=2, gpus=4)
    failed["status"] = {"phase": "Failed", "requeue": {"count": 2}}
    store = example_store()
    add(store, failed)  # its Job stays suspended
    build = build_snapshot(store, config, now=ADMITTED_AT)
    assert build.snapshot.workloads == () and KEY not in build.problems
