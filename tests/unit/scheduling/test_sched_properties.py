"""The admission core's guarantees, as properties on random clusters, teams and workloads.

Each property runs at least 500 examples (`PROPERTY`); the checks are the reference rules
in scheduling_helpers, written independently of the engine.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scheduling_helpers import (
    admissible_alone,
    apply,
    budget_blocked,
    contradictions,
    fits_now,
    known,
    long_queues,
    node_violations,
    placeable,
    quota_of,
    snapshots,
    usage_of,
    violations,
)

from cadre.core.scheduling import (
    QueueingStrategy,
    Reason,
    Resources,
    Snapshot,
    WorkloadKind,
    schedule,
)
from cadre.core.scheduling.admission_pass import AdmissionPass
from cadre.core.scheduling.state import TeamState

# at least 500 examples each; CADRE_PROPERTY_EXAMPLES=5000 for a deeper hunt
EXAMPLES = max(500, int(os.environ.get("CADRE_PROPERTY_EXAMPLES", "500")))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Half the examples with nodes (the pass also places every unit), half with sums only.
clusters = st.one_of(snapshots(), snapshots(with_nodes=True))


@PROPERTY
@given(clusters)
def test_admitted_use_never_exceeds_capacity_quota_or_lending(snap: Snapshot) -> None:
    assert violations(snap) == []  # the generator starts from a valid state
    result = schedule(snap)
    after = apply(snap, result)
    assert violations(after) == [], result
    before = {w.key: w for w in snap.workloads}
    for a in result.admitted:
        assert admissible_alone(snap, before[a.key]), a
        assert a.borrowed.fits_in(a.usage), a
    # what admissions report as borrowed is what their team borrows after the pass
    borrowed = {(t.team, f.flavour): f.borrowed for t in result.teams for f in t.flavours}
    reported: dict[tuple[str, str], Resources] = {}
    for a in result.admitted:
        reported[(a.team, a.flavour)] = reported.get((a.team, a.flavour), Resources()) + a.borrowed
    for key, total in reported.items():
        assert total.fits_in(borrowed[key]), (key, total, borrowed[key])


@PROPERTY
@given(clusters)
def test_a_result_names_each_workload_once(snap: Snapshot) -> None:
    """Never a gang admitted twice, a workload stopped twice, or one both admitted and stopped
    (apply_result raises on those; a dict by key would hide them), in a pass and the next."""
    first = schedule(snap)
    assert contradictions(first) == [], first
    second = schedule(apply(snap, first))
    assert contradictions(second) == [], second


@PROPERTY
@given(clusters)
def test_gangs_are_whole(snap: Snapshot) -> None:
    result = schedule(snap)
    before = {w.key: w for w in snap.workloads}
    for a in result.admitted:
        w = before[a.key]
        assert a.total_extra_replicas <= w.extra_replicas
        if a.gang:  # all workers (or all min replicas) at once, then extras one by one
            assert not w.admitted
            assert a.total_extra_replicas == a.extra_replicas
            assert a.usage == w.per_pod * (w.pods + a.extra_replicas)
        else:
            assert w.admitted and a.extra_replicas >= 1
            assert a.total_extra_replicas == w.admitted_extra + a.extra_replicas
            assert a.usage == w.per_pod * a.extra_replicas
    # what the engine says each team holds is whole gangs of what is admitted
    use = usage_of(apply(snap, result))
    for tu in result.teams:
        for fu in tu.flavours:
            held = use.team.get((tu.team, fu.flavour), dict.fromkeys(("gpus", "cpu", "memory"), 0))
            assert fu.usage == Resources(held["gpus"], held["cpu"], held["memory"]), tu
    admitted_now = {a.key for a in result.admitted if a.gang}
    for p in result.pending:
        w = before[p.key]
        if not w.admitted and p.key not in admitted_now:
            assert p.replicas == w.pods


class _WithoutParking(AdmissionPass):
    """The pass as it was before teams parked: every unit popped in heap order."""

    def _smallest(self, team: TeamState, queued: list[set[tuple[int, int, int]]]) -> None:
        return None


# Long queues over few request kinds: teams park, and preemptions bring them back.
crowded = st.one_of(long_queues(), snapshots(gpus_only=True, with_nodes=True, max_workloads=60))


@PROPERTY
@given(st.one_of(clusters, crowded))
def test_parking_a_team_changes_no_decision(snap: Snapshot) -> None:
    assert schedule(snap) == _WithoutParking(snap).run()


def _shuffled(snap: Snapshot, rnd: random.Random) -> Snapshot:
    def sh(xs: tuple) -> tuple:  # type: ignore[type-arg]
        ys = list(xs)
        rnd.shuffle(ys)
        return tuple(ys)

    teams = tuple(replace(t, quotas=sh(t.quotas)) for t in snap.teams)
    nodes = None if snap.nodes is None else sh(snap.nodes)
    workloads = tuple(replace(w, bound=sh(w.bound)) for w in sh(snap.workloads))
    return Snapshot(sh(snap.flavours), sh(teams), workloads, nodes)


@PROPERTY
@given(clusters, st.randoms(use_true_random=False))
def test_deterministic_and_idempotent(snap: Snapshot, rnd: random.Random) -> None:
    first = schedule(snap)
    assert schedule(snap) == first
    assert schedule(_shuffled(snap, rnd)) == first  # input order does not matter
    after = apply(snap, first)
    second = schedule(after)
    assert violations(apply(after, second)) == []
    if not first.victims:  # nothing was freed: the decisions were final
        assert second.admitted == ()
        assert second.victims == ()
    # every workload is accounted for exactly once: admitted (maybe wanting more replicas),
    # a victim, or pending
    victims = {v.key for v in first.victims if not v.replicas}  # whole workloads
    pending = [p.key for p in first.pending]
    assert len(pending) == len(set(pending))
    before = {w.key: w for w in snap.workloads}
    for w in after.workloads:
        if w.key in victims:
            assert before[w.key].admitted and w.key not in pending
        elif w.admitted:
            assert (w.key in pending) == (w.admitted_extra < w.extra_replicas), w
        else:
            assert w.key in pending, w
    by_team: dict[str, list[int]] = {}
    for p in first.pending:
        by_team.setdefault(p.team, []).append(p.position)
    for positions in by_team.values():
        assert sorted(positions) == list(range(1, len(positions) + 1))


@PROPERTY
@given(
    snapshots(
        gpus_only=True,
        budgets=False,
        strangers=False,
        all_preemptible=True,
        nominal_fits_capacity=True,
    )
)
def test_team_within_nominal_gets_its_nominal_back(snap: Snapshot) -> None:
    """When every team's nominal fits the flavour at once and borrowers are preemptible, a
    workload that keeps its team within nominal is never left waiting."""
    result = schedule(snap)
    after = apply(snap, result)
    teams = {t.name: t for t in snap.teams}
    workloads = {w.key: w for w in after.workloads}
    use = usage_of(after)
    for p in result.pending:
        team = teams[p.team]
        w = workloads[p.key]
        fq = quota_of(team, w.flavour)
        if fq is None or p.reason in (Reason.EXCEEDS_QUOTA, Reason.EXCEEDS_CAPACITY):
            continue
        if team.queueing == QueueingStrategy.STRICT_FIFO and p.position != 1:
            continue
        nominal = fq.nominal.gpus or 0
        need = w.per_pod.gpus * (1 if w.admitted else w.pods)
        used = use.team.get((team.name, w.flavour), {}).get("gpus", 0)
        assert used + need > nominal, (
            f"{p.key} waits ({p.message}) though team {team.name} would use "
            f"{used + need}/{nominal} nominal"
        )


@PROPERTY
@given(clusters)
def test_no_fitting_workload_waits_under_best_effort_fifo(snap: Snapshot) -> None:
    result = schedule(snap)
    after = apply(snap, result)
    teams = {t.name: t for t in snap.teams}
    workloads = {w.key: w for w in after.workloads}
    for p in result.pending:
        team = teams.get(p.team)
        w = workloads[p.key]
        if team is None or not known(after, w) or budget_blocked(team):
            continue
        if team.queueing == QueueingStrategy.STRICT_FIFO:
            continue
        assert not fits_now(after, w), f"{p.key} fits but waits: {p.reason} {p.message}"
        assert p.reason in (
            Reason.QUOTA_EXHAUSTED,
            Reason.CAPACITY_EXHAUSTED,
            Reason.EXCEEDS_QUOTA,
            Reason.EXCEEDS_CAPACITY,
            Reason.NODES_FRAGMENTED,
        ), p
        if p.reason == Reason.NODES_FRAGMENTED:  # quota allows it: only the nodes do not
            assert after.nodes is not None
            assert not placeable(after, w.flavour, w.per_pod, 1 if w.admitted else w.pods), p


@PROPERTY
@given(snapshots(with_nodes=True))
def test_an_admitted_unit_has_a_placement_on_nodes_with_room(snap: Snapshot) -> None:
    """Every admission comes with a plan for its pods that are not bound: on schedulable
    nodes of its flavour, and, bound as planned, no node holds more than it has."""
    assert snap.nodes is not None
    result = schedule(snap)
    before = {w.key: w for w in snap.workloads}
    nodes = {n.name: n for n in snap.nodes}
    for a in result.admitted:
        w = before[a.key]
        planned = sum(pods for _, pods in a.placement)
        bound = sum(pods for _, pods in w.bound)
        if a.gang:
            assert planned == w.pods + a.extra_replicas, a
        else:
            assert planned + bound == w.pods + a.total_extra_replicas, (a, w)
        for name, pods in a.placement:
            assert pods > 0 and nodes[name].flavour == w.flavour and nodes[name].schedulable, a
    assert node_violations(apply(snap, result)) == []


@PROPERTY
@given(snapshots(with_nodes=True, all_preemptible=True, budgets=False))
def test_a_victim_is_taken_only_when_the_preemptor_then_fits(snap: Snapshot) -> None:
    """Preemption is placement-aware: whoever was preempted for, was admitted, with a plan,
    in the same pass."""
    result = schedule(snap)
    admitted = result.admitted_by_key()
    for v in result.victims:
        if v.preemptor is not None:
            assert v.preemptor in admitted, v
            assert admitted[v.preemptor].placement, admitted[v.preemptor]


@PROPERTY
@given(clusters)
def test_training_never_takes_a_protected_serving_floor(snap: Snapshot) -> None:
    """A ModelDeployment with `training_may_preempt=False` loses its min replicas only to
    a budget stop or to other serving, never to make room for a TrainingJob."""
    result = schedule(snap)
    before = {w.key: w for w in snap.workloads}
    for v in result.victims:
        w = before[v.key]
        if v.replicas == 0 and v.preemptor is not None and not w.training_may_preempt:
            assert before[v.preemptor].kind == WorkloadKind.MODEL_DEPLOYMENT, v


@PROPERTY
@given(clusters)
def test_a_budget_stop_keeps_serving_floors(snap: Snapshot) -> None:
    """Exceeded + Suspend stops training whole, and only the extra replicas of serving."""
    result = schedule(snap)
    before = {w.key: w for w in snap.workloads}
    for v in result.victims:
        if v.reason == Reason.BUDGET_EXCEEDED and before[v.key].kind == (
            WorkloadKind.MODEL_DEPLOYMENT
        ):
            assert v.replicas > 0 and v.extra_replicas_left == 0, v
