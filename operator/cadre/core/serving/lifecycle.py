"""ModelDeployment status. Pure: a status dict in, the next status dict out.

Conditions are the truth, `phase` their one-word summary for `kubectl get`:

| phase | Admitted | Ready | ModelLoaded | QuotaLimited |
| --- | --- | --- | --- | --- |
| Pending | | | | |
| Queued | False (why it waits) | | | |
| Loading | True | False (Loading) | Pending / Loading | |
| Ready | True | True | True (Loaded) | False |
| QuotaLimited | True | True | True | True (the numbers) |
| Degraded | True | False (below replicas.min after serving, or the model fails) | FailedToLoad | |
| Stopped | False (Stopped) | False (Stopped) | | |
| Queued (revoked) | False (Preempted, PodsReadyTimeout) | False (the same) | | |
| Failed | False (the spec cannot be served: InvalidSpec, UnknownFlavour...) | | | |

For Argo CD: Healthy = Ready or QuotaLimited (serving at least replicas.min),
Progressing = Pending, Queued, Loading, Degraded = Degraded or Failed, Suspended =
Stopped. `Progressing` (a condition) is True while a rolling update or a shift between
stable and canary runs.

Admission lives in the status, as for TrainingJobs: `admission` (the ModelDeployment's
UID, team, flavour, priority, the gang of replicas.min and the extra replicas) is written
by the admission loop before any replica runs, and lowered before replicas are stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cadre.core.accounting import PodUsage, Rates, cost, format_figures, usage_within
from cadre.core.api.modeldeployment import ModelDeploymentSpec
from cadre.core.objects import event_about, find_condition, timestamp, with_condition
from cadre.core.serving.canary import effective_percent, split_text
from cadre.core.serving.children import service_url
from cadre.core.serving.observed import ServingPod
from cadre.core.serving.plan import Observed, ReplicaPlan
from cadre.core.workloads.queue import QueuePlace, with_place
from cadre.core.workloads.scheduling import (
    PODS_READY_TIMEOUT,
    Backoff,
    next_requeue,
    requeue_in_status,
)

__all__ = [
    "ADMITTED",
    "MODEL_LOADED",
    "PROGRESSING",
    "QUOTA_LIMITED",
    "READY",
    "ServingFacts",
    "admission_of",
    "serving_admitted",
    "serving_event",
    "serving_failed",
    "serving_queued",
    "serving_revoked",
    "serving_status",
    "serving_timed_out",
    "serving_transition_events",
    "with_period_usage",
]

ADMITTED: Final = "Admitted"
READY: Final = "Ready"
MODEL_LOADED: Final = "ModelLoaded"
QUOTA_LIMITED: Final = "QuotaLimited"
PROGRESSING: Final = "Progressing"

Status = dict[str, Any]


def _base(status: Mapping[str, Any] | None, generation: int) -> Status:
    out = dict(status or {})
    out["observedGeneration"] = generation
    return out


def admission_of(status: Mapping[str, Any] | None, uid: str) -> dict[str, Any] | None:
    """The admission record of the status if it is this object's (its UID): users cannot
    write status, so it cannot be forged; a record of an earlier object of the same name
    is not this one's."""
    admission = (status or {}).get("admission")
    if isinstance(admission, Mapping) and admission.get("uid") == uid:
        return dict(admission)
    return None


def serving_queued(
    status: Mapping[str, Any] | None,
    *,
    generation: int,
    now: datetime,
    reason: str,
    message: str,
    place: QueuePlace | None,
    team: str | None,
) -> Status:
    """Its gang of replicas.min waits for quota (never written while it is admitted)."""
    out = _base(status, generation)
    out["phase"] = "Queued"
    # The place: exact near the head, a range behind (cadre.core.workloads.queue).
    out["queue"] = {**with_place(out.get("queue") or {}, place), "reason": message}
    if team is not None:
        out["team"] = team
    out["conditions"] = with_condition(
        out.get("conditions"), ADMITTED, "False", reason, message, generation, now
    )
    return out


def serving_admitted(
    status: Mapping[str, Any] | None,
    *,
    generation: int,
    now: datetime,
    admission: Mapping[str, Any],
    team: str | None,
) -> Status:
    """Admitted (the gang now, or more or fewer extra replicas): `admission` is the
    record that lets that many replicas run."""
    out = _base(status, generation)
    newly = out.get("admission") is None
    out.pop("queue", None)
    out["admission"] = dict(admission)
    if newly:
        out["admittedAt"] = timestamp(now)
        out["phase"] = "Loading"
    if team is not None:
        out["team"] = team
    total = int(admission.get("replicas") or 0) + int(admission.get("extraReplicas") or 0)
    message = f"{total} replica(s) admitted on {admission.get('flavor')}"
    out["conditions"] = with_condition(
        out.get("conditions"), ADMITTED, "True", "Admitted", message, generation, now
    )
    return out


def serving_revoked(
    status: Mapping[str, Any] | None,
    *,
    generation: int,
    now: datetime,
    reason: str,
    message: str,
) -> Status:
    """The whole admission is taken back (preempted, or stopped): it queues again (or
    stays Stopped), and its replicas are stopped after this write."""
    out = _base(status, generation)
    out.pop("admission", None)
    out.pop("admittedAt", None)
    out["phase"] = "Stopped" if reason == "Stopped" else "Queued"
    conditions = with_condition(
        out.get("conditions"), ADMITTED, "False", reason, message, generation, now
    )
    out["conditions"] = with_condition(conditions, READY, "False", reason, message, generation, now)
    return out


def serving_timed_out(
    status: Mapping[str, Any] | None,
    *,
    generation: int,
    now: datetime,
    message: str,
    backoff: Backoff,
) -> Status:
    """Its replicas.min were not all scheduled in time (admission.waitForPodsReady): the
    admission is taken back (the reconciler scales its replicas to 0) and it waits in the
    queue until `requeue.requeueAt`; past the backoff's limit it is not tried again until
    its spec changes (`requeue.generation`)."""
    out = _base(status, generation)
    count, at = next_requeue(out, now, backoff)
    out.pop("admission", None)
    out.pop("admittedAt", None)
    if at is not None:
        requeue_in_status(
            out,
            count=count,
            at=at,
            message=message,
            generation=generation,
            now=now,
            condition=READY,
        )
        return out
    message = (
        f"{message} (requeued {count - 1} time(s), the limit): not tried again until its "
        "spec changes"
    )
    out["phase"] = "Queued"
    out["requeue"] = {"count": count - 1, "generation": generation}
    out["queue"] = {"reason": message}
    conditions = with_condition(
        out.get("conditions"), ADMITTED, "False", PODS_READY_TIMEOUT, message, generation, now
    )
    out["conditions"] = with_condition(
        conditions, READY, "False", PODS_READY_TIMEOUT, message, generation, now
    )
    return out


def serving_failed(
    status: Mapping[str, Any] | None,
    *,
    generation: int,
    now: datetime,
    reason: str,
    message: str,
    team: str | None,
) -> Status:
    """The spec cannot be served as it is (what to fix is in the message)."""
    out = _base(status, generation)
    out["phase"] = "Failed"
    out.pop("queue", None)
    if team is not None:
        out["team"] = team
    out["conditions"] = with_condition(
        out.get("conditions"), ADMITTED, "False", reason, message, generation, now
    )
    return out


@dataclass(frozen=True, slots=True)
class ServingFacts:
    """What the reconciler observed of a ModelDeployment, for its status."""

    name: str
    namespace: str
    spec: ModelDeploymentSpec
    plan: ReplicaPlan
    observed: Observed
    pods: Sequence[ServingPod]
    wanted: int
    """Replicas that should serve (`serving_wish`)."""
    waiting: str | None = None
    """Why more replicas are not admitted (the admission pass's message), if they wait."""


def _model(pods: Sequence[ServingPod]) -> tuple[str, str | None]:
    live = [p for p in pods if not p.gone]
    failure = next((p for p in live if p.failure), None)
    if failure is not None:
        return "FailedToLoad", f"pod {failure.name}: {failure.failure}"
    if any(p.ready for p in live):
        return "Loaded", None
    if any(p.loading for p in live):
        return "Loading", None
    return "Pending", None


def _counts(admitted: int, desired: int, ready: int) -> dict[str, int]:
    return {"admitted": admitted, "desired": desired, "ready": ready}


def serving_status(
    status: Mapping[str, Any] | None, *, generation: int, now: datetime, facts: ServingFacts
) -> Status:
    """The status of an admitted (or stopped) ModelDeployment from what runs."""
    out = _base(status, generation)
    spec, plan, observed = facts.spec, facts.plan, facts.observed
    out["url"] = service_url(facts.name, facts.namespace, spec.runtime.port)
    stable_ready = observed.stable.ready if observed.stable is not None else 0
    canary_ready = observed.canary.ready if observed.canary is not None else 0
    ready = stable_ready + canary_ready
    out["replicas"] = _counts(plan.stable, plan.target[0], stable_ready)
    if spec.canary is not None or observed.canary is not None:
        canary: dict[str, Any] = {"replicas": _counts(plan.canary, plan.target[1], canary_ready)}
        percent = effective_percent(stable_ready, canary_ready)
        if percent is not None:
            canary["trafficPercent"] = percent
        canary["split"] = split_text(stable_ready, canary_ready)
        out["canary"] = canary
    else:
        out.pop("canary", None)
    out["ready"] = f"{ready}/{plan.serving}"
    state, failure = _model(facts.pods)
    model: dict[str, Any] = {"state": state}
    if failure is not None:
        model["message"] = failure[:4096]
    out["model"] = model
    conditions = out.get("conditions")
    loaded = "True" if state == "Loaded" else "False"
    conditions = with_condition(
        conditions,
        MODEL_LOADED,
        loaded,
        state,
        failure
        or {
            "Loaded": "a replica serves the model",
            "Loading": "the model is being downloaded or loaded",
            "Pending": "no replica has started yet",
        }.get(state, state),
        generation,
        now,
    )
    if spec.stopped:
        phase = "Stopped"
        message = "spec.stopped is true: no replica runs and the quota is released"
        conditions = with_condition(conditions, READY, "False", "Stopped", message, generation, now)
    elif out.get("admission") is None:
        # Its admission was taken back (preempted, or not scheduled in time): it waits in
        # the queue again while its replicas stop; the revocation's Ready condition stays.
        phase = "Queued"
    else:
        was_ready = (find_condition(out, READY) or {}).get("status") == "True"
        stuck = any(
            d is not None and d.progress_deadline_exceeded
            for d in (observed.stable, observed.canary)
        )
        if plan.serving > 0 and ready >= spec.replicas.min:
            phase = "Ready"
            conditions = with_condition(
                conditions,
                READY,
                "True",
                "Ready",
                f"{ready} of {plan.serving} replica(s) ready",
                generation,
                now,
            )
        else:
            degraded = state == "FailedToLoad" or stuck or was_ready
            phase = "Degraded" if degraded else "Loading"
            message = (
                f"{ready} of {plan.serving} replica(s) ready, replicas.min is "
                f"{spec.replicas.min}" + (f": {failure}" if failure else "")
            )
            conditions = with_condition(
                conditions,
                READY,
                "False",
                "ModelFailedToLoad" if state == "FailedToLoad" else phase,
                message,
                generation,
                now,
            )
    limited = not spec.stopped and facts.waiting is not None and facts.wanted > plan.serving
    if limited:
        message = f"{facts.wanted} replicas wanted, {plan.serving} admitted: {facts.waiting}"
        conditions = with_condition(
            conditions, QUOTA_LIMITED, "True", "QuotaLimited", message, generation, now
        )
        if phase == "Ready":
            phase = "QuotaLimited"
    elif find_condition(out, QUOTA_LIMITED) is not None:
        conditions = with_condition(
            conditions,
            QUOTA_LIMITED,
            "False",
            "WithinQuota",
            "every replica wanted is admitted",
            generation,
            now,
        )
    if plan.waiting_for_surge:
        progressing = (
            "True",
            "WaitingForQuota",
            "a rolling update or a canary change waits for quota for one more replica (the "
            "surge that keeps every replica serving meanwhile)",
        )
    elif plan.busy:
        progressing = ("True", "RollingOut", "moving replicas to the spec's layout")
    else:
        progressing = ("False", "Complete", "every replica runs the spec's layout")
    conditions = with_condition(conditions, PROGRESSING, *progressing, generation, now)
    out["conditions"] = conditions
    out["phase"] = phase
    if phase != "Queued":
        out.pop("queue", None)
    return out


_WARNING_PHASES: Final = frozenset({"Degraded", "Failed", "QuotaLimited"})


def serving_event(
    md: Mapping[str, Any], *, reason: str, message: str, now: datetime, type_: str = "Normal"
) -> dict[str, Any]:
    """The core/v1 Event about ModelDeployment `md`, in its namespace."""
    return event_about(
        _reference(md),
        namespace=str((md.get("metadata") or {}).get("namespace")),
        reason=reason,
        message=message,
        type_=type_,
        now=now,
    )


def _reference(md: Mapping[str, Any]) -> dict[str, Any]:
    metadata = md.get("metadata") or {}
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "uid": metadata.get("uid"),
    }


def serving_transition_events(
    md: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Events for a phase change, and one when QuotaLimited turns True (posted once: the
    condition's transition, not every write)."""
    events: list[dict[str, Any]] = []
    old_phase = (before or {}).get("phase")
    new_phase = (after or {}).get("phase")
    old_limited = (find_condition(before or {}, QUOTA_LIMITED) or {}).get("status")
    limited = find_condition(after or {}, QUOTA_LIMITED) or {}
    newly_limited = limited.get("status") == "True" and old_limited != "True"
    if new_phase is not None and new_phase != old_phase:
        about: Mapping[str, Any] | None = limited
        if new_phase != "QuotaLimited":
            about = find_condition(after or {}, READY) or find_condition(after or {}, ADMITTED)
        events.append(
            serving_event(
                md,
                reason=str(new_phase),
                message=str((about or {}).get("message") or new_phase),
                type_="Warning" if new_phase in _WARNING_PHASES else "Normal",
                now=now,
            )
        )
        if new_phase == "QuotaLimited":
            newly_limited = False  # said by the phase's Event
    if newly_limited:
        events.append(
            serving_event(
                md,
                reason="QuotaLimited",
                message=str(limited.get("message") or "QuotaLimited"),
                type_="Warning",
                now=now,
            )
        )
    return events


def with_period_usage(
    after: Status,
    usages: Sequence[PodUsage],
    rates: Rates,
    period: tuple[datetime, datetime],
    now: datetime,
) -> Status:
    """`after` with the GPU-hours and cost of the current budget period (from the pods'
    running intervals, exact decimals), when any pod ran."""
    if not usages and "cost" not in after:
        return after
    used = usage_within(tuple(usages), period[0], period[1], now)
    return {**after, **format_figures(used.gpu_hours, cost(used, rates))}
