"""One admission pass at S1's shape (plain script, no cluster).

    .venv/bin/python bench/bench_pass_s1.py [--waiting 10000] [--repeat 5] [--profile]

Kueue's baseline as the pure core sees it in the middle of S1: 30 teams in 5 cohorts of 6,
20 GPUs of one flavour each (borrowing up to 100), no nodes (capacity sums); a first pass
over `waiting` + 3,000 jobs of Kueue's classes (small 1 GPU at priority 50, medium 5 at
100, large 20 at 200; 7:2:1) fills the quotas, then the next pass over what still waits is
timed (best and median of `repeat`): what every pass of S1's large phase costs, when
nothing fits and every waiting job gets its place and reason (docs/benchmarks.md, "The
fourteenth sitting"). `--profile` prints cProfile's top functions of one more pass.
Seeded: the same decisions on every run; compare two trees back to back, on a machine
whose speed moves (the calibration is printed).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import statistics
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from cadre.core.scheduling import (
    Flavour,
    FlavourQuota,
    Limits,
    Resources,
    Snapshot,
    Team,
    Workload,
    apply_result,
    schedule,
)

COHORTS = 5
QUEUES_PER_COHORT = 6
NOMINAL_GPUS = 20
BORROWING_GPUS = 100
CLASSES = ((1, 50), (5, 100), (20, 200))  # (GPUs, priority): small, medium, large
WEIGHTS = (7, 2, 1)


def build(waiting: int, seed: int = 3) -> Snapshot:
    """The cluster after a first pass over `waiting` + 3,000 jobs (quotas full)."""
    rng = random.Random(seed)
    teams = tuple(
        Team(
            name=f"cq-{cohort}-{queue}",
            cohort=f"cohort-{cohort}",
            quotas=(FlavourQuota("rf", Limits(gpus=NOMINAL_GPUS), Limits(gpus=BORROWING_GPUS)),),
        )
        for cohort in range(COHORTS)
        for queue in range(QUEUES_PER_COHORT)
    )
    total = NOMINAL_GPUS * len(teams)
    flavours = (Flavour("rf", Resources(total, 10**9, 10**15)),)
    workloads = []
    for i in range(waiting + 3000):
        gpus, priority = rng.choices(CLASSES, weights=WEIGHTS)[0]
        team = rng.choice(teams)
        workloads.append(
            Workload(
                key=f"ns-{team.name}/job-{i:06d}",
                team=team.name,
                flavour="rf",
                per_pod=Resources(gpus, 0, 0),
                priority=priority,
                created=float(i),
            )
        )
    first = Snapshot(flavours, teams, tuple(workloads))
    return apply_result(first, schedule(first), 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waiting", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    calibration = min(timeit.repeat("sum(range(10**6))", number=5, repeat=5)) / 5
    snapshot = build(args.waiting)
    times = []
    result = None
    for _ in range(args.repeat):
        gc.collect()
        started = time.perf_counter()
        result = schedule(snapshot)
        times.append(time.perf_counter() - started)
    assert result is not None
    print(
        f"S1-shaped pass: {len(result.pending):,} waiting, {len(result.admitted)} admitted, "
        f"{len(result.victims)} victims; best {min(times) * 1000:.1f} ms, median "
        f"{statistics.median(times) * 1000:.1f} ms of {args.repeat}; python "
        f"{sys.version.split()[0]}, calibration sum(range(10**6)) = {calibration * 1000:.1f} ms"
    )
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        schedule(snapshot)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
