"""TrainingJob status transitions (cadre.core.training.lifecycle, pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cadre.core.objects import with_condition
from cadre.core.training.job import job_record
from cadre.core.training.lifecycle import (
    admitted,
    from_job,
    holds_admission,
    preempted,
    queued,
    ran_without_admission,
    restart_for,
    restarting,
    status_patch,
    suspended,
    transition_event,
)
from cadre.core.workloads.queue import QueuePlace

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)


def admission(gpus: int, ident: str = "a1") -> dict[str, Any]:
    """The admission `ident`, which the tests' Jobs are made for ("a1")."""
    return {"id": ident, "jobDigest": job().placement, "team": "t", "flavor": "a100", "gpus": gpus}


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def job(
    *,
    suspend: bool = False,
    ready: int = 0,
    conditions: list[dict[str, Any]] | None = None,
    uid: str = "u",
    admission_id: str = "a1",
    **status: Any,
) -> Any:
    return job_record(
        {
            "metadata": {
                "name": "j",
                "namespace": "ns",
                "uid": uid,
                "resourceVersion": "5",
                "annotations": {"cadre.dev/admission": admission_id},
            },
            "spec": {"suspend": suspend},
            "status": {"ready": ready, "conditions": conditions or [], **status},
        }
    )


def test_condition_transition_time_moves_only_on_status_change() -> None:
    first = with_condition(None, "Admitted", "False", "QuotaExhausted", "wait", 1, T0)
    same = with_condition(first, "Admitted", "False", "CapacityExhausted", "still", 2, T1)
    assert same[0]["lastTransitionTime"] == "2026-11-27T03:00:00Z"
    assert same[0]["reason"] == "CapacityExhausted"
    assert same[0]["observedGeneration"] == 2
    flipped = with_condition(same, "Admitted", "True", "Admitted", "go", 2, T1)
    assert flipped[0]["lastTransitionTime"] == "2026-11-27T03:00:30Z"


def test_queued_then_admitted() -> None:
    q = queued(
        None,
        generation=1,
        now=T0,
        reason="QuotaExhausted",
        message="team vision: 8/8",
        place=QueuePlace(3, None),
        team="vision",
        gpus=8,
    )
    assert q["phase"] == "Queued"
    assert q["queue"] == {"reason": "team vision: 8/8", "position": 3}
    assert q["observedGeneration"] == 1
    assert cond(q, "Admitted")["status"] == "False"
    # The position is left alone when not given (its writes are rate-limited).
    q2 = queued(
        q,
        generation=1,
        now=T1,
        reason="QuotaExhausted",
        message="other",
        place=None,
        team=None,
        gpus=None,
    )
    assert q2["queue"] == {"reason": "other", "position": 3}
    # Behind the exact positions the range replaces the position, and back.
    behind = queued(
        q2,
        generation=1,
        now=T1,
        reason="QuotaExhausted",
        message="other",
        place=QueuePlace(None, "11-100"),
        team=None,
        gpus=None,
    )
    assert behind["queue"] == {"reason": "other", "positionRange": "11-100"}
    assert q2["queue"] == {"reason": "other", "position": 3}  # the input is not changed
    a = admitted(q2, generation=1, now=T1, admission=admission(8), team="vision", gpus=8)
    assert a["phase"] == "Admitted"
    assert "queue" not in a
    assert a["admittedAt"] == "2026-11-27T03:00:30Z"
    assert cond(a, "Admitted")["status"] == "True"
    assert cond(a, "Running")["status"] == "False"
    assert status_patch(q2, a) == {
        "phase": "Admitted",
        "queue": None,
        "admission": admission(8),
        "admittedAt": "2026-11-27T03:00:30Z",
        "conditions": a["conditions"],
    }


def test_running_succeeded() -> None:
    a = admitted(None, generation=1, now=T0, admission=admission(2), team="t", gpus=2)
    assert from_job(a, job(ready=1, active=2), workers=2, generation=1, now=T1) == a
    r = from_job(a, job(ready=2, active=2), workers=2, generation=1, now=T1)
    assert r["phase"] == "Running"
    assert r["startTime"] == "2026-11-27T03:00:30Z"
    assert r["workers"] == {"active": 2, "ready": 2, "succeeded": 0, "failed": 0}
    assert from_job(r, job(ready=2, active=2), workers=2, generation=1, now=T1) == r
    done = job(
        conditions=[{"type": "Complete", "status": "True"}],
        succeeded=2,
        completionTime="2026-11-27T03:05:00Z",
    )
    s = from_job(r, done, workers=2, generation=1, now=T1)
    assert s["phase"] == "Succeeded"
    assert s["completionTime"] == "2026-11-27T03:05:00Z"
    assert (cond(s, "Finished")["status"], cond(s, "Finished")["reason"]) == ("True", "Succeeded")
    assert cond(s, "Running")["status"] == "False"
    # Terminal: nothing moves it any more.
    assert from_job(s, job(ready=2), workers=2, generation=1, now=T1) == s


def test_worker_counts_are_refreshed_without_a_phase_change() -> None:
    a = admitted(None, generation=1, now=T0, admission=admission(4), team="t", gpus=4)
    starting = job(ready=1, active=4)
    # Without refresh (the write is not due yet), counts wait for the next transition.
    assert from_job(a, starting, workers=4, generation=1, now=T1) == a
    w = from_job(a, starting, workers=4, generation=1, now=T1, refresh_workers=True)
    assert w["phase"] == "Admitted"
    assert w["workers"] == {"active": 4, "ready": 1, "succeeded": 0, "failed": 0}
    assert status_patch(a, w) == {"workers": w["workers"]}
    # Unchanged counts: nothing to write.
    assert from_job(w, starting, workers=4, generation=1, now=T1, refresh_workers=True) == w
    r = from_job(w, job(ready=4, active=4), workers=4, generation=1, now=T1)
    assert r["phase"] == "Running"
    assert r["workers"] == {"active": 4, "ready": 4, "succeeded": 0, "failed": 0}
    # While Running, one worker finishing early changes only the counts.
    early = job(ready=3, active=3, succeeded=1)
    assert from_job(r, early, workers=4, generation=1, now=T1) == r
    e = from_job(r, early, workers=4, generation=1, now=T1, refresh_workers=True)
    assert e["phase"] == "Running"
    assert status_patch(r, e) == {"workers": {"active": 3, "ready": 3, "succeeded": 1}}
    # A nested key that goes is sent as null: a merge patch would keep it otherwise.
    assert status_patch(
        {"spend": {"state": "Warning", "threshold": 0.8}}, {"spend": {"state": "Exceeded"}}
    ) == {"spend": {"state": "Exceeded", "threshold": None}}
    # A queued status whose Job runs is not repaired to Admitted: the admission is the
    # status's to give (a Job running without it is suspended again by the loop).
    q = queued(
        None,
        generation=1,
        now=T0,
        reason="QuotaExhausted",
        message="m",
        place=QueuePlace(1, None),
        team="t",
        gpus=4,
    )
    assert from_job(q, starting, workers=4, generation=1, now=T1, refresh_workers=True) == q
    # Terminal and suspended statuses are left alone.
    s = suspended(r, generation=1, now=T1)
    assert from_job(s, early, workers=4, generation=1, now=T1, refresh_workers=True) == s


def test_failed_with_the_workers_exit_code() -> None:
    failed = job(
        conditions=[
            {
                "type": "Failed",
                "status": "True",
                "reason": "PodFailurePolicy",
                "message": "Container worker for pod ns/j-1-abcde failed with exit code 3 "
                "matching FailJob rule at index 1",
            }
        ],
        failed=1,
    )
    f = from_job(
        admitted(None, generation=1, now=T0, admission=admission(1), team="t", gpus=1),
        failed,
        workers=2,
        generation=1,
        now=T1,
    )
    assert f["phase"] == "Failed"
    finished = cond(f, "Finished")
    assert finished["reason"] == "WorkerFailed"
    assert "ns/j-1-abcde" in finished["message"]
    assert "code 3" in finished["message"]


def test_preempted_keeps_its_phase_and_reason_while_queued() -> None:
    a = admitted(None, generation=1, now=T0, admission=admission(8), team="t", gpus=8)
    p = preempted(a, generation=1, now=T1, reason="Preempted", message="preempted by ns/urgent")
    assert p["phase"] == "Preempted"
    assert "admittedAt" not in p
    q = queued(
        p,
        generation=1,
        now=T1,
        reason="QuotaExhausted",
        message="waiting",
        place=QueuePlace(2, None),
        team=None,
        gpus=None,
    )
    assert q["phase"] == "Preempted"
    assert cond(q, "Admitted")["reason"] == "Preempted"
    assert q["queue"]["reason"] == "waiting"


def test_suspended_and_no_op_patch() -> None:
    a = admitted(None, generation=1, now=T0, admission=admission(1), team="t", gpus=1)
    s = suspended(a, generation=2, now=T1)
    assert s["phase"] == "Suspended"
    assert s["observedGeneration"] == 2
    assert cond(s, "Admitted")["reason"] == "Suspended"
    assert cond(s, "Running")["reason"] == "Suspended"
    assert status_patch(s, dict(s)) is None


def test_a_job_running_without_admission_is_never_called_admitted() -> None:
    q = queued(
        None,
        generation=1,
        now=T0,
        reason="QuotaExhausted",
        message="m",
        place=QueuePlace(1, None),
        team="t",
        gpus=4,
    )
    # Someone unsuspended the Job: the status does not follow it (the loop suspends it).
    for running in (job(ready=0, active=2), job(ready=2, active=2)):
        assert from_job(q, running, workers=2, generation=1, now=T1) == q
    assert from_job(q, job(suspend=True), workers=2, generation=1, now=T1) == q
    # An admission of another Job (an earlier one of this TrainingJob) is not its.
    a = admitted(q, generation=1, now=T0, admission=admission(4, ident="old"), team="t", gpus=4)
    assert from_job(a, job(ready=2, active=2), workers=2, generation=1, now=T1) == a
    flagged = ran_without_admission(q, generation=1, now=T1)
    assert cond(flagged, "UnadmittedRun")["reason"] == "JobRanWithoutAdmission"
    again = admitted(flagged, generation=1, now=T1, admission=admission(4), team="t", gpus=4)
    assert not [c for c in again["conditions"] if c["type"] == "UnadmittedRun"]


def test_admission_is_revoked_by_preemption_suspension_and_restart() -> None:
    a = admitted(None, generation=1, now=T0, admission=admission(2), team="t", gpus=2)
    assert holds_admission(a, job()) and not holds_admission(a, job(admission_id="other"))
    # A Job made in its place with the admission's id but another shape holds nothing.
    bigger = job_record(
        {
            "metadata": {"uid": "x", "annotations": {"cadre.dev/admission": "a1"}},
            "spec": {"parallelism": 8, "completions": 8},
        }
    )
    assert not holds_admission(a, bigger)
    # An earlier Cadre's admission names the Job's UID.
    by_uid = {**a, "admission": {"jobUID": "u", "team": "t", "flavor": "a100", "gpus": 2}}
    assert holds_admission(by_uid, job()) and not holds_admission(by_uid, job(uid="v"))
    p = preempted(a, generation=1, now=T1, reason="Preempted", message="m")
    s = suspended(a, generation=1, now=T1)
    failure = restart_for(a, failed_job(EXIT_3), retries=1)
    assert failure is not None
    r = restarting(a, generation=1, now=T1, failure=failure, retries=1, job_uid="u")
    for revoked in (p, s, r):
        assert "admission" not in revoked
        assert not holds_admission(revoked, job())
    # A status an earlier Cadre wrote (no admission record) keeps its gang running.
    legacy = {k: v for k, v in a.items() if k != "admission"}
    assert holds_admission(legacy, job())
    assert not holds_admission({**legacy, "phase": "Queued"}, job())


def failed_job(message: str, reason: str = "PodFailurePolicy", uid: str = "u") -> Any:
    return job(
        conditions=[{"type": "Failed", "status": "True", "reason": reason, "message": message}],
        uid=uid,
    )


EXIT_3 = (
    "Container worker for pod ns/j-0-abcde failed with exit code 3 matching FailJob rule at index 1"
)
DISRUPTED = "Pod ns/j-1-fghij has condition DisruptionTarget matching FailJob rule at index 0"


def test_failed_worker_restarts_the_gang_until_retries_are_used() -> None:
    a = admitted(None, generation=1, now=T0, admission=admission(2), team="t", gpus=2)
    failure = restart_for(a, failed_job(EXIT_3), retries=1)
    assert failure is not None
    assert (failure.reason, failure.charged) == ("WorkerFailed", True)
    r = restarting(a, generation=1, now=T1, failure=failure, retries=1, job_uid="u")
    assert r["phase"] == "Queued"
    assert r["restarts"] == 1
    assert r["restartedJobUID"] == "u"
    assert "admittedAt" not in r
    assert cond(r, "Admitted")["reason"] == "Restarting"
    assert "restart 1 of 1" in cond(r, "Admitted")["message"]
    # Half-way through (the failed Job not deleted yet), the same Job's restart goes on
    # and is not counted twice.
    again = restart_for(r, failed_job(EXIT_3), retries=1)
    assert again is not None
    assert restarting(r, generation=1, now=T1, failure=again, retries=1, job_uid="u") == r
    # The retry is used: the next Job's failure is final, with the worker's exit code.
    assert restart_for(r, failed_job(EXIT_3, uid="u2"), retries=1) is None
    f = from_job(r, failed_job(EXIT_3, uid="u2"), workers=2, generation=1, now=T1)
    assert f["phase"] == "Failed"
    assert "code 3" in cond(f, "Finished")["message"]
    assert "after 1 restart" in cond(f, "Finished")["message"]


def test_disruption_restarts_without_charging_and_deadline_never_restarts() -> None:
    a = admitted(None, generation=1, now=T0, admission=admission(2), team="t", gpus=2)
    failure = restart_for(a, failed_job(DISRUPTED), retries=0)
    assert failure is not None
    assert (failure.reason, failure.charged) == ("WorkerDisrupted", False)
    assert "restarts" not in a
    assert (
        restarting(a, generation=1, now=T1, failure=failure, retries=0, job_uid="u")["restarts"]
        == 0
    )
    assert restart_for(a, failed_job("", reason="DeadlineExceeded"), retries=5) is None
    assert restart_for(a, job(ready=1), retries=5) is None  # not failed


def test_transition_events() -> None:
    tj = {"metadata": {"name": "j", "namespace": "ns", "uid": "u1"}}
    a = admitted(None, generation=1, now=T0, admission=admission(2), team="t", gpus=2)
    event = transition_event(tj, None, a, T0)
    assert event is not None
    assert (event["reason"], event["type"], event["metadata"]["namespace"]) == (
        "Admitted",
        "Normal",
        "ns",
    )
    assert event["involvedObject"] == {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "name": "j",
        "namespace": "ns",
        "uid": "u1",
    }
    r = from_job(a, job(ready=2, active=2), workers=2, generation=1, now=T1)
    running = transition_event(tj, a, r, T1)
    assert running is not None
    assert (running["reason"], running["message"]) == ("Running", "all 2 worker(s) are running")
    assert transition_event(tj, r, dict(r), T1) is None
    q = queued(
        None,
        generation=1,
        now=T0,
        reason="QuotaExhausted",
        message="waiting",
        place=QueuePlace(3, None),
        team="t",
        gpus=2,
    )
    arrival = transition_event(tj, None, q, T0)
    assert arrival is not None and (arrival["reason"], arrival["message"]) == ("Queued", "waiting")
    moved = queued(
        q,
        generation=1,
        now=T1,
        reason="CapacityExhausted",
        message="full",
        place=QueuePlace(1, None),
        team="t",
        gpus=2,
    )
    assert transition_event(tj, q, moved, T1) is None  # a move within the queue
    failure = restart_for(r, failed_job(EXIT_3, uid="u2"), retries=2)
    assert failure is not None
    again = restarting(r, generation=1, now=T1, failure=failure, retries=2, job_uid="u2")
    event = transition_event(tj, r, again, T1)
    assert event is not None
    assert (event["reason"], event["type"]) == ("Restarting", "Warning")
    assert "code 3" in event["message"]
