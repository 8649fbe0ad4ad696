"""One admission pass at S1's shape (plain script, no cluster).

    .venv/bin/python bench/bench_pass_s1.py [--waiting 10000] [--repeat 5] [--profile]
        [--config baseline|quick|FILE]

The scenario's queues and classes as `bench_kueue_scenario.py` plays them (Kueue's
generator config, baseline by default: 30 teams in 5 cohorts of 6, 20 GPUs each,
borrowing up to 100; small 1 GPU at priority 50, medium 5 at 100, large 20 at 200, 7:2:1),
as the pure core sees it in the middle of S1, with no nodes (capacity sums). A first pass
over `waiting` + 3,000 jobs drawn from the classes in their proportions fills the quotas,
then the next pass over what still waits is timed (best and median of `repeat`): what
every pass of S1's large phase costs, when nothing fits and every waiting job gets its
place and reason (docs/benchmarks.md, "The fourteenth sitting"). `--profile` prints
cProfile's top functions of one more pass. Seeded: the same decisions on every run;
compare two trees back to back, on a machine whose speed moves (the calibration is
printed). Reads the config from Kueue's harness (built once, as for S1).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from bench_kueue_scenario import FLAVOUR, Queue, queues_of
from bench_queue import calibrate
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
from kueue_harness import harness_config


def build(queues: list[Queue], waiting: int, seed: int = 3) -> Snapshot:
    """The cluster after a first pass over `waiting` + 3,000 jobs (quotas full)."""
    rng = random.Random(seed)
    teams = tuple(
        Team(
            name=queue.name,
            cohort=queue.cohort,
            quotas=(
                FlavourQuota(
                    FLAVOUR,
                    Limits(gpus=queue.nominal),
                    None if queue.borrowing is None else Limits(gpus=queue.borrowing),
                ),
            ),
        )
        for queue in queues
    )
    total = sum(queue.nominal for queue in queues)
    flavours = (Flavour(FLAVOUR, Resources(total, 10**9, 10**15)),)
    workloads = []
    for i in range(waiting + 3000):
        queue = rng.choice(queues)
        kind = rng.choices(queue.sets, weights=[s.count for s in queue.sets])[0]
        workloads.append(
            Workload(
                key=f"ns-{queue.name}/job-{i:06d}",
                team=queue.name,
                flavour=FLAVOUR,
                per_pod=Resources(kind.gpus, 0, 0),
                priority=kind.priority,
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
    parser.add_argument("--config", default="baseline", help="baseline, quick, or a file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        queues = queues_of(harness_config(args.config, Path(scratch)))
    calibration = calibrate()
    snapshot = build(queues, args.waiting)
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
        f"{sys.version.split()[0]}, calibration sum(range(10**6)) = {calibration}"
    )
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        schedule(snapshot)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
