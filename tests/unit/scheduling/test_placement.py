"""Admission that knows the nodes: a gang is admitted only with a placement of all its pods,
preemption chooses victims whose nodes make it fit, and the reasons say so."""

from __future__ import annotations

from dataclasses import replace

from scheduling_helpers import apply, node_violations

from cadre.core.scheduling import (
    Flavour,
    FlavourQuota,
    Limits,
    NodeCapacity,
    PassResult,
    Reason,
    Resources,
    Snapshot,
    Team,
    Workload,
    WorkloadKind,
    schedule,
)
from cadre.core.scheduling.placement import NodePool

GI = 1 << 30


def node(name: str, gpus: int = 8, used: int = 0, *, schedulable: bool = True) -> NodeCapacity:
    return NodeCapacity(
        name, "a100", Resources(gpus, 64_000, 512 * GI), Resources(used, 0, 0), schedulable
    )


def team(name: str = "vision", nominal: int = 64, cohort: str | None = None) -> Team:
    return Team(name, (FlavourQuota("a100", Limits(gpus=nominal)),), cohort)


def gang(
    key: str,
    gpus: int,
    pods: int = 1,
    *,
    team: str = "vision",
    prio: int = 0,
    admitted: bool = False,
    bound: tuple[tuple[str, int], ...] = (),
    created: float = 0.0,
) -> Workload:
    return Workload(
        key,
        team,
        "a100",
        Resources(gpus, 1000, GI),
        pods=pods,
        priority=prio,
        created=created,
        admitted=admitted,
        admitted_at=0.0 if admitted else None,
        bound=bound,
    )


def run(
    nodes: list[NodeCapacity], workloads: list[Workload], teams: list[Team] | None = None
) -> tuple[Snapshot, PassResult]:
    capacity = Resources(
        sum(n.allocatable.gpus for n in nodes if n.schedulable),
        sum(n.allocatable.cpu for n in nodes if n.schedulable),
        sum(n.allocatable.memory for n in nodes if n.schedulable),
    )
    snap = Snapshot(
        (Flavour("a100", capacity),), tuple(teams or [team()]), tuple(workloads), tuple(nodes)
    )
    return snap, schedule(snap)


def the_issue_scenario() -> tuple[list[NodeCapacity], list[Workload]]:
    """Four 1-worker jobs of 2 GPUs spread over two of four 8-GPU nodes, then `big`."""
    nodes = [node(f"n{i}") for i in range(4)]
    small = [gang(f"ns/small-{i}", 2, admitted=True, bound=((f"n{i % 2}", 1),)) for i in range(4)]
    nodes[0] = replace(nodes[0], used=Resources(4, 2000, 2 * GI))
    nodes[1] = replace(nodes[1], used=Resources(4, 2000, 2 * GI))
    return nodes, [*small, gang("ns/big", 8, pods=3)]


def test_a_gang_that_fits_in_sum_but_not_on_the_nodes_waits_naming_fragmentation() -> None:
    nodes, workloads = the_issue_scenario()
    _, result = run(nodes, workloads)
    assert result.admitted == ()
    waiting = result.pending_by_key()["ns/big"]
    assert waiting.reason == Reason.NODES_FRAGMENTED
    assert waiting.message == (
        "waiting for room on nodes: 3 workers (8 a100 GPUs each) must start together, but "
        "only 2 would fit on the nodes as they are; 24 a100 GPUs are free in all, at most 8 "
        "on one node (the rest is spread over nodes or taken by other pods)"
    )


def test_without_nodes_the_same_gang_is_admitted_on_the_sum() -> None:
    nodes, workloads = the_issue_scenario()
    snap, _ = run(nodes, workloads)
    result = schedule(replace(snap, nodes=None))
    assert [a.key for a in result.admitted] == ["ns/big"]
    assert result.admitted[0].placement == ()


def test_once_the_small_jobs_finish_the_gang_is_admitted_with_a_placement() -> None:
    nodes, _ = the_issue_scenario()
    free = [replace(n, used=Resources()) for n in nodes]
    _, result = run(free, [gang("ns/big", 8, pods=3)])
    (admission,) = result.admitted
    assert sum(pods for _, pods in admission.placement) == 3
    assert all(pods == 1 for _, pods in admission.placement)


def test_pods_of_other_owners_on_a_node_count() -> None:
    # 16 GPUs on two nodes in sum, but a foreign pod holds 6 of one of them
    _, result = run([node("n0"), node("n1", used=6)], [gang("ns/pair", 4, pods=2)])
    (admission,) = result.admitted
    assert admission.placement == (("n0", 2),)  # best fit: both workers on one node


def test_best_fit_keeps_whole_nodes_for_large_gangs() -> None:
    # a 2-GPU job goes to the fuller node, so the empty one stays whole for the 8-GPU worker
    nodes = [node("n0"), node("n1", used=4)]
    _, result = run(nodes, [gang("ns/a-small", 2, created=0), gang("ns/b-large", 8, created=1)])
    placements = {a.key: a.placement for a in result.admitted}
    assert placements == {"ns/a-small": (("n1", 1),), "ns/b-large": (("n0", 1),)}


def test_a_cordoned_node_takes_no_new_pod_but_its_pods_still_count() -> None:
    nodes = [node("n0", schedulable=False), node("n1", used=4)]
    _, result = run(nodes, [gang("ns/one", 8)])
    assert result.admitted == ()
    waiting = result.pending_by_key()["ns/one"]
    assert waiting.reason == Reason.CAPACITY_EXHAUSTED
    assert waiting.message == "waiting for 8 a100 GPUs: flavour a100 has 4 of 8 GPUs free"


def test_a_worker_larger_than_any_node_can_never_be_placed() -> None:
    _, result = run([node("n0"), node("n1")], [gang("ns/huge", 16)])
    waiting = result.pending_by_key()["ns/huge"]
    assert waiting.reason == Reason.EXCEEDS_CAPACITY
    assert waiting.message == (
        "needs 1 worker (16 a100 GPUs), but no schedulable a100 node is that large (2 schedulable)"
    )


def test_more_workers_than_the_nodes_could_ever_hold() -> None:
    nodes = [node("n0"), node("n1"), node("n2", schedulable=False)]
    _, result = run(nodes, [gang("ns/many", 5, pods=3)], [team(nominal=64)])
    waiting = result.pending_by_key()["ns/many"]
    assert waiting.reason == Reason.EXCEEDS_CAPACITY
    assert "could hold only 2 of them even with nothing else on them" in waiting.message


def test_admitted_pods_not_bound_yet_are_placed_first_and_hold_their_nodes() -> None:
    # `early` is admitted, its 2 workers of 8 are not bound yet: they take both nodes, so
    # `late` (1 x 8) waits though quota allows it
    nodes = [node("n0"), node("n1")]
    workloads = [gang("ns/early", 8, pods=2, admitted=True), gang("ns/late", 8, created=1)]
    _, result = run(nodes, workloads)
    assert result.admitted == ()
    assert result.pending_by_key()["ns/late"].reason == Reason.CAPACITY_EXHAUSTED


def test_an_admitted_gang_with_some_workers_bound_reserves_only_the_rest() -> None:
    nodes = [node("n0", used=8), node("n1"), node("n2")]
    workloads = [
        gang("ns/early", 8, pods=2, admitted=True, bound=(("n0", 1),)),
        gang("ns/late", 8, created=1),
    ]
    _, result = run(nodes, workloads)
    assert [a.key for a in result.admitted] == ["ns/late"]


def test_preemption_takes_the_victim_whose_node_makes_the_gang_fit() -> None:
    # two low-priority 4-GPU jobs, one on each node; a high-priority 8-GPU worker needs a
    # whole node: one victim suffices, and its node is where the worker is planned
    nodes = [node("n0", used=4), node("n1", used=4)]
    workloads = [
        gang("ns/low-a", 4, admitted=True, bound=(("n0", 1),)),
        gang("ns/low-b", 4, admitted=True, bound=(("n1", 1),)),
        gang("ns/high", 8, prio=10),
    ]
    snap, result = run(nodes, workloads, [team(nominal=16)])
    assert [v.key for v in result.victims] == ["ns/low-b"]  # most recently admitted: key
    (admission,) = result.admitted
    assert admission.placement == (("n1", 1),)
    # the victim's own pod then fits beside low-a: it comes back in the next pass
    again = schedule(apply(snap, result))
    assert [(a.key, a.placement) for a in again.admitted] == [("ns/low-b", (("n0", 1),))]


def test_no_victim_when_evicting_does_not_make_room_on_the_nodes() -> None:
    # the low-priority job's node is also half taken by a foreign pod: evicting it leaves
    # 4 + 4 free on two nodes, never 8 on one
    nodes = [node("n0", used=8), node("n1", used=4)]
    workloads = [
        gang("ns/low", 4, admitted=True, bound=(("n0", 1),)),
        gang("ns/high", 8, prio=10),
    ]
    _, result = run(nodes, workloads, [team(nominal=16)])
    assert result.victims == ()
    assert result.pending_by_key()["ns/high"].reason == Reason.CAPACITY_EXHAUSTED


def test_victims_on_nodes_that_do_not_help_are_given_back() -> None:
    # preemption order would take `newest` first (on n1), but only n0's job frees a node
    # that, with n0's free half, holds the 8-GPU worker
    nodes = [node("n0", used=4), node("n1", used=8)]
    workloads = [
        replace(gang("ns/older", 4, admitted=True, bound=(("n0", 1),)), admitted_at=1.0),
        replace(gang("ns/newest", 4, admitted=True, bound=(("n1", 1),)), admitted_at=2.0),
        gang("ns/high", 8, prio=10),
    ]
    foreign = replace(nodes[1], used=Resources(8, 0, 0))  # n1: a foreign pod holds 4 more
    _, result = run([nodes[0], foreign], workloads, [team(nominal=16)])
    assert [v.key for v in result.victims] == ["ns/older"]
    assert result.admitted[0].placement == (("n0", 1),)


def test_extra_replicas_of_a_model_deployment_are_placed_one_by_one() -> None:
    serving = Workload(
        "md:ns/llm",
        "vision",
        "a100",
        Resources(4, 1000, GI),
        pods=2,
        kind=WorkloadKind.MODEL_DEPLOYMENT,
        extra_replicas=3,
    )
    _, result = run([node("n0"), node("n1", used=4)], [serving])
    (admission,) = result.admitted
    # min 2 replicas plus 1 extra fit (4 + 4 on n0, 4 on n1); the last 2 extras do not
    assert admission.total_extra_replicas == 1
    assert sum(pods for _, pods in admission.placement) == 3
    waiting = result.pending_by_key()["md:ns/llm"]
    assert waiting.reason == Reason.CAPACITY_EXHAUSTED
    assert waiting.replicas == 2


def test_the_pool_plans_best_fit_and_remembers_what_failed() -> None:
    pool = NodePool([node("a"), node("b", used=6), node("c", used=2)])
    assert pool.plan((2, 0, 0), 1) == [(1, 1)]  # b has the fewest free GPUs that fit
    assert pool.plan((8, 0, 0), 2) is None
    assert pool.failed == [((8, 0, 0), 2)]
    assert pool.plan((8, 0, 0), 3) is None  # larger: fails fast
    plan = pool.plan((6, 0, 0), 1)
    assert plan == [(2, 1)]
    pool.take((6, 0, 0), plan)
    pool.give_back((6, 0, 0), plan)
    assert pool.release_epoch == 1  # something given back: what failed may fit now
    assert pool.fits_with((8, 0, 0), 2, {1: [6, 0, 0]})  # b freed: a and b hold 8 each


def test_victims_of_an_admission_taken_back_in_the_same_pass_keep_running() -> None:
    # `high` preempts its own team's `low` and borrows speech's quota; `mine` (speech,
    # within its nominal) then reclaims it in the same pass. `low` was stopped for nothing:
    # it fits beside `mine`, so it keeps running (found by the property test).
    nodes = [node("n0", used=1), node("n1")]
    workloads = [
        gang("nlp/low", 1, team="nlp", admitted=True, bound=(("n0", 1),)),
        gang("nlp/high", 5, pods=2, team="nlp", prio=1),
        gang("speech/mine", 1, team="speech"),
    ]
    teams = [team("nlp", 0, "research"), team("speech", 10, "research")]
    snap, result = run(nodes, workloads, teams)
    assert [a.key for a in result.admitted] == ["speech/mine"]
    assert result.victims == ()
    assert result.pending_by_key()["nlp/high"].reason == Reason.QUOTA_EXHAUSTED
    assert apply(snap, result).workloads[0].admitted


def test_a_victim_whose_room_went_to_the_reclaimer_is_the_reclaimers() -> None:
    # the same, but `mine` needs the whole cohort: `low` cannot come back, and its message
    # names who has its room now
    nodes = [node("n0", gpus=2, used=2)]
    workloads = [
        gang("nlp/low", 2, team="nlp", admitted=True, bound=(("n0", 1),)),
        gang("nlp/high", 1, team="nlp", prio=1),
        gang("speech/mine", 2, team="speech"),
    ]
    teams = [team("nlp", 0, "research"), team("speech", 2, "research")]
    _, result = run(nodes, workloads, teams)
    assert [a.key for a in result.admitted] == ["speech/mine"]
    (victim,) = result.victims
    assert (victim.key, victim.preemptor) == ("nlp/low", "speech/mine")
    assert victim.message == (
        "preempted by speech/mine (first for nlp/high, which speech/mine preempted in turn)"
    )


def test_a_replica_stopped_in_the_pass_comes_back_only_where_it_was() -> None:
    # All three replicas of the service run on n0. The gang takes two GPUs of n0 from one
    # of them, and then the quota has room for that replica again, but only n2 has a free
    # GPU: a Deployment cannot move a pod, so the scale-down stands this pass (before,
    # the pass let the replica "come back" on n2 while its pod stayed on n0: n0 overfull).
    serving = Workload(
        "md:ns/llm",
        "vision",
        "a100",
        Resources(1, 1000, GI),
        pods=1,
        kind=WorkloadKind.MODEL_DEPLOYMENT,
        extra_replicas=2,
        admitted=True,
        admitted_extra=2,
        admitted_at=0.0,
        bound=(("n0", 3),),
    )
    big = gang("ns/big", 2, pods=3, prio=3)
    nodes = [node("n0", gpus=4, used=3), node("n1", gpus=4), node("n2", gpus=1)]
    snap, result = run(nodes, [serving, big], [team(nominal=10)])
    (admission,) = result.admitted
    assert admission.key == "ns/big"
    assert dict(admission.placement) == {"n0": 1, "n1": 2}
    (victim,) = result.victims
    assert (victim.key, victim.replicas) == ("md:ns/llm", 1)
    waiting = result.pending_by_key()["md:ns/llm"]
    assert (waiting.reason, waiting.replicas) == (Reason.WAITING_FOR_NEXT_PASS, 1)
    after = apply(snap, result)
    assert node_violations(after) == []
    # and the next pass starts it where there is room
    (again,) = schedule(after).admitted
    assert (again.key, dict(again.placement)) == ("md:ns/llm", {"n2": 1})


def test_the_order_of_a_victims_bound_pods_does_not_decide_a_placement() -> None:
    # The victim's pods are given back to two nodes left equally free; the preemptor goes
    # to the same one whichever order the snapshot lists the victim's nodes in.
    results = []
    for bound in ((("n0", 1), ("n1", 1)), (("n1", 1), ("n0", 1))):
        victim = gang("ns/old", 1, pods=2, admitted=True, bound=bound)
        _, result = run(
            [node("n0", gpus=4, used=1), node("n1", gpus=4, used=1)],
            [victim, gang("ns/new", 1, prio=1)],
            [team(nominal=2)],
        )
        assert [v.key for v in result.victims] == ["ns/old"]
        results.append(result)
    assert results[0] == results[1]
