"""The tables of a benchmark record (bench/suite.py), for docs/benchmarks.md.

    .venv/bin/python bench/report.py bench/results/<record> [--plots docs/img]

Each figure is the median of the recorded runs with their range (min-max), Kueue's
beside Cadre's with the ratio of the medians (Cadre / Kueue: below 1 is Cadre faster or
smaller), then the targets of issue #15, met or not. --plots draws the time-to-admission
images of S1 and S2 from their first run and S3's progress over every run
(bench/plot_admission.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kueue_scenario import lifecycle_economy
from kueue_harness import CLASSES, harness_config, queue_usage, rfc3339_seconds
from plot_admission import cadre_series, intervals, kueue_series, plot, plot_progress, records
from suite import S2_CONFIG

Fig = dict[str, Any]


def load(record: Path, step: str) -> Fig | None:
    path = record / f"{step}.json"
    return json.loads(path.read_text()) if path.exists() else None


def runs(record: Path, scenario: str, side: str = "") -> list[Fig]:
    """The recorded runs of `scenario` (`side`: kueue or cadre), in run order."""
    found = []
    for n in range(1, 100):
        step = f"{scenario}-{n}" + (f"-{side}" if side else "")
        fig = load(record, step)
        if fig is None:
            break
        if side == "kueue":
            fig["held"] = held_usage(fig, record / f"{step}.wlStates.csv.gz", CONFIGS[scenario])
        found.append(fig)
    return found


CONFIGS = {"s1": "baseline", "s2": S2_CONFIG}


def held_usage(fig: Fig, states: Path, config: str) -> float:
    """Kueue's side measured as Cadre's: the quota its workloads held, from admission to
    finish (the runner's per-workload record), over nominal quota x the monitored time.
    (Kueue's checker integrates the ClusterQueues' reported usage between their status
    events instead, which counts a workload's quota until its queue next reports.)"""
    generator = harness_config(config, Path(tempfile.mkdtemp(prefix="report-")))
    units: dict[str, float] = {}
    nominal = 0.0
    for cohort in generator["cohorts"]:
        for qset in cohort["queuesSets"]:
            nominal += cohort["count"] * qset["count"] * qset["nominalQuota"]
            for ws in qset["workloadsSets"]:
                for wl in ws["workloads"]:
                    units[wl["className"]] = wl["request"]
    held = 0.0
    with records(states, "wlStates.csv") as fh:
        for row in csv.DictReader(fh):
            held += (
                units[row["class name"]]
                * (int(row["ms to finish"]) - int(row["ms to admitted"]))
                / 1000
            )
    spans = [
        rfc3339_seconds(cq["lastEventTime"]) - rfc3339_seconds(cq["firstEventTime"])
        for cq in (fig["summary"].get("clusterQueueClasses") or {}).values()
    ]
    return 100 * held / (nominal * max(spans)) if spans and max(spans) > 0 else math.nan


def spread(values: Iterable[float], fmt: str = "{:,.1f}") -> str:
    xs = [v for v in values if not math.isnan(v)]
    if not xs:
        return "-"
    mid = fmt.format(statistics.median(xs))
    return mid if len(xs) == 1 else f"{mid} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def median(values: Iterable[float]) -> float:
    xs = [v for v in values if not math.isnan(v)]
    return statistics.median(xs) if xs else math.nan


def ratio(cadre: float, kueue: float) -> str:
    return f"{cadre / kueue:.2f}" if kueue and not math.isnan(cadre * kueue) else "-"


# -- Kueue's side and Cadre's, one figure each ---------------------------------------------
def kueue_class(fig: Fig, klass: str, key: str) -> float:
    wl = (fig["summary"].get("workloadClasses") or {}).get(klass)
    if wl is None:
        return math.nan
    return {
        "mean": wl["averageTimeToAdmissionMs"] / 1000,
        "p99": fig["p99"].get(klass, math.nan),
        "evictions": wl["totalEvictions"],
    }[key]


def kueue_usage(fig: Fig) -> float:
    usage = queue_usage(fig["summary"])
    return statistics.fmean(usage.values()) if usage else math.nan


ROWS: list[tuple[str, Callable[[Fig], float], Callable[[Fig], float], str]] = [
    ("wall (s)", lambda k: k["stats"]["wallMs"] / 1000, lambda c: c["wall"], "{:,.1f}"),
    *[
        (
            f"{key} time to admission, {klass} (s)",
            lambda k, klass=klass, key=key: kueue_class(k, klass, key),
            lambda c, klass=klass, key=key: c["classes"].get(klass, {}).get(key, math.nan),
            "{:,.1f}",
        )
        for klass in CLASSES
        for key in ("mean", "p99")
    ],
    (
        "CPU (s)",
        lambda k: (k["stats"]["userMs"] + k["stats"]["sysMs"]) / 1000,
        lambda c: c["cpu"],
        "{:,.1f}",
    ),
    (
        "peak RSS (MiB)",
        lambda k: k["stats"]["maxrss"] / 1024,
        lambda c: c["rss_peak_kib"] / 1024,
        "{:,.0f}",
    ),
    (
        "quota held, admission to finish (% of nominal x span)",
        lambda k: k["held"],
        lambda c: c["usage"],
        "{:.1f}",
    ),
    ("usage by Kueue's checker (%)", kueue_usage, lambda c: math.nan, "{:.1f}"),
    (
        "evictions",
        lambda k: sum(kueue_class(k, c, "evictions") for c in CLASSES),
        lambda c: sum(v.get("evictions", 0) for v in c["classes"].values()),
        "{:,.0f}",
    ),
]


def side_by_side(record: Path, scenario: str, title: str) -> list[str]:
    kueue, cadre = runs(record, scenario, "kueue"), runs(record, scenario, "cadre")
    if not kueue and not cadre:
        return [f"### {title}", "", "Not recorded.", ""]
    lines = [
        f"### {title}",
        "",
        f"Runs: {len(kueue)} of Kueue's harness, {len(cadre)} of Cadre; median (min-max).",
        "",
        "| figure | Kueue | Cadre | Cadre / Kueue |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, of_kueue, of_cadre, fmt in ROWS:
        k = [of_kueue(f) for f in kueue]
        c = [of_cadre(f) for f in cadre]
        lines.append(
            f"| {label} | {spread(k, fmt)} | {spread(c, fmt)} | {ratio(median(c), median(k))} |"
        )
    if cadre:
        lines += ["", "Cadre's requests per TrainingJob lifecycle (S6), first run:", "", "```"]
        first = cadre[0]
        lines += [line.strip() for line in lifecycle_economy(first["operator"], first["workloads"])]
        lines += ["```"]
    return [*lines, ""]


# -- Cadre alone -------------------------------------------------------------------------
def per_run(
    title: str, figs: list[Fig], columns: list[tuple[str, Callable[[Fig], float], str]]
) -> list[str]:
    if not figs:
        return [f"### {title}", "", "Not recorded.", ""]
    head = "| run | " + " | ".join(name for name, _, _ in columns) + " |"
    lines = [f"### {title}", "", head, "|" + " ---: |" * (len(columns) + 1)]
    for n, fig in enumerate(figs, 1):
        lines.append(
            f"| {n} | " + " | ".join(fmt.format(get(fig)) for _, get, fmt in columns) + " |"
        )
    if len(figs) > 1:
        lines.append(
            "| median | "
            + " | ".join(fmt.format(median(get(f) for f in figs)) for _, get, fmt in columns)
            + " |"
        )
    return [*lines, ""]


def latency(record: Path, step: str, scenario: str) -> list[Fig]:
    fig = load(record, step)
    return list(fig.get(scenario, [])) if fig else []


def text(record: Path, step: str, title: str) -> list[str]:
    path = record / f"{step}.txt"
    body = path.read_text().rstrip() if path.exists() else "Not recorded."
    return [f"### {title}", "", "```", body, "```", ""]


def targets(record: Path) -> list[str]:
    s1k, s1c = runs(record, "s1", "kueue"), runs(record, "s1", "cadre")
    s4 = latency(record, "s4-s5", "s4")
    s5 = latency(record, "s4-s5", "s5")
    s7 = latency(record, "s7", "s7")
    s8 = latency(record, "s8", "s8")

    def row(name: str, value: float, bound: float, unit: str, fmt: str = "{:,.2f}") -> str:
        if math.isnan(value):
            return f"| {name} | < {fmt.format(bound)} {unit} | not recorded | - |"
        met = "met" if value < bound else "not met"
        return f"| {name} | < {fmt.format(bound)} {unit} | {fmt.format(value)} {unit} | {met} |"

    lines = [
        "### Targets (issue #15), medians",
        "",
        "| target | bound | measured | |",
        "| --- | ---: | ---: | --- |",
    ]
    lines.append(row("S1 wall", median(f["wall"] for f in s1c), 150, "s", "{:,.1f}"))
    for klass in CLASSES:
        lines.append(
            row(
                f"S1 mean time to admission, {klass}, below Kueue's",
                median(f["classes"].get(klass, {}).get("mean", math.nan) for f in s1c),
                median(kueue_class(f, klass, "mean") for f in s1k),
                "s",
                "{:,.1f}",
            )
        )
    lines.append(
        row("S4 p99 create -> Admitted", median(f["p99"] * 1000 for f in s4), 100, "ms", "{:,.0f}")
    )
    lines.append(row("S5 reclaim", median(f["reclaim"] for f in s5), 2, "s"))
    lines.append(row("S7 first decision", median(f["decided"] for f in s7), 15, "s", "{:,.1f}"))
    lines.append(row("S7 writes until quiet", median(f["writes"] for f in s7), 100, "", "{:,.0f}"))
    lines.append(row("S8 scrape p50", median(f["p50"] * 1000 for f in s8), 100, "ms", "{:,.0f}"))
    return [*lines, ""]


def header(record: Path) -> list[str]:
    metas = [json.loads(p.read_text()) for p in sorted(record.glob("*.meta.json"))]
    if not metas:
        return [f"## Benchmark record {record.name}", "", "Nothing recorded yet.", ""]
    # A record may be finished in later sittings on another machine of the same kind; each
    # machine is listed with the steps it ran (a run's two sides always share one).
    machines: dict[str, list[str]] = {}
    for m in metas:
        key = json.dumps(m["machine"] | {"hostname": ""}, sort_keys=True)
        machines.setdefault(key, []).append(m["step"])
    days = sorted({m["started"][:10] for m in metas})
    commits = sorted({m["commit"][:10] for m in metas})
    total = sum(m["seconds"] for m in metas)
    lines = [
        f"## Benchmark record {record.name}",
        "",
        f"{len(metas)} steps, {total / 3600:.1f} hours of running, on {', '.join(days)}; "
        f"commits {', '.join(commits)} (one operator tree: {record.name}).",
        "",
    ]
    for m, stepnames in machines.items():
        d = json.loads(m)
        ran = f": {', '.join(stepnames)}" if len(machines) > 1 else ""
        lines.append(
            f"- machine: {d['cpus']} CPUs ({d['cpu_model']}), {d['memory_gib']} GiB, "
            f"Linux {d['kernel']}, Python {d['python']}{ran}"
        )
    return [*lines, ""]


def report(record: Path) -> str:
    lines = header(record)
    lines += side_by_side(
        record, "s1", "S1: Kueue's baseline (15,000 workloads, 30 queues in 5 cohorts)"
    )
    lines += side_by_side(record, "s2", "S2: 1,000 queues in 100 cohorts, 50,000 workloads")
    lines += per_run(
        "S3: end to end, KWOK nodes",
        runs(record, "s3"),
        [
            ("nodes", lambda f: f["nodes"], "{:,.0f}"),
            ("jobs", lambda f: f["jobs"], "{:,.0f}"),
            ("workers each", lambda f: f["workers"], "{:,.0f}"),
            ("wall (s)", lambda f: f["wall"], "{:,.1f}"),
            ("packing bound (s)", lambda f: f["bound"], "{:,.0f}"),
            ("admissions/s", lambda f: f["admissions_per_second"], "{:,.1f}"),
            ("pods Running/s", lambda f: f["pods_running_per_second"], "{:,.1f}"),
            ("create -> all Running p50 (s)", lambda f: f["create_to_running"]["p50"], "{:,.1f}"),
            ("p99 (s)", lambda f: f["create_to_running"]["p99"], "{:,.1f}"),
            ("operator CPU (s)", lambda f: f["cpu"], "{:,.1f}"),
            ("peak RSS (MiB)", lambda f: f["rss_peak_mib"], "{:,.0f}"),
            ("operator restarts", lambda f: f.get("operator_restarts", 0), "{:,.0f}"),
        ],
    )
    lines += per_run(
        "S4: create -> Admitted, one job a second, idle cluster",
        latency(record, "s4-s5", "s4"),
        [
            ("p50 (ms)", lambda f: f["p50"] * 1000, "{:,.0f}"),
            ("p99 (ms)", lambda f: f["p99"] * 1000, "{:,.0f}"),
            ("max (ms)", lambda f: f["max"] * 1000, "{:,.0f}"),
            ("-> Job running p50 (ms)", lambda f: f["job_p50"] * 1000, "{:,.0f}"),
            ("p99 (ms)", lambda f: f["job_p99"] * 1000, "{:,.0f}"),
        ],
    )
    lines += per_run(
        "S5: reclaiming borrowed quota",
        latency(record, "s4-s5", "s5"),
        [
            ("to Admitted (ms)", lambda f: f["reclaim"] * 1000, "{:,.0f}"),
            ("to Job running (ms)", lambda f: f["job"] * 1000, "{:,.0f}"),
            ("samples", lambda f: f["samples"], "{:,.0f}"),
            ("most GPUs running", lambda f: f["max_gpus"], "{:,.0f}"),
            ("samples over the cohort", lambda f: f["over"], "{:,.0f}"),
        ],
    )
    lines += per_run(
        "S7: cold start, 10,000 TrainingJobs in 100 budgets",
        latency(record, "s7", "s7"),
        [
            ("leading (s)", lambda f: f["leading"], "{:,.1f}"),
            ("first decision (s)", lambda f: f["decided"], "{:,.1f}"),
            ("writes until quiet", lambda f: f["writes"], "{:,.0f}"),
            ("peak RSS (MiB)", lambda f: f["rss_peak_mib"], "{:,.0f}"),
        ],
    )
    lines += per_run(
        "S8: the metrics endpoint, 1,000 budgets",
        latency(record, "s8", "s8"),
        [
            ("series", lambda f: f["series"], "{:,.0f}"),
            ("KiB", lambda f: f["bytes"] / 1024, "{:,.0f}"),
            ("scrape p50 (ms)", lambda f: f["p50"] * 1000, "{:,.0f}"),
            ("max (ms)", lambda f: f["max"] * 1000, "{:,.0f}"),
        ],
    )
    lines += text(record, "scheduler", "The admission pass (pure core)")
    lines += text(record, "budgets", "A budget refresh round (pure core)")
    lines += targets(record)
    return "\n".join(lines)


BEGIN, END = "<!-- bench/report.py: begin -->", "<!-- bench/report.py: end -->"


def into_page(page: Path, body: str) -> None:
    """Replace what stands between the page's two markers with `body`."""
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{page} has no {BEGIN} ... {END} to put the tables between")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    page.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")
    print(f"wrote the tables into {page}")


def plots(record: Path, folder: Path) -> None:
    for scenario, config, title in (
        ("s1", "baseline", "S1, Kueue's baseline: time to admission"),
        ("s2", S2_CONFIG, "S2, 1,000 queues: time to admission"),
    ):
        kueue = record / f"{scenario}-1-kueue.wlStates.csv.gz"
        cadre = record / f"{scenario}-1-cadre.workloads.csv.gz"
        if not (kueue.exists() and cadre.exists()):
            print(f"{scenario}: no first run recorded, no plot")
            continue
        every = intervals(harness_config(config, Path(tempfile.mkdtemp(prefix="plot-"))))
        plot(
            kueue_series(kueue, every),
            cadre_series(cadre),
            folder / f"{scenario}-time-to-admission.png",
            f"{title} (record {record.name}, run 1)",
        )
    s3_runs = {
        path.stem.split("-")[1]: path.read_text() for path in sorted(record.glob("s3-*.txt"))
    }
    if s3_runs:
        plot_progress(
            s3_runs,
            folder / "s3-progress.png",
            f"S3, 2,000 eight-worker jobs on 500 KWOK nodes (record {record.name})",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("record", type=Path)
    parser.add_argument("--plots", type=Path, default=None, help="folder for the images")
    parser.add_argument("--docs", type=Path, default=None, help="a page to put the tables in")
    args = parser.parse_args()
    body = report(args.record)
    (args.record / "report.md").write_text(body + "\n")
    print(body)
    if args.docs:
        into_page(args.docs, body)
    if args.plots:
        plots(args.record, args.plots)


if __name__ == "__main__":
    main()
