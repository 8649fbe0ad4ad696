"""TrainingJob status transitions. Pure: a status dict in, the next status dict out.

Conditions are the truth, `phase` is their one-word summary for `kubectl get`:

| phase | Admitted | Running | Finished |
| --- | --- | --- | --- |
| Queued | False (why it waits: QuotaExhausted, NoBudget...) | | |
| Admitted | True (Admitted) | False (WaitingForWorkers, WorkersUnschedulable) | |
| Running | True | True (AllWorkersRunning) | |
| Succeeded | True | False (Finished) | True (Succeeded) |
| Failed | | False (Finished) | True (WorkerFailed, DeadlineExceeded, ...) |
| Preempted | False (Preempted; SpecChanged, InvalidSpec: for its own spec) | False (same) | |
| Suspended | False (Suspended) | False (Suspended) | |
| Queued, restarting | False (Restarting) | False (WorkerFailed...) | |

Admission lives in the status, never in the Job: `admission` names the Job Cadre creates
for it (by an id the Job carries as an annotation, and the shape it may have) with the
team, flavour, priority and GPUs it holds; it is written before the Job is created and
removed before the Job is deleted, and a Job found without it is deleted (condition
UnadmittedRun when it ran). Users cannot write status.

Every condition carries the generation it was computed from; `observedGeneration` at the
top says which spec the whole status describes. A failed gang with retries left is
restarted whole (`restarting`: a new Job, queued again, `restarts` counted unless the
failure was a disruption); without, it is Failed with the failing worker's reason.
`status_patch` gives the merge patch between two statuses (None when nothing changed), so
nothing is written twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cadre.core.accounting import PodUsage, Rates, format_figures, usage_and_cost
from cadre.core.objects import event_about, find_condition, timestamp, with_condition
from cadre.core.training.failure import parse_job_failure
from cadre.core.training.job import JobRecord
from cadre.core.workloads.queue import QueuePlace, with_place
from cadre.core.workloads.scheduling import (
    PODS_READY_TIMEOUT,
    Backoff,
    UnscheduledPod,
    next_requeue,
    requeue_delay,
    requeue_in_status,
    unscheduled_summary,
)

__all__ = [
    "ADMITTED",
    "FINISHED",
    "PODS_READY_TIMEOUT",
    "RUNNING",
    "UNADMITTED_RUN",
    "WORKERS_UNSCHEDULABLE",
    "GangFailure",
    "admitted",
    "from_job",
    "gang_failure",
    "holds_admission",
    "pending_admission",
    "preempted",
    "queued",
    "ran_without_admission",
    "requeue_delay",
    "restart_for",
    "restarting",
    "status_patch",
    "suspended",
    "timed_out",
    "transition_event",
    "unadmitted_run_event",
    "with_usage",
]

ADMITTED: Final = "Admitted"
RUNNING: Final = "Running"
FINISHED: Final = "Finished"
UNADMITTED_RUN: Final = "UnadmittedRun"
"""A condition: its Job was found running without Cadre's admission and stopped."""
TERMINAL: Final = ("Succeeded", "Failed")

Status = dict[str, Any]


def _base(status: Mapping[str, Any] | None, generation: int) -> Status:
    out = dict(status or {})
    out["observedGeneration"] = generation
    return out


def _workers(job: JobRecord) -> dict[str, int]:
    return {
        "active": job.active,
        "ready": job.ready or 0,
        "succeeded": job.succeeded,
        "failed": job.failed_pods,
    }


def queued(
    status: Mapping[str, Any] | None,
    *,
    generation: int,
    now: datetime,
    reason: str,
    message: str,
    place: QueuePlace | None,
    team: str | None,
    gpus: int | None,
) -> Status:
    """Waiting for admission. A preempted job keeps phase Preempted while it waits; the
    place is only changed when given (its writes are rate-limited by the caller)."""
    out = _base(status, generation)
    if out.get("phase") != "Preempted":
        out["phase"] = "Queued"
    out.pop("admission", None)  # (the caller never queues a job that is admitted)
    out.pop("admittedAt", None)
    # The place: exact near the head, a range behind (cadre.core.workloads.queue).
    out["queue"] = {**with_place(out.get("queue") or {}, place), "reason": message}
    if team is not None:
        out["team"] = team
    if gpus is not None:
        out["gpus"] = gpus
    if out["phase"] != "Preempted":  # a preempted job's condition keeps saying why
        out["conditions"] = with_condition(
            out.get("conditions"), ADMITTED, "False", reason, message, generation, now
        )
    return out


def admitted(
    status: Mapping[str, Any] | None,
    *,
    generation: int,
    now: datetime,
    admission: Mapping[str, Any],
    team: str | None,
    gpus: int | None,
    message: str = "the whole gang was admitted and its Job unsuspended",
) -> Status:
    """Admitted: `admission` (the Job's UID, team, flavour, priority and GPUs) is the
    record that lets that Job run (see `holds_admission`)."""
    out = _base(status, generation)
    out["phase"] = "Admitted"
    out.pop("queue", None)
    requeue = out.get("requeue")
    if requeue:  # the count stays (it is what the limit counts), the wait is over
        out["requeue"] = {"count": requeue.get("count", 0)}
    out["admission"] = dict(admission)
    out["admittedAt"] = timestamp(now)
    conditions = out.get("conditions") or []
    if find_condition(out, UNADMITTED_RUN) is not None:
        conditions = [c for c in conditions if c.get("type") != UNADMITTED_RUN]
    out["conditions"] = conditions
    if team is not None:
        out["team"] = team
    if gpus is not None:
        out["gpus"] = gpus
    conditions = with_condition(
        out.get("conditions"), ADMITTED, "True", "Admitted", message, generation, now
    )
    out["conditions"] = with_condition(
        conditions,
        RUNNING,
        "False",
        "WaitingForWorkers",
        "waiting for every worker to be running",
        generation,
        now,
    )
    return out


def preempted(
    status: Mapping[str, Any] | None, *, generation: int, now: datetime, reason: str, message: str
) -> Status:
    out = _base(status, generation)
    out["phase"] = "Preempted"
    out.pop("admission", None)
    out.pop("admittedAt", None)
    conditions = with_condition(
        out.get("conditions"), ADMITTED, "False", reason, message, generation, now
    )
    out["conditions"] = with_condition(
        conditions, RUNNING, "False", reason, message, generation, now
    )
    return out


def timed_out(
    status: Mapping[str, Any] | None,
    *,
    generation: int,
    now: datetime,
    message: str,
    backoff: Backoff,
) -> Status:
    """An admitted gang whose workers were not all running in time: its admission is
    revoked (the caller suspends its Job) and it waits in the queue again until
    `requeue.requeueAt`; past the backoff's limit it fails instead."""
    out = _base(status, generation)
    count, at = next_requeue(out, now, backoff)
    out.pop("admission", None)
    out.pop("admittedAt", None)
    if at is None:
        message = f"{message} (requeued {count - 1} time(s), the limit)"
        out["phase"] = "Failed"
        out["requeue"] = {"count": count - 1}
        out["completionTime"] = timestamp(now)
        conditions = with_condition(
            out.get("conditions"), RUNNING, "False", PODS_READY_TIMEOUT, message, generation, now
        )
        out["conditions"] = with_condition(
            conditions, FINISHED, "True", PODS_READY_TIMEOUT, message, generation, now
        )
        return out
    requeue_in_status(
        out, count=count, at=at, message=message, generation=generation, now=now, condition=RUNNING
    )
    return out


def suspended(status: Mapping[str, Any] | None, *, generation: int, now: datetime) -> Status:
    out = _base(status, generation)
    out["phase"] = "Suspended"
    out.pop("queue", None)
    out.pop("admission", None)
    out.pop("admittedAt", None)
    message = "spec.suspend is true: the workers are stopped and the quota is released"
    conditions = with_condition(
        out.get("conditions"), ADMITTED, "False", "Suspended", message, generation, now
    )
    if find_condition(out, RUNNING) is not None:
        conditions = with_condition(
            conditions, RUNNING, "False", "Suspended", message, generation, now
        )
    out["conditions"] = conditions
    return out


def holds_admission(status: Mapping[str, Any] | None, job: JobRecord) -> bool:
    """True when the status admits the Job `job`. Cadre creates a Job only once it is
    admitted: `admission.id` names it (the Job's annotation cadre.dev/admission) and
    `admission.jobDigest` says what it may hold, checked against the Job as observed, so
    a Job someone else made in its place holds nothing unless it is the very shape
    admitted. An admission of an earlier Cadre names the Job's UID (`jobUID`), or is a
    phase Admitted or Running with admittedAt; both count, so an upgrade does not stop
    running gangs. Users cannot write status, so none of these can be forged."""
    status = status or {}
    admission = status.get("admission")
    if isinstance(admission, Mapping):
        if admission.get("id"):
            digest = admission.get("jobDigest")
            return job.admission_id == admission["id"] and (
                digest is None or digest == job.placement
            )
        return bool(job.uid) and admission.get("jobUID") == job.uid
    return status.get("phase") in ("Admitted", "Running") and bool(status.get("admittedAt"))


def pending_admission(status: Mapping[str, Any] | None) -> str | None:
    """The id of the admission the status holds for a Job Cadre is to create (None:
    none, an earlier Cadre's, or the job finished): admitted, its Job may not exist yet."""
    status = status or {}
    admission = status.get("admission")
    if not isinstance(admission, Mapping) or status.get("phase") in TERMINAL:
        return None
    ident = admission.get("id")
    return str(ident) if ident else None


def ran_without_admission(
    status: Mapping[str, Any] | None, *, generation: int, now: datetime
) -> Status:
    """Its Job was found running without an admission (someone made or unsuspended it,
    not Cadre): Cadre stopped it. The condition stays until the job is admitted."""
    out = _base(status, generation)
    message = (
        "its Job ran without an admission (someone else made or unsuspended it, not "
        "Cadre): Cadre stopped it; the job waits in the queue like any other"
    )
    out["conditions"] = with_condition(
        out.get("conditions"),
        UNADMITTED_RUN,
        "True",
        "JobRanWithoutAdmission",
        message,
        generation,
        now,
    )
    return out


def unadmitted_run_event(tj: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The Warning Event on a TrainingJob whose Job ran without an admission."""
    return _event(
        tj,
        "UnadmittedRunSuspended",
        "its Job ran without Cadre's admission (someone else made or unsuspended it): "
        "stopped; the job waits in the queue like any other",
        "Warning",
        now,
    )


def _reference(tj: Mapping[str, Any]) -> dict[str, Any]:
    metadata = tj.get("metadata") or {}
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "uid": metadata.get("uid"),
    }


@dataclass(frozen=True, slots=True)
class GangFailure:
    """Why a gang's Job failed, and whether a restart of the gang is charged."""

    reason: str
    message: str
    retryable: bool
    """False for a deadline: maxRuntime is over, a restart would not help."""
    charged: bool
    """False for a disruption (eviction, preemption of the node): not the job's fault."""


def gang_failure(job: JobRecord) -> GangFailure:
    failure = parse_job_failure(job.failed_condition or {})
    if failure.kind == "ExitCode":
        message = f"worker pod {failure.pod} exited with code {failure.exit_code}"
        return GangFailure("WorkerFailed", message, True, True)
    if failure.kind == "Disruption":
        message = f"worker pod {failure.pod} was disrupted (evicted or preempted)"
        return GangFailure("WorkerDisrupted", message, True, False)
    if failure.kind == "DeadlineExceeded":
        return GangFailure(
            "DeadlineExceeded", "the job ran longer than spec.maxRuntime", False, True
        )
    message = failure.message or failure.reason or "the Job failed"
    return GangFailure("JobFailed", message, True, True)


def restart_for(
    status: Mapping[str, Any] | None, job: JobRecord, retries: int
) -> GangFailure | None:
    """The failure to restart the gang for, or None (not failed, or Failed for good). A
    failed Job whose restart is recorded already (`restartedJobUID`) is restarted without
    counting it again: the operator stopped, or a write failed, half-way through."""
    if not job.failed or (status or {}).get("phase") in TERMINAL:
        return None
    failure = gang_failure(job)
    if (status or {}).get("restartedJobUID") == job.uid:
        return failure
    restarts = int((status or {}).get("restarts") or 0)
    if not failure.retryable or (failure.charged and restarts >= retries):
        return None
    return failure


def restarting(
    status: Mapping[str, Any] | None,
    *,
    generation: int,
    now: datetime,
    failure: GangFailure,
    retries: int,
    job_uid: str,
) -> Status:
    """The gang's Job `job_uid` failed and the gang is restarted: a new Job, queued for
    admission again. The restart is counted once per failed Job (recorded by its UID)."""
    out = _base(status, generation)
    counted = out.get("restartedJobUID") == job_uid
    restarts = int(out.get("restarts") or 0) + (1 if failure.charged and not counted else 0)
    out["restarts"] = restarts
    out["restartedJobUID"] = job_uid
    out["phase"] = "Queued"
    out.pop("admission", None)  # it was the failed Job's
    out.pop("admittedAt", None)
    out.pop("queue", None)
    if failure.charged:
        message = f"{failure.message}: restarting the whole gang (restart {restarts} of {retries})"
    else:
        message = f"{failure.message}: restarting the whole gang (not counted as a retry)"
    conditions = with_condition(
        out.get("conditions"), ADMITTED, "False", "Restarting", message, generation, now
    )
    out["conditions"] = with_condition(
        conditions, RUNNING, "False", failure.reason, message, generation, now
    )
    return out


def from_job(
    status: Mapping[str, Any] | None,
    job: JobRecord,
    *,
    workers: int,
    generation: int,
    now: datetime,
    refresh_workers: bool = False,
    unscheduled: Sequence[UnscheduledPod] = (),
) -> Status:
    """The status the Job's state implies: Running once every worker runs (ready, or
    active when the Job reports no ready count), Succeeded or Failed when it finishes.
    Worker counts go with every transition; `refresh_workers` also brings them up to
    date without one (the caller bounds how often: see the reconciler). Only a Job the
    status admits (`holds_admission`) is ever reported running. While an admitted gang
    waits for workers the scheduler cannot place (`unscheduled`), its Running condition
    says which and why (reason WorkersUnschedulable, the scheduler's message)."""
    out = _base(status, generation)
    phase = out.get("phase")
    if phase in TERMINAL:
        return dict(status or {})
    if job.complete:
        out["phase"] = "Succeeded"
        out["workers"] = _workers(job)
        out["completionTime"] = job.completion_time or timestamp(now)
        message = f"all {workers} worker(s) succeeded"
        conditions = with_condition(
            out.get("conditions"), RUNNING, "False", "Finished", message, generation, now
        )
        out["conditions"] = with_condition(
            conditions, FINISHED, "True", "Succeeded", message, generation, now
        )
        return out
    if job.failed:
        failure = gang_failure(job)
        reason, message = failure.reason, failure.message
        restarts = int(out.get("restarts") or 0)
        if restarts:
            message += f" (after {restarts} restart{'s' if restarts > 1 else ''} of the gang)"
        out["phase"] = "Failed"
        out["workers"] = _workers(job)
        out["completionTime"] = timestamp(now)
        conditions = with_condition(
            out.get("conditions"), RUNNING, "False", "Finished", message, generation, now
        )
        out["conditions"] = with_condition(
            conditions, FINISHED, "True", reason, message, generation, now
        )
        return out
    if not job.running or not holds_admission(status, job):
        # A Job that runs without Cadre's admission is never called Admitted: the
        # admission loop suspends it again (`ran_without_admission`).
        return dict(status or {})
    all_running = (job.ready if job.ready is not None else job.active) >= workers
    if phase == "Admitted" and not all_running:
        waiting = _waiting_for_workers(out, workers, unscheduled, generation, now)
        if waiting is not None:
            return waiting
    if all_running and phase != "Running":
        out["phase"] = "Running"
        out["workers"] = _workers(job)
        out.setdefault("startTime", timestamp(now))
        out.pop("queue", None)
        out["conditions"] = with_condition(
            out.get("conditions"),
            RUNNING,
            "True",
            "AllWorkersRunning",
            f"all {workers} worker(s) are running",
            generation,
            now,
        )
        return out
    if refresh_workers and phase in ("Admitted", "Running"):
        counts = _workers(job)
        if out.get("workers") != counts:
            out["workers"] = counts
            return out
    return dict(status or {})


WORKERS_UNSCHEDULABLE: Final = "WorkersUnschedulable"
_WAITING_FOR_WORKERS: Final = ("WaitingForWorkers", "waiting for every worker to be running")


def _waiting_for_workers(
    out: Status,
    workers: int,
    unscheduled: Sequence[UnscheduledPod],
    generation: int,
    now: datetime,
) -> Status | None:
    """An admitted gang's Running condition while it waits for workers: why (the
    scheduler's message) when some cannot be placed, also as `queue.reason` (the REASON
    column of `kubectl get tj -o wide`); None when it already says so."""
    summary = unscheduled_summary(workers, unscheduled)
    queue: dict[str, Any] | None
    if summary is not None:
        reason, message = WORKERS_UNSCHEDULABLE, summary
        queue = {"reason": message}
    else:
        (reason, message), queue = _WAITING_FOR_WORKERS, None
    current = find_condition(out, RUNNING) or {}
    if (current.get("reason"), current.get("message"), out.get("queue")) == (
        reason,
        message,
        queue,
    ):
        return None
    if queue is None:
        out.pop("queue", None)
    else:
        out["queue"] = queue
    out["conditions"] = with_condition(
        out.get("conditions"), RUNNING, "False", reason, message, generation, now
    )
    return out


def with_usage(
    before: Mapping[str, Any] | None,
    after: Status,
    usages: tuple[PodUsage, ...],
    rates: Rates,
    now: datetime,
) -> Status:
    """`after` with gpuHours and cost from the pods' running intervals, refreshed only
    when the phase changes (bounded writes: they ride on a write that happens anyway),
    and frozen once the job has finished. A job that never ran pods gets none."""
    old_phase = (before or {}).get("phase")
    new_phase = after.get("phase")
    if new_phase == old_phase or old_phase in TERMINAL:
        return after
    if not usages and "gpuHours" not in after:
        return after
    gpu_hours, amount = usage_and_cost(usages, rates, now)
    return {**after, **format_figures(gpu_hours, amount)}


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON merge patch (RFC 7386) from `old` to `new`, or None when they are equal:
    objects are patched key by key (a key gone is sent as null, or the server would keep
    it), anything else (lists included) is replaced whole."""
    old = old or {}
    patch: dict[str, Any] = {}
    for key in set(old) | set(new):
        if key not in new:
            patch[key] = None
            continue
        before, after = old.get(key), new[key]
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            inner = status_patch(before, after)
            if inner is not None:
                patch[key] = inner
        elif before != after:
            patch[key] = after
    return patch or None


# Every phase's arrival is announced with a Kubernetes Event of this type, so that
# `kubectl describe tj` tells the story. Queued only on arrival (a reason or position
# change within the queue is no transition): 10,000 queued jobs post one Event each.
_ANNOUNCED: Final = {
    "Queued": "Normal",
    "Admitted": "Normal",
    "Running": "Normal",
    "Succeeded": "Normal",
    "Failed": "Warning",
    "Preempted": "Warning",
    "Suspended": "Normal",
}
SPEC_CHANGED: Final = "SpecChanged"
"""The reason of an admitted job stopped because its spec no longer asks for what its
admission holds (`cadre.core.cluster.snapshot`)."""
_STOPPED_FOR_ITS_SPEC: Final = frozenset({SPEC_CHANGED, "InvalidSpec"})
"""Reasons of an admitted job stopped because of its own spec (the admission loop's
`invalid_running`): its Event is named for the reason, not Preempted."""
_EVENT_CONDITION: Final = {
    "Queued": ADMITTED,
    "Admitted": ADMITTED,
    "Running": RUNNING,
    "Succeeded": FINISHED,
    "Failed": FINISHED,
    "Preempted": ADMITTED,
    "Suspended": ADMITTED,
}


def _unschedulable_event(
    tj: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any] | None:
    """A Warning when an admitted gang's workers become unschedulable (once per cause: a
    new scheduler message is a new Event)."""
    old = find_condition(before or {}, RUNNING) or {}
    new = find_condition(after or {}, RUNNING) or {}
    if new.get("reason") != WORKERS_UNSCHEDULABLE or old.get("message") == new.get("message"):
        return None
    return _event(tj, WORKERS_UNSCHEDULABLE, str(new.get("message")), "Warning", now)


def transition_event(
    tj: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any] | None:
    """The core/v1 Event announcing a phase change of TrainingJob `tj` (None: no change,
    or a phase not announced). A restart (back to Queued with reason Restarting) is one."""
    old_phase = (before or {}).get("phase")
    new_phase = (after or {}).get("phase")
    if old_phase == new_phase == "Admitted":
        return _unschedulable_event(tj, before, after, now)
    admitted_condition = find_condition(after or {}, ADMITTED) or {}
    restarting = new_phase == "Queued" and admitted_condition.get("reason") == "Restarting"
    if new_phase is None or (new_phase not in _ANNOUNCED and not restarting):
        return None
    condition = (
        admitted_condition
        if restarting
        else find_condition(after or {}, _EVENT_CONDITION[new_phase])
    ) or {}
    if old_phase == new_phase and not (
        restarting and (before or {}).get("restarts") != (after or {}).get("restarts")
    ):
        return None
    # A gang sent back for want of running workers: a Warning naming why. One stopped for
    # its own spec (not preempted by another job's admission): the Warning says so too.
    requeued = new_phase in ("Queued", "Failed") and condition.get("reason") == PODS_READY_TIMEOUT
    if restarting:
        reason = "Restarting"
    elif requeued:
        reason = PODS_READY_TIMEOUT
    elif new_phase == "Preempted" and condition.get("reason") in _STOPPED_FOR_ITS_SPEC:
        reason = str(condition["reason"])
    else:
        reason = str(new_phase)
    return _event(
        tj,
        reason,
        str(condition.get("message") or new_phase),
        "Warning" if restarting or requeued else _ANNOUNCED[str(new_phase)],
        now,
    )


def _event(
    tj: Mapping[str, Any], reason: str, message: str, type_: str, now: datetime
) -> dict[str, Any]:
    """The core/v1 Event about TrainingJob `tj`, in its namespace."""
    return event_about(
        _reference(tj),
        namespace=str((tj.get("metadata") or {}).get("namespace")),
        reason=reason,
        message=message,
        type_=type_,
        now=now,
    )
