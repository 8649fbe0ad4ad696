"""Why a workload waits: a reason code and the sentence a data scientist reads, from the
state of the pass (the phrases themselves are in explain.py)."""

from __future__ import annotations

from cadre.core.scheduling.explain import (
    capacity_phrase,
    format_amount,
    idle_phrase,
    need_phrase,
    usage_phrase,
)
from cadre.core.scheduling.quantities import RESOURCES, Amount, Resource, contribution
from cadre.core.scheduling.state import TeamQuota, WorkloadState
from cadre.core.scheduling.types import Reason

__all__ = ["never_fits", "waiting_reason"]


def never_fits(work: WorkloadState, quota: TeamQuota) -> tuple[Reason, str] | None:
    """Why the workload's gang can never fit: larger than the flavour's capacity, or than
    anything the team may use of it (nominal + all it could borrow); None if it can."""
    flavour = work.spec.flavour
    team = quota.team.name
    for resource, need, capacity, nominal, max_usable in zip(
        RESOURCES, work.gang, quota.flavour.capacity, quota.nominal, quota.max_usable, strict=True
    ):
        if need > capacity:
            return (
                Reason.EXCEEDS_CAPACITY,
                f"needs {need_phrase(resource, need, flavour)} but flavour {flavour} has only "
                f"{format_amount(resource, capacity)} on schedulable nodes",
            )
        if need > max_usable:
            if quota.pool.private:
                limit = f"{format_amount(resource, nominal)} nominal, no cohort"
            else:
                limit = (
                    f"{format_amount(resource, nominal)} nominal + "
                    f"{format_amount(resource, max_usable - nominal)} borrowable"
                )
            return (
                Reason.EXCEEDS_QUOTA,
                f"needs {need_phrase(resource, need, flavour)} but team {team} may use at most "
                f"{format_amount(resource, max_usable)} ({limit})",
            )
    return None


def waiting_reason(work: WorkloadState, request: Amount, replicas_left: int) -> tuple[Reason, str]:
    """Why `request` (the gang, or one more extra replica of `replicas_left` wanted) does not
    fit in the final state: the first rule it breaks, in the order the team's limit, the
    cohort's pool, the flavour's capacity; per rule GPUs first, then CPU, then memory."""
    quota = work.quota
    assert quota is not None
    flavour = quota.flavour
    pool = quota.pool
    team = quota.team.name

    def need(resource: Resource, amount: int) -> str:
        text = need_phrase(resource, amount, flavour.name)
        if replicas_left:
            text += f" for 1 more replica ({replicas_left} wanted)"
        return text

    for resource, amount, usage, nominal, limit in zip(
        RESOURCES, request, quota.usage, quota.nominal, quota.limit, strict=True
    ):
        if amount and usage + amount > limit:
            if pool.private:
                tail = "and has no cohort to borrow from"
            else:
                tail = f"and may borrow at most {format_amount(resource, limit - nominal)}"
            return (
                Reason.QUOTA_EXHAUSTED,
                f"waiting for {need(resource, amount)}: team {team} uses "
                f"{usage_phrase(resource, usage, nominal)} nominal {tail}",
            )
    for resource, amount, usage, nominal, lendable, available in zip(
        RESOURCES, request, quota.usage, quota.nominal, quota.lendable, pool.available, strict=True
    ):
        if not amount:
            continue
        contributed = contribution(lendable, nominal, usage)
        change = contribution(lendable, nominal, usage + amount) - contributed
        if change < 0 and available + change < 0:
            if usage + amount <= nominal:
                tail = f"the rest is lent to other teams of cohort {pool.cohort}"
            else:
                idle = max(0, available - max(0, contributed))  # lent by the other teams
                tail = f"cohort {pool.cohort} has {idle_phrase(resource, idle)} idle"
            return (
                Reason.QUOTA_EXHAUSTED,
                f"waiting for {need(resource, amount)}: team {team} uses "
                f"{usage_phrase(resource, usage, nominal)} nominal, {tail}",
            )
    for resource, amount, used, capacity in zip(
        RESOURCES, request, flavour.used, flavour.capacity, strict=True
    ):
        if amount and used + amount > capacity:
            free = max(0, capacity - used)
            return (
                Reason.CAPACITY_EXHAUSTED,
                f"waiting for {need(resource, amount)}: flavour {flavour.name} has "
                f"{capacity_phrase(resource, free, capacity)} free",
            )
    return (
        Reason.WAITING_FOR_NEXT_PASS,
        "fits now; resources were freed late in this pass, admission comes next pass",
    )
