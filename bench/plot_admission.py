"""Time to admission over a run, per class, Kueue beside Cadre (an image for docs/).

    .venv/bin/python bench/plot_admission.py --kueue DIR --cadre DIR --config quick|baseline|FILE \
        --out docs/img/s1-time-to-admission.png

--kueue is the output folder of bench/kueue_harness.py (the runner's wlStates.csv),
--cadre that of bench/bench_kueue_scenario.py (workloads.csv); either may also name the
file itself, gzipped as bench/suite.py records it. The x axis is when the
workload arrived in the run. Kueue's runner records no creation time, so its arrival is
taken from the generator's schedule: workload `si` of a set arrives after (si + 1)
creation intervals (what its generator waits, leaving out the create's own time). Cadre's
is its TrainingJob's first watch event. Needs matplotlib (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import re
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kueue_harness import harness_config

Series = dict[str, tuple[list[float], list[float]]]


def intervals(config: dict[str, object]) -> dict[str, float]:
    """Creation interval (s) per workload class of a Kueue generator config."""
    out: dict[str, float] = {}
    for cohort_set in config["cohorts"]:  # type: ignore[attr-defined]
        for qset in cohort_set["queuesSets"]:
            for ws in qset["workloadsSets"]:
                for wl in ws["workloads"]:
                    out[wl["className"]] = ws["creationIntervalMs"] / 1000
    return out


def records(path: Path, name: str) -> io.TextIOBase:
    """`name` in the folder `path`, or the file `path` itself (plain or gzipped)."""
    path = path / name if path.is_dir() else path
    return gzip.open(path, "rt") if path.suffix == ".gz" else path.open()  # type: ignore[return-value]


def kueue_series(folder: Path, every: dict[str, float]) -> Series:
    out: Series = {}
    with records(folder, "wlStates.csv") as fh:
        for row in csv.DictReader(fh):
            klass = row["class name"]
            index = int(row["name"].split("-")[2])
            xs, ys = out.setdefault(klass, ([], []))
            xs.append((index + 1) * every[klass])
            ys.append(int(row["ms to admitted"]) / 1000)
    return out


def cadre_series(folder: Path) -> Series:
    out: Series = {}
    with records(folder, "workloads.csv") as fh:
        for row in csv.DictReader(fh):
            if not row["created_s"] or not row["admitted_s"]:
                continue
            xs, ys = out.setdefault(row["class"], ([], []))
            xs.append(float(row["created_s"]))
            ys.append(float(row["admitted_s"]) - float(row["created_s"]))
    return out


def plot(kueue: Series, cadre: Series, out: Path, title: str) -> None:
    classes = list(dict.fromkeys([*kueue, *cadre]))
    fig, axes = plt.subplots(1, len(classes), figsize=(5 * len(classes), 4), sharey=True)
    for ax, klass in zip(axes if len(classes) > 1 else [axes], classes, strict=True):
        for label, series, colour in (("Kueue", kueue, "tab:orange"), ("Cadre", cadre, "tab:blue")):
            if klass in series:
                xs, ys = series[klass]
                ax.scatter(xs, ys, s=3, alpha=0.5, color=colour, label=f"{label} ({len(xs)})")
        ax.set_title(klass)
        ax.set_xlabel("arrival in the run (s)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", markerscale=4)
    axes_list = axes if len(classes) > 1 else [axes]
    axes_list[0].set_ylabel("time to admission (s)")
    _save(fig, out, title)


def _save(fig: Figure, out: Path, title: str) -> None:
    """Title the figure and write it as an image for docs/."""
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


PROGRESS = re.compile(r"^\[\s*(\d+)s\] admitted ([\d,]+), gangs whole ([\d,]+), succeeded ([\d,]+)")
"""A progress line of bench/bench_e2e.py (S3): seconds since the first create, then counts."""


def progress_series(text: str) -> tuple[list[float], list[int], list[int], list[int]]:
    """(seconds, admitted, gangs whole, succeeded) from an S3 run's printed progress."""
    seconds: list[float] = []
    admitted: list[int] = []
    whole: list[int] = []
    succeeded: list[int] = []
    for line in text.splitlines():
        found = PROGRESS.match(line)
        if found:
            at, *counts = (int(group.replace(",", "")) for group in found.groups())
            seconds.append(at)
            for column, count in zip((admitted, whole, succeeded), counts, strict=True):
                column.append(count)
    return seconds, admitted, whole, succeeded


def plot_progress(runs: dict[str, str], out: Path, title: str) -> None:
    """S3 over each run: jobs admitted, gangs with every worker Running, jobs Succeeded."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for run, text in runs.items():
        seconds, *columns = progress_series(text)
        for ax, counts in zip(axes, columns, strict=True):
            ax.plot(seconds, counts, label=f"run {run}")
    for ax, what in zip(axes, ("admitted", "with every worker Running", "Succeeded"), strict=True):
        ax.set_title(f"jobs {what}")
        ax.set_xlabel("time since the first create (s)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    axes[0].set_ylabel("TrainingJobs")
    _save(fig, out, title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kueue", type=Path, required=True)
    parser.add_argument("--cadre", type=Path, required=True)
    parser.add_argument("--config", default="baseline")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="Kueue's scheduler benchmark: time to admission")
    args = parser.parse_args()
    every = intervals(harness_config(args.config, Path(tempfile.mkdtemp(prefix="plot-"))))
    plot(kueue_series(args.kueue, every), cadre_series(args.cadre), args.out, args.title)


if __name__ == "__main__":
    main()
