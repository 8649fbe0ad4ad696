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
from cadre.core.scheduling.placement import NodePool
from cadre.core.scheduling.quantities import RESOURCES, Amount, Resource, contribution
from cadre.core.scheduling.state import TeamQuota, WorkloadState
from cadre.core.scheduling.types import Reason, WorkloadKind

__all__ = ["never_fits", "never_placed", "waiting_reason"]


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


def _pods_phrase(work: WorkloadState, count: int) -> str:
    """ "its 3 workers (8 a100 GPUs each)", "1 more replica (2 a100 GPUs)"."""
    gpus, cpu, memory = work.per_pod
    flavour = work.spec.flavour
    if gpus:
        size = need_phrase(Resource.GPUS, gpus, flavour)
    elif cpu:
        size = need_phrase(Resource.CPU, cpu, flavour)
    else:
        size = need_phrase(Resource.MEMORY, memory, flavour)
    if work.spec.kind == WorkloadKind.MODEL_DEPLOYMENT:
        noun = "replica" if count == 1 else "replicas"
    else:
        noun = "worker" if count == 1 else "workers"
    each = " each" if count > 1 else ""
    return f"{count} {noun} ({size}{each})"


def never_placed(work: WorkloadState, nodes: NodePool) -> tuple[Reason, str] | None:
    """Why the gang fits on no nodes of its flavour even with nothing else on them (a pod
    larger than any schedulable node, or more pods than they could hold); None if it can."""
    most = nodes.most_on_empty(work.per_pod)
    if most >= work.pods:
        return None
    flavour = work.spec.flavour
    schedulable = sum(nodes.open)
    if most == 0:
        where = f"no schedulable {flavour} node is that large ({schedulable} schedulable)"
    else:
        where = (
            f"the {schedulable} schedulable {flavour} nodes could hold only {most} of them "
            "even with nothing else on them"
        )
    return (Reason.EXCEEDS_CAPACITY, f"needs {_pods_phrase(work, work.pods)}, but {where}")


def _fragmented(work: WorkloadState, nodes: NodePool, count: int) -> str:
    free, most = nodes.free_total()
    placeable = nodes.room(work.per_pod, count - 1)
    gpus = work.per_pod[0]
    in_all = (
        f"{free[0]} {work.spec.flavour} GPUs are free in all, at most {most} on one node"
        if gpus
        else f"flavour {work.spec.flavour} has room in all, spread over its nodes"
    )
    return (
        f"waiting for room on nodes: {_pods_phrase(work, count)} must start together, but "
        f"only {placeable} would fit on the nodes as they are; {in_all} (the rest is "
        "spread over nodes or taken by other pods)"
    )


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
    nodes = flavour.nodes
    # with nodes, pods of other owners on them count too: what the nodes have free
    node_free = nodes.free_total()[0] if nodes is not None else None
    for position, (resource, amount, used, capacity) in enumerate(
        zip(RESOURCES, request, flavour.used, flavour.capacity, strict=True)
    ):
        free = max(0, capacity - used)
        if node_free is not None:
            free = min(free, node_free[position])
        if amount and amount > free:
            return (
                Reason.CAPACITY_EXHAUSTED,
                f"waiting for {need(resource, amount)}: flavour {flavour.name} has "
                f"{capacity_phrase(resource, free, capacity)} free",
            )
    count = 1 if replicas_left else work.pods
    if nodes is not None and not nodes.fits_with(work.per_pod, count, {}):
        return (Reason.NODES_FRAGMENTED, _fragmented(work, nodes, count))
    return (
        Reason.WAITING_FOR_NEXT_PASS,
        "fits now; resources were freed late in this pass, admission comes next pass",
    )
