"""Scheduler pass time against queue length (plain script, no cluster).

    .venv/bin/python bench/bench_scheduler.py [--repeat N] [--sizes 1000,10000,50000]

Each size is timed twice: with the nodes in the snapshot (every unit is placed on them,
issue #14) and with capacity sums only (admission.nodePlacement off, as before #14). With
nodes, a tenth of the nodes carry a foreign pod, and the admitted work is bound where the
scheduler's own placement put it.

Builds a cluster of 1,000 nodes in 5 flavours, 100 teams in 10 cohorts (mixed borrowing and
lending limits, some StrictFIFO, a few over budget), 2,000 admitted workloads, then times
`schedule()` for 1k, 10k and 50k pending workloads (best of N runs, whole pass including
every pending workload's reason), then the next pass on the cluster as the first one left
it (the steady state of a long queue: a few admissions, most work still pending), and
prints the growth factors of the first pass next to what n log n predicts. Seeded: the
same figures on the same machine.
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import sys
import time
import timeit
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

import itertools

from cadre.core.scheduling import (
    FlavourQuota,
    FlavourSelector,
    Limits,
    Node,
    NodeCapacity,
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
    capacity_from_nodes,
    schedule,
)

GI = 1 << 30
FLAVOURS = {  # name: (GPUs, CPU cores, memory GiB) per node
    "a100": (8, 96, 1024),
    "h100": (8, 112, 2048),
    "l4": (4, 48, 192),
    "t4": (4, 32, 128),
    "cpu-only": (0, 64, 256),
}
NODES = 1000
TEAMS = 100
COHORTS = 10
ADMITTED = 2000


def build_cluster(rng: random.Random) -> tuple[Snapshot, list[str]]:
    selectors = [FlavourSelector(n, {"cadre.dev/flavour": n}) for n in FLAVOURS]
    names = list(FLAVOURS)
    nodes = []
    for i in range(NODES):
        name = names[i % len(names)]
        g, c, m = FLAVOURS[name]
        nodes.append(
            Node({"cadre.dev/flavour": name}, Resources(g, c * 1000, m * GI), unschedulable=i < 5)
        )
    flavours = capacity_from_nodes(selectors, nodes)
    placed = tuple(
        NodeCapacity(
            f"node-{i:04d}",
            node.labels["cadre.dev/flavour"],
            node.allocatable,
            # a tenth carry a pod Cadre does not manage (a daemon, another team's tool)
            Resources(min(1, node.allocatable.gpus), 2000, 8 * GI) if i % 10 == 3 else Resources(),
            schedulable=not node.unschedulable,
        )
        for i, node in enumerate(nodes)
    )
    teams = []
    for t in range(TEAMS):
        quotas = []
        for f in flavours:
            if rng.random() < 0.3 and f.name != "cpu-only":
                continue
            share = f.capacity.gpus // TEAMS if f.capacity.gpus else 0
            nominal = Limits(
                gpus=share if f.capacity.gpus else None,
                cpu=f.capacity.cpu // TEAMS if f.name == "cpu-only" else None,
                memory=f.capacity.memory // TEAMS if f.name == "cpu-only" else None,
            )
            borrow = None if rng.random() < 0.5 else Limits(gpus=share, cpu=None, memory=None)
            lend = None if rng.random() < 0.7 else Limits(gpus=share // 2)
            quotas.append(FlavourQuota(f.name, nominal, borrow, lend))
        over = rng.random() < 0.03
        teams.append(
            Team(
                name=f"team-{t:03d}",
                quotas=tuple(quotas),
                cohort=f"cohort-{t % COHORTS}",
                fair_share_weight=rng.choice([1.0, 1.0, 2.0, 0.5]),
                queueing=QueueingStrategy.STRICT_FIFO
                if rng.random() < 0.1
                else QueueingStrategy.BEST_EFFORT_FIFO,
                spend=Spend(
                    state=SpendState.EXCEEDED if over else SpendState.OK,
                    policy=SpendPolicy.QUEUE,
                    spent=Decimal("20140"),
                    limit=Decimal("20000"),
                ),
            )
        )
    snap = Snapshot(flavours, tuple(teams), (), placed)
    return snap, [t.name for t in teams]


def workload(rng: random.Random, key: str, team: Team, created: float) -> Workload:
    fq = rng.choice(team.quotas)
    g, c, m = FLAVOURS[fq.flavour]
    if g:
        gpus = rng.choice([1, 1, 2, 4, 8][: 5 if g == 8 else 4])
        per = Resources(gpus, gpus * c * 1000 // g // 2, gpus * m * GI // g // 2)
    else:
        per = Resources(0, rng.choice([1, 2, 4, 8]) * 1000, rng.choice([4, 8, 16]) * GI)
    serving = rng.random() < 0.2
    return Workload(
        key=key,
        team=team.name,
        flavour=fq.flavour,
        per_pod=per,
        pods=rng.choice([1, 2]) if serving else rng.choice([1, 1, 2, 4]),
        kind=WorkloadKind.MODEL_DEPLOYMENT if serving else WorkloadKind.TRAINING_JOB,
        priority=rng.choices([0, 100, 1000], weights=[1, 8, 1])[0],
        created=created,
        extra_replicas=rng.choice([0, 1, 3]) if serving else 0,
    )


def build(pending: int, seed: int = 4) -> Snapshot:
    rng = random.Random(seed)
    base, _ = build_cluster(rng)
    teams = base.teams
    first = tuple(
        workload(rng, f"ns-{i % 300}/run-{i:06d}", rng.choice(teams), float(i))
        for i in range(ADMITTED * 2)
    )
    # admit a valid 2,000 through the scheduler itself, then drop the rest
    applied = apply_result(
        replace(base, workloads=first), schedule(replace(base, workloads=first)), 1e6
    )
    admitted = tuple(w for w in applied.workloads if w.admitted)[:ADMITTED]
    waiting = tuple(
        workload(rng, f"ns-{i % 300}/job-{i:06d}", rng.choice(teams), 2e6 + i)
        for i in range(pending)
    )
    return replace(base, workloads=admitted + waiting)


def timed(snap: Snapshot, repeat: int) -> tuple[float, int, int, int]:
    best = math.inf
    result = None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = schedule(snap)
        best = min(best, time.perf_counter() - t0)
    assert result is not None
    return best, len(result.admitted), len(result.victims), len(result.pending)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000,50000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    for label, with_nodes in (("with nodes (placement)", True), ("sums only", False)):
        print(f"-- {label}")
        run(sizes, args.repeat, with_nodes)


def best_of(
    snaps: dict[int, Snapshot], repeat: int
) -> tuple[dict[int, float], dict[int, tuple[int, int, int]]]:
    """The best time of `repeat` passes over each snapshot, timed round-robin so that the
    machine's slow moments hit all of them alike; and each pass's counts."""
    times = dict.fromkeys(snaps, math.inf)
    results: dict[int, tuple[int, int, int]] = {}
    for _ in range(repeat):
        for n, snap in snaps.items():
            t, *counts = timed(snap, 1)
            times[n] = min(times[n], t)
            results[n] = (counts[0], counts[1], counts[2])
    return times, results


def run(sizes: list[int], repeat: int, with_nodes: bool) -> None:
    # how fast this machine is right now (shared and virtual: it varies by 2x and more)
    calibration = min(timeit.repeat("sum(range(10**6))", number=5, repeat=5)) / 5
    print(
        f"python {sys.version.split()[0]}, {NODES} nodes, {TEAMS} teams, 5 flavours, "
        f"{ADMITTED} admitted; best of {repeat}; "
        f"calibration sum(range(10**6)) = {calibration * 1000:.1f} ms"
    )
    snaps = {n: build(n) for n in sizes}
    if not with_nodes:
        snaps = {n: replace(snap, nodes=None) for n, snap in snaps.items()}
    times, results = best_of(snaps, repeat)
    # The next pass, on the cluster as the first one left it: the steady state of a long
    # queue (a few admissions and preemptions, most work still pending).
    nexts = {n: apply_result(snap, schedule(snap), 3e6) for n, snap in snaps.items()}
    next_times, next_results = best_of(nexts, repeat)
    for n in sizes:
        for label, took, (adm, vic, pend) in (
            (f"pending {n:>6,}", times[n], results[n]),
            ("   next pass", next_times[n], next_results[n]),
        ):
            print(
                f"{label}: {took * 1000:8.1f} ms   admitted {adm:>5}  victims {vic:>4}  "
                f"still pending {pend:>6}"
            )
    for a, b in itertools.pairwise(sizes):
        nlogn = (b * math.log(b)) / (a * math.log(a))
        print(
            f"growth {a:,} -> {b:,}: x{times[b] / times[a]:.2f} "
            f"(n: x{b / a:.1f}, n log n: x{nlogn:.2f}, n^2: x{(b / a) ** 2:.0f})"
        )


if __name__ == "__main__":
    main()
