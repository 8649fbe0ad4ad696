"""Shared by the scheduling tests: hypothesis strategies and an independent reference checker.

The checker re-states the rules from issue 4 directly on the public types, without any of
the engine's internal arithmetic, so that a property failing here means the engine broke a
rule, not that two copies of the same formula agree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from decimal import Decimal

from hypothesis import strategies as st

from cadre.core.scheduling import (
    Flavour,
    FlavourQuota,
    Limits,
    NodeCapacity,
    PassResult,
    QueueingStrategy,
    Resources,
    Snapshot,
    Spend,
    SpendPolicy,
    SpendState,
    Team,
    Workload,
    WorkloadKind,
    apply_result,
)

GI = 1 << 30
RESOURCES = ("gpus", "cpu", "memory")

# ---- reference rules ----------------------------------------------------------------------


def workload_usage(w: Workload) -> Resources:
    """What an admitted workload holds: the whole gang plus its admitted extra replicas."""
    if not w.admitted:
        return Resources()
    return w.per_pod * (w.pods + w.admitted_extra)


def quota_of(team: Team, flavour: str) -> FlavourQuota | None:
    for fq in team.quotas:
        if fq.flavour == flavour:
            return fq
    return None


def _get(limits: Limits | None, r: str) -> int | None:
    return None if limits is None else getattr(limits, r)


@dataclass
class Usage:
    flavour: dict[str, dict[str, int]]
    team: dict[tuple[str, str], dict[str, int]]


def usage_of(snap: Snapshot) -> Usage:
    flavour: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(RESOURCES, 0))
    team: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(RESOURCES, 0))
    for w in snap.workloads:
        u = workload_usage(w)
        for r in RESOURCES:
            flavour[w.flavour][r] += getattr(u, r)
            team[(w.team, w.flavour)][r] += getattr(u, r)
    return Usage(flavour, team)


def node_free(node: NodeCapacity) -> Resources:
    return node.allocatable - node.used


def fits_on(free: Resources, per_pod: Resources) -> int:
    """How many pods of per_pod fit in free (re-stated, not the engine's code)."""
    counts = [getattr(free, r) // getattr(per_pod, r) for r in RESOURCES if getattr(per_pod, r) > 0]
    return max(0, min(counts)) if counts else 1 << 30


def placeable(snap: Snapshot, flavour: str, per_pod: Resources, count: int) -> bool:
    """Could `count` pods of per_pod go on the flavour's schedulable nodes as they are?"""
    assert snap.nodes is not None
    room = sum(
        fits_on(node_free(n), per_pod) for n in snap.nodes if n.flavour == flavour and n.schedulable
    )
    return room >= count


def node_violations(snap: Snapshot) -> list[str]:
    """Nodes holding more than they have (pods bound, and what the workloads say is bound
    there, agree)."""
    if snap.nodes is None:
        return []
    out = []
    for n in snap.nodes:
        for r in RESOURCES:
            if getattr(n.used, r) > getattr(n.allocatable, r):
                out.append(f"node {n.name} {r}: {getattr(n.used, r)} > {getattr(n.allocatable, r)}")
    return out


def violations(snap: Snapshot) -> list[str]:
    """Every broken rule of an admitted state: capacity, nominal + borrowingLimit, lending,
    and (with nodes) no node holds more than it has."""
    out: list[str] = node_violations(snap)
    use = usage_of(snap)
    caps = {f.name: f.capacity for f in snap.flavours}
    for fname, used in use.flavour.items():
        cap = caps.get(fname)
        for r in RESOURCES:
            if used[r] and (cap is None or used[r] > getattr(cap, r)):
                out.append(f"flavour {fname} {r}: {used[r]} > capacity {cap}")
    teams = {t.name: t for t in snap.teams}
    # team limits
    for (tname, fname), used in use.team.items():
        if not any(used.values()):
            continue
        team = teams.get(tname)
        fq = quota_of(team, fname) if team else None
        if fq is None:
            out.append(f"team {tname} holds {fname} without quota for it")
            continue
        for r in RESOURCES:
            n = getattr(fq.nominal, r)
            if n is None:
                continue
            if team is not None and team.cohort is None:
                limit: int | None = n
            else:
                b = _get(fq.borrowing_limit, r)
                limit = None if b is None else n + b
            if limit is not None and used[r] > limit:
                out.append(f"team {tname} {fname} {r}: {used[r]} > nominal+borrowing {limit}")
    # lending: per cohort, flavour and resource, what is borrowed must be covered by what the
    # lenders may lend (idle nominal, at most their lendingLimit)
    cohorts: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
    for team in snap.teams:
        if team.cohort is None:
            continue
        for fq in team.quotas:
            for r in RESOURCES:
                n = getattr(fq.nominal, r)
                if n is None:
                    continue
                u = use.team.get((team.name, fq.flavour), {}).get(r, 0)
                lend_cap = _get(fq.lending_limit, r)
                lendable = max(0, n - u) if lend_cap is None else min(lend_cap, max(0, n - u))
                cohorts[(team.cohort, fq.flavour, r)].append((max(0, u - n), lendable))
    for (cohort, fname, r), rows in cohorts.items():
        borrowed = sum(b for b, _ in rows)
        lendable = sum(lend for _, lend in rows)
        if borrowed > lendable:
            out.append(f"cohort {cohort} {fname} {r}: borrowed {borrowed} > lendable {lendable}")
    return out


def budget_blocked(team: Team) -> bool:
    return team.spend.state == SpendState.EXCEEDED and team.spend.policy != SpendPolicy.WARN


def known(snap: Snapshot, w: Workload) -> bool:
    """A known team with quota for a known flavour."""
    team = next((t for t in snap.teams if t.name == w.team), None)
    if team is None or w.flavour not in {f.name for f in snap.flavours}:
        return False
    return quota_of(team, w.flavour) is not None


def admissible_alone(snap: Snapshot, w: Workload) -> bool:
    """Static admissibility: known team with quota for a known flavour, budget allows."""
    team = next((t for t in snap.teams if t.name == w.team), None)
    return team is not None and not budget_blocked(team) and known(snap, w)


def fits_now(snap: Snapshot, w: Workload) -> bool:
    """Would admitting w's next unit (its gang, or one more extra replica) keep every rule?"""
    if w.admitted:
        if w.admitted_extra >= w.extra_replicas:
            return False
        trial = replace(w, admitted_extra=w.admitted_extra + 1)
    else:
        trial = replace(w, admitted=True, admitted_extra=0)
    workloads = tuple(trial if x.key == w.key else x for x in snap.workloads)
    if violations(replace(snap, workloads=workloads)):
        return False
    if snap.nodes is None:
        return True
    return placeable(snap, w.flavour, w.per_pod, 1 if w.admitted else w.pods)


def contradictions(result: PassResult) -> list[str]:
    """What a result says twice or both ways: a key admitted twice (a gang admitted twice, or
    a gang and its extras as two admissions), stopped twice, or both admitted and stopped
    (whole or some replicas). Counted on the lists: `admitted_by_key()` would hide them."""
    out: list[str] = []
    admitted = Counter(a.key for a in result.admitted)
    stopped = Counter(v.key for v in result.victims)
    out += [f"{key} admitted {n} times" for key, n in admitted.items() if n > 1]
    out += [f"{key} stopped {n} times" for key, n in stopped.items() if n > 1]
    for v in result.victims:
        if v.key in admitted:
            what = "stopped whole" if not v.replicas else f"loses {v.replicas} replicas"
            out.append(f"{v.key} admitted and {what}")
    return out


def apply(snap: Snapshot, result: PassResult) -> Snapshot:
    return apply_result(snap, result, now=10_000.0)


# ---- strategies ---------------------------------------------------------------------------

FLAVOUR_NAMES = ("a100", "h100", "t4")
TEAM_NAMES = ("vision", "nlp", "speech", "infra", "robotics")
COHORTS = (None, "research", "research", "prod")


@st.composite
def limits(draw: st.DrawFn, gpus_max: int, allow_none: bool = True) -> Limits:
    def one(hi: int, unit: int) -> int | None:
        if allow_none and draw(st.booleans()):
            return None
        return draw(st.integers(0, hi)) * unit

    return Limits(gpus=one(gpus_max, 1), cpu=one(16, 1000), memory=one(8, 16 * GI))


@st.composite
def teams_and_flavours(
    draw: st.DrawFn,
    *,
    gpus_only: bool = False,
    budgets: bool = True,
) -> tuple[tuple[Flavour, ...], tuple[Team, ...]]:
    nf = draw(st.integers(1, 3))
    flavours = tuple(
        Flavour(
            FLAVOUR_NAMES[i],
            Resources(
                draw(st.integers(0, 32)),
                draw(st.integers(0, 32)) * 1000,
                draw(st.integers(0, 16)) * 16 * GI,
            ),
        )
        for i in range(nf)
    )
    nt = draw(st.integers(1, 5))
    teams = []
    for i in range(nt):
        quotas = []
        for f in flavours:
            if draw(st.integers(0, 4)) == 0:
                continue
            if gpus_only:
                nominal = Limits(gpus=draw(st.integers(0, 12)))
                borrow = draw(st.one_of(st.none(), st.builds(Limits, gpus=st.integers(0, 8))))
                lend = draw(st.one_of(st.none(), st.builds(Limits, gpus=st.integers(0, 12))))
            else:
                nominal = draw(limits(12))
                borrow = draw(st.one_of(st.none(), limits(8)))
                lend = draw(st.one_of(st.none(), limits(12)))
            quotas.append(FlavourQuota(f.name, nominal, borrow, lend))
        if budgets:
            state = draw(st.sampled_from(list(SpendState)))
            policy = draw(st.sampled_from(list(SpendPolicy)))
        else:
            state, policy = SpendState.OK, SpendPolicy.QUEUE
        teams.append(
            Team(
                name=TEAM_NAMES[i],
                quotas=tuple(quotas),
                cohort=draw(st.sampled_from(COHORTS)),
                fair_share_weight=draw(st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0])),
                queueing=draw(st.sampled_from(list(QueueingStrategy))),
                spend=Spend(state, policy, Decimal("20140"), Decimal("20000"), "USD", "Monthly"),
            )
        )
    return flavours, tuple(teams)


@st.composite
def workloads(
    draw: st.DrawFn,
    flavours: tuple[Flavour, ...],
    teams: tuple[Team, ...],
    *,
    gpus_only: bool = False,
    strangers: bool = True,
    all_preemptible: bool = False,
    max_size: int = 25,
) -> tuple[Workload, ...]:
    team_names = [t.name for t in teams] + (["nobody"] if strangers else [])
    flavour_names = [f.name for f in flavours] + (["h200"] if strangers else [])
    n = draw(st.integers(0, max_size))
    out = []
    for i in range(n):
        serving = draw(st.booleans())
        admitted = draw(st.booleans())
        extra = draw(st.integers(0, 3)) if serving else 0
        if gpus_only:
            per = Resources(draw(st.integers(1, 8)), 0, 0)
        else:
            per = Resources(
                draw(st.integers(0, 8)),
                draw(st.integers(0, 8)) * 500,
                draw(st.integers(0, 4)) * 8 * GI,
            )
        out.append(
            Workload(
                key=f"ns-{i % 3}/w{i:02d}",
                team=draw(st.sampled_from(team_names)),
                flavour=draw(st.sampled_from(flavour_names)),
                per_pod=per,
                pods=draw(st.integers(1, 4)),
                kind=WorkloadKind.MODEL_DEPLOYMENT if serving else WorkloadKind.TRAINING_JOB,
                priority=draw(st.integers(0, 3)),
                created=float(draw(st.integers(0, 6))),
                extra_replicas=extra,
                admitted=admitted,
                admitted_extra=draw(st.integers(0, extra)) if admitted else 0,
                admitted_at=float(draw(st.integers(0, 6))) if admitted else None,
                preemptible=True if all_preemptible else draw(st.integers(0, 4)) > 0,
                training_may_preempt=all_preemptible or not serving or draw(st.booleans()),
            )
        )
    return tuple(out)


def make_valid(snap: Snapshot) -> Snapshot:
    """Keep the admitted flags that the rules allow, in key order: a valid starting state.
    With nodes, every pod of admitted work is bound, first fit by node name (on any node
    of its flavour, cordoned or not: it was bound before the cordon)."""
    kept: list[Workload] = []
    rest = {
        w.key: replace(w, admitted=False, admitted_extra=0, admitted_at=None)
        for w in snap.workloads
    }
    use = {n.name: n.used for n in snap.nodes or ()}
    for drawn in sorted(snap.workloads, key=lambda w: w.key):
        if not drawn.admitted or not known(snap, drawn):
            continue
        w = drawn
        if snap.nodes is not None:
            bound = _bind_first_fit(snap.nodes, use, drawn)
            if bound is None:
                continue
            w = replace(drawn, bound=bound)
        trial = (*kept, w)
        if not violations(replace(snap, workloads=trial)):
            kept.append(w)
            rest[w.key] = w
            for name, pods in w.bound:
                use[name] = use[name] + w.per_pod * pods
    nodes = None if snap.nodes is None else tuple(replace(n, used=use[n.name]) for n in snap.nodes)
    return replace(snap, workloads=tuple(rest[w.key] for w in snap.workloads), nodes=nodes)


def _bind_first_fit(
    nodes: tuple[NodeCapacity, ...], use: dict[str, Resources], w: Workload
) -> tuple[tuple[str, int], ...] | None:
    left = w.pods + w.admitted_extra
    bound = []
    for n in sorted(nodes, key=lambda n: n.name):
        if n.flavour != w.flavour or not left:
            continue
        room = min(left, fits_on(n.allocatable - use[n.name], w.per_pod))
        if room:
            bound.append((n.name, room))
            left -= room
    return None if left else tuple(bound)


@st.composite
def nodes_of(draw: st.DrawFn, flavours: tuple[Flavour, ...]) -> tuple[NodeCapacity, ...]:
    """1-4 nodes per flavour, some cordoned, some with foreign pods on them."""
    out = []
    for f in flavours:
        for i in range(draw(st.integers(1, 4))):
            allocatable = Resources(
                draw(st.sampled_from([0, 2, 4, 8])),
                draw(st.integers(0, 16)) * 1000,
                draw(st.integers(0, 8)) * 16 * GI,
            )
            foreign = Resources(
                draw(st.integers(0, allocatable.gpus)),
                draw(st.integers(0, allocatable.cpu // 1000)) * 1000,
                0,
            )
            out.append(
                NodeCapacity(
                    f"{f.name}-{i}",
                    f.name,
                    allocatable,
                    foreign if draw(st.integers(0, 2)) == 0 else Resources(),
                    schedulable=draw(st.integers(0, 5)) > 0,
                )
            )
    return tuple(out)


@st.composite
def snapshots(
    draw: st.DrawFn,
    *,
    gpus_only: bool = False,
    budgets: bool = True,
    strangers: bool = True,
    all_preemptible: bool = False,
    nominal_fits_capacity: bool = False,
    with_nodes: bool = False,
    max_workloads: int = 25,
) -> Snapshot:
    flavours, teams = draw(teams_and_flavours(gpus_only=gpus_only, budgets=budgets))
    nodes = None
    if with_nodes:  # the flavours' capacity is what their schedulable nodes have
        nodes = draw(nodes_of(flavours))
        flavours = tuple(
            replace(
                f,
                capacity=sum(
                    (n.allocatable for n in nodes if n.flavour == f.name and n.schedulable),
                    Resources(),
                ),
            )
            for f in flavours
        )
    if nominal_fits_capacity:  # capacity exists for every team's nominal quota at once
        sums: dict[str, int] = defaultdict(int)
        for t in teams:
            for fq in t.quotas:
                sums[fq.flavour] += fq.nominal.gpus or 0
        flavours = tuple(
            replace(f, capacity=replace(f.capacity, gpus=max(f.capacity.gpus, sums[f.name])))
            for f in flavours
        )
    ws = draw(
        workloads(
            flavours,
            teams,
            gpus_only=gpus_only,
            strangers=strangers,
            all_preemptible=all_preemptible,
            max_size=max_workloads,
        )
    )
    return make_valid(Snapshot(flavours, teams, ws, nodes))


@st.composite
def long_queues(draw: st.DrawFn) -> Snapshot:
    """Kueue's benchmark in small: 2-5 teams sharing cohorts, each with a long queue over a
    few request kinds and some work already admitted. Teams fill their quota and fail
    fast on everything left, and preemptions (priority, reclaim) release some again."""
    kinds = draw(
        st.lists(
            st.tuples(st.sampled_from([1, 2, 3, 4, 8]), st.sampled_from([0, 0, 500])),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    flavours = (Flavour("a100", Resources(draw(st.integers(4, 40)), 64_000, 0)),)
    teams = tuple(
        Team(
            name=TEAM_NAMES[i],
            quotas=(
                FlavourQuota(
                    "a100",
                    Limits(gpus=draw(st.integers(0, 12))),
                    draw(st.one_of(st.none(), st.builds(Limits, gpus=st.integers(0, 12)))),
                ),
            ),
            cohort=draw(st.sampled_from(("research", "research", "prod", None))),
            fair_share_weight=draw(st.sampled_from([0.5, 1.0, 1.0, 2.0])),
            queueing=draw(
                st.sampled_from([QueueingStrategy.BEST_EFFORT_FIFO] * 4 + list(QueueingStrategy))
            ),
            spend=Spend(
                SpendState.OK, SpendPolicy.QUEUE, Decimal("0"), Decimal("20000"), "USD", "Monthly"
            ),
        )
        for i in range(draw(st.integers(2, 5)))
    )
    workloads = []
    for i in range(draw(st.integers(10, 80))):
        gpus, cpu = draw(st.sampled_from(kinds))
        admitted = draw(st.integers(0, 2)) == 0
        serving = draw(st.integers(0, 5)) == 0
        extra = draw(st.integers(0, 2)) if serving else 0
        workloads.append(
            Workload(
                key=f"ns-{i % 3}/w{i:02d}",
                team=draw(st.sampled_from(teams)).name,
                flavour="a100",
                per_pod=Resources(gpus, cpu, 0),
                pods=draw(st.integers(1, 2)),
                kind=WorkloadKind.MODEL_DEPLOYMENT if serving else WorkloadKind.TRAINING_JOB,
                priority=draw(st.integers(0, 3)),
                created=float(draw(st.integers(0, 30))),
                extra_replicas=extra,
                admitted=admitted,
                admitted_extra=draw(st.integers(0, extra)) if admitted else 0,
                admitted_at=float(draw(st.integers(0, 30))) if admitted else None,
                preemptible=draw(st.integers(0, 5)) > 0,
            )
        )
    return make_valid(Snapshot(flavours, teams, tuple(workloads)))
