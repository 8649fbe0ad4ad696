"""Kueue's own scheduler performance test, built and run on this machine (issue #15 item 1).

    .venv/bin/python bench/kueue_harness.py [--config baseline|quick|FILE] [--out DIR]

Builds, once, the harness of sigs.k8s.io/kueue (test/performance/scheduler: `minimalkueue`,
Kueue's core controllers and scheduler without webhooks or job integrations, and the
`runner`, which starts an API server and etcd, creates the cohorts, ClusterQueues and
Workloads of a generator config, fakes their execution and records every admission) from
the Go module proxy into ${CADRE_CACHE_DIR:-~/.cache/cadre}/kueue-v<version>/, and runs it
against the project's own kube-apiserver and etcd (the local cluster's binaries, as
KUBEBUILDER_ASSETS). Prints Kueue's figures: wall time of minimalkueue, its CPU and peak
memory, mean time to admission per workload class, ClusterQueue usage.

`baseline` is Kueue's own config (15,000 workloads over 30 ClusterQueues in 5 cohorts;
Kueue's CI averages 351 s of minimalkueue wall time); `quick` the same shape at a tenth
per queue on 2 x 2 queues (200 workloads, well under a minute). What Kueue's Makefile
does differently, and why: its `envtest` step downloads binaries (setup-envtest), which
this machine cannot; metrics scraping (`--metricsScrapeInterval`) is left off, because it
makes minimalkueue listen on every interface, and everything here stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "e2e"))

from localcluster import binaries  # noqa: E402 (after the path it lives on)

KUEUE_VERSION = "0.17.0"
MODULE = "sigs.k8s.io/kueue"
HARNESS = "test/performance/scheduler"
CLASSES = ("small", "medium", "large")

QUICK = {  # Kueue's baseline shape, a tenth per queue, on 2 cohorts x 2 queues
    "cohorts": [
        {
            "className": "cohort",
            "count": 2,
            "queuesSets": [
                {
                    "className": "cq",
                    "count": 2,
                    "nominalQuota": 20,
                    "borrowingLimit": 100,
                    "reclaimWithinCohort": "Any",
                    "withinClusterQueue": "LowerPriority",
                    "workloadsSets": [
                        {
                            "count": count,
                            "creationIntervalMs": interval,
                            "workloads": [
                                {
                                    "className": name,
                                    "runtimeMs": runtime,
                                    "priority": priority,
                                    "request": request,
                                }
                            ],
                        }
                        for count, interval, name, runtime, priority, request in (
                            (35, 100, "small", 200, 50, 1),
                            (10, 500, "medium", 500, 100, 5),
                            (5, 1200, "large", 1000, 200, 20),
                        )
                    ],
                }
            ],
        }
    ]
}


@dataclass(frozen=True)
class Harness:
    source: Path
    """The module's source tree (the runner must start in it: it looks for a Makefile)."""
    runner: Path
    minimalkueue: Path


def _go(args: list[str], cwd: Path, timeout: float = 1800) -> str:
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    proc = subprocess.run(
        ["go", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed:\n{proc.stderr.strip()[-2000:]}")
    return proc.stdout


def harness(version: str = KUEUE_VERSION) -> Harness:
    """Kueue's harness at `version`, built once (the module from the proxy, its go.sum)."""
    folder = binaries.cache_bin_dir().parent.parent / f"kueue-v{version}"
    built = Harness(
        folder / "src",
        folder / "bin" / "performance-scheduler-runner",
        folder / "bin" / "minimalkueue",
    )
    if built.runner.is_file() and built.minimalkueue.is_file():
        return built
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if built.runner.is_file() and built.minimalkueue.is_file():
            return built
        print(f"building Kueue v{version}'s performance harness (once)", file=sys.stderr)
        with tempfile.TemporaryDirectory() as scratch:
            info = json.loads(
                _go(["mod", "download", "-json", f"{MODULE}@v{version}"], Path(scratch))
            )
        shutil.rmtree(built.source, ignore_errors=True)
        shutil.copytree(info["Dir"], built.source)
        for path in [built.source, *built.source.rglob("*")]:  # the module cache is read-only
            path.chmod(path.stat().st_mode | 0o200)
        for binary, package in ((built.minimalkueue, "minimalkueue"), (built.runner, "runner")):
            _go(["build", "-trimpath", "-o", str(binary), f"./{HARNESS}/{package}"], built.source)
    return built


def assets() -> Path:
    """KUBEBUILDER_ASSETS: the project's kube-apiserver and etcd (and kubectl), by link."""
    found = binaries.ensure()
    folder = binaries.cache_bin_dir().parent.parent / "kueue-assets"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("kube-apiserver", "etcd", "kubectl"):
        link = folder / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(found[name].path)
    return folder


def generator_file(config: str, out: Path, built: Harness | None = None) -> Path:
    """The generator config named `config` (baseline, quick, or a file's path)."""
    if config == "baseline":
        return (built or harness()).source / HARNESS / "configs/baseline/generator.yaml"
    if config == "quick":
        out.mkdir(parents=True, exist_ok=True)
        path = out / "quick-generator.yaml"
        path.write_text(yaml.safe_dump(QUICK, sort_keys=False))
        return path
    return Path(config).resolve()  # the runner runs in Kueue's source tree: no relative path


def harness_config(config: str, out: Path) -> dict[str, Any]:
    """The generator config as data, for playing the same scenario against Cadre."""
    data: dict[str, Any] = yaml.safe_load(generator_file(config, out).read_text())
    return data


def run(built: Harness, generator: Path, out: Path, timeout_minutes: int) -> dict[str, Any]:
    """One run of the runner (which starts minimalkueue); the figures it wrote."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(built.runner),
            f"--o={out}",
            f"--crds={built.source / 'config/components/crd/bases'}",
            f"--generatorConfig={generator}",
            f"--minimalKueue={built.minimalkueue}",
            "--withLogs=true",
            "--logToFile=true",
            f"--timeout={timeout_minutes}m",
        ],
        cwd=built.source,
        env={**os.environ, "KUBEBUILDER_ASSETS": str(assets())},
        capture_output=True,
        text=True,
        check=False,
    )
    (out / "runner.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"the runner failed ({proc.returncode}); see {out / 'runner.log'}")
    summary = yaml.safe_load((out / "summary.yaml").read_text())
    stats = yaml.safe_load((out / "minimalkueue.stats.yaml").read_text())
    return {
        "summary": summary,
        "stats": stats,
        "p99": p99_time_to_admission(out / "wlStates.csv"),
        "seconds": time.monotonic() - started,
    }


def p99_time_to_admission(path: Path) -> dict[str, float]:
    """Seconds, per workload class, from the runner's per-workload record."""
    by_class: dict[str, list[float]] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            by_class.setdefault(row["class name"], []).append(int(row["ms to admitted"]) / 1000)
    return {name: percentile(waits, 0.99) for name, waits in by_class.items()}


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-quantile (NaN for no values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


def report(figures: dict[str, Any]) -> str:
    summary, stats = figures["summary"], figures["stats"]
    lines = [
        f"minimalkueue wall {stats['wallMs'] / 1000:.1f} s, CPU {stats['userMs'] / 1000:.1f} s "
        f"user + {stats['sysMs'] / 1000:.1f} s sys, peak RSS {stats['maxrss'] / 1024:.0f} MiB "
        f"(the whole run {figures['seconds']:.0f} s)"
    ]
    for name in CLASSES:
        wl = (summary.get("workloadClasses") or {}).get(name)
        if wl:
            lines.append(
                f"  {name:<6} {wl['count']:>6} workloads: mean time to admission "
                f"{wl['averageTimeToAdmissionMs'] / 1000:.1f} s, "
                f"p99 {figures['p99'].get(name, math.nan):.1f} s, evictions {wl['totalEvictions']}"
            )
    for name, usage in queue_usage(summary).items():
        lines.append(f"  queue class {name}: usage {usage:.1f}% of nominal quota")
    return "\n".join(lines)


def queue_usage(summary: dict[str, Any]) -> dict[str, float]:
    """Per queue class, its usage in % as Kueue's checker computes it: used / (nominal x
    the monitored time)."""
    out = {}
    for name, cq in (summary.get("clusterQueueClasses") or {}).items():
        first = rfc3339_seconds(cq["firstEventTime"])
        last = rfc3339_seconds(cq["lastEventTime"])
        if last > first:
            out[name] = cq["cpuUsed"] * 100 / (cq["nominalQuota"] * (last - first) * 1000)
    return out


def rfc3339_seconds(stamp: str) -> float:
    """An RFC 3339 time with nanoseconds (Go's), as epoch seconds."""
    base, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(base + "+00:00").timestamp() + float("0." + (fraction or "0"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="quick", help="baseline, quick, or a generator file")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--timeout-minutes", type=int, default=30)
    args = parser.parse_args()
    built = harness()
    out = args.out or Path(tempfile.mkdtemp(prefix=f"kueue-{args.config}-"))
    generator = generator_file(args.config, out, built)
    print(f"Kueue v{KUEUE_VERSION} performance harness, config {args.config}, output {out}")
    figures = run(built, generator, out, args.timeout_minutes)
    (out / "figures.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(report(figures))


if __name__ == "__main__":
    main()
