"""The benchmark suite (`make bench`), resumable and recorded.

    .venv/bin/python bench/suite.py [--runs 3] [--only s1,s2,...] [--record DIR] [--work DIR]

The suite is several hours on a two-core machine, longer than one sitting, so each step
(a scenario's run: Kueue's harness or Cadre) is recorded when it ends, in
bench/results/<operator tree>/ by default: its printed figures (<step>.txt), its
figures (<step>.json), the per-workload records the plots are drawn from (gzipped), and
when, on what machine and at which commit it ran (<step>.meta.json). Running the suite
again skips the steps already recorded, so it can be finished in a later sitting; the
record is keyed by the git tree of operator/ (and crds/), so a changed operator starts a
new record instead of mixing figures of two different operators. A run's two sides
(Kueue's, then Cadre's) are two steps, run back to back in the same sitting.
bench/report.py turns a record into the tables of docs/benchmarks.md, with the spread of
the runs and Kueue's figure beside Cadre's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
S2_CONFIG = "bench/configs/s2-large.yaml"


@dataclass(frozen=True)
class Step:
    name: str  # also the record's file stem
    scenario: str  # what --only selects
    argv: tuple[str, ...]
    out: bool = True  # the script takes --out (a working folder)
    figures: str | None = "figures.json"  # what it leaves there, under --out
    keep: tuple[str, ...] = ()  # per-workload files kept, gzipped, for the plots


def steps(runs: int) -> list[Step]:
    bench = lambda script, *args: (PY, f"bench/{script}", *args)  # noqa: E731
    out = [
        Step("scheduler", "scheduler", bench("bench_scheduler.py"), out=False, figures=None),
        Step("budgets", "budgets", bench("bench_budgets.py"), out=False, figures=None),
    ]
    sides = (  # a run of S1 or S2: Kueue's harness, then Cadre, back to back
        ("kueue", "kueue_harness.py", "wlStates.csv"),
        ("cadre", "bench_kueue_scenario.py", "workloads.csv"),
    )
    # Cadre's S2 is given 90 minutes of play: on two cores its API server admits about 17
    # jobs a second (50 minutes for 50,000), and a run cut at 30 had no end figures.
    longer = {("s2", "cadre"): ("--timeout-minutes", "90")}
    out += [
        Step(
            f"{scenario}-{n}-{side}",
            scenario,
            bench(script, "--config", config, *longer.get((scenario, side), ())),
            keep=(kept,),
        )
        for n in range(1, runs + 1)
        for scenario, config in (("s1", "baseline"), ("s2", S2_CONFIG))
        for side, script, kept in sides
    ]
    runs_arg = ("--runs", str(runs))
    out += [
        Step("s4-s5", "s4", bench("bench_latency.py", *runs_arg)),
        Step("s7", "s7", bench("bench_latency.py", "--scenario", "s7", *runs_arg)),
        Step("s8", "s8", bench("bench_latency.py", "--scenario", "s8", *runs_arg)),
    ]
    return out + [Step(f"s3-{n}", "s3", bench("bench_e2e.py")) for n in range(1, runs + 1)]


def git(*args: str) -> str:
    return subprocess.run(
        ("git", *args), cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def operator_tree() -> str:
    """What is measured: the operator's code and its CRDs (bench scripts may change)."""
    return (
        git("rev-parse", "--short=12", "HEAD:operator")
        + "-"
        + git("rev-parse", "--short=8", "HEAD:crds")
    )


def machine() -> dict[str, object]:
    model = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kib = int(fh.readline().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


def run_step(step: Step, work: Path, record: Path) -> None:
    folder = work / step.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    argv = [*step.argv, *(("--out", str(folder)) if step.out else ())]
    started, commit = time.time(), git("rev-parse", "HEAD")
    print(f"== {step.name}: {' '.join(argv[1:])}", flush=True)
    printed: list[str] = []
    with subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            printed.append(line)
    if proc.returncode != 0:
        raise SystemExit(f"{step.name} failed ({proc.returncode}); its output is in {folder}")
    if step.figures:
        shutil.copyfile(folder / step.figures, record / f"{step.name}.json")
    for name in step.keep:
        with (
            (folder / name).open("rb") as src,
            gzip.open(record / f"{step.name}.{name}.gz", "wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
    meta = {
        "step": step.name,
        "argv": argv[1:],
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "commit": commit,
        "dirty": bool(git("status", "--porcelain", "operator", "crds")),
        "machine": machine(),
    }
    (record / f"{step.name}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    # Written last: a step counts as recorded only when everything else is there.
    (record / f"{step.name}.txt").write_text("".join(printed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="scenarios: scheduler,budgets,s1,...,s8")
    parser.add_argument("--record", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cadre-bench"))
    args = parser.parse_args()
    if git("status", "--porcelain", "operator", "crds"):
        raise SystemExit("operator/ or crds/ has uncommitted changes: commit, then measure")
    record = args.record or REPO / "bench" / "results" / operator_tree()
    record.mkdir(parents=True, exist_ok=True)
    only = {s for s in args.only.split(",") if s}
    if "s5" in only:
        only.add("s4")  # one step runs both
    chosen = [s for s in steps(args.runs) if not only or s.scenario in only]
    todo = [s for s in chosen if not (record / f"{s.name}.txt").exists()]
    print(
        f"record {record.relative_to(REPO) if record.is_relative_to(REPO) else record}: "
        f"{len(chosen) - len(todo)} of {len(chosen)} steps recorded, {len(todo)} to run",
        flush=True,
    )
    for step in todo:
        run_step(step, args.work, record)
    # The tables (record/report.md) and the plots, from whatever is recorded so far.
    subprocess.run(
        (PY, "bench/report.py", str(record), "--plots", "docs/img"), cwd=REPO, check=True
    )


if __name__ == "__main__":
    main()
