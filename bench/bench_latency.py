"""Admission latency on an idle cluster (S4), reclaim of borrowed quota (S5), a cold start
(S7) and the metrics endpoint (S8), issue #15.

    .venv/bin/python bench/bench_latency.py [--scenario s4|s5|s7|s8|both] [--runs 3]

Each scenario gets its own etcd and kube-apiserver (the project's binaries, 127.0.0.1),
the CRDs, Node objects of one flavour `rf`, and `cadre run` under its ServiceAccount with
the example config (one flavour, capacity sums, no waitForPodsReady: no pod ever runs),
as bench/bench_kueue_scenario.py sets them up. Times are taken by this process: from
just before the create's POST to the watch event that shows the status.

- **S4, create -> Admitted on an idle cluster.** One team with room for everything; one
  single-GPU TrainingJob created every second (--jobs of them per run); each one's time
  from the POST to its status Admitted, and to its Job running (created at admission).
  p50, p99 and max per run.
- **S5, reclaim.** Two teams of one cohort, 20 GPUs each, 40 on the nodes. Team A fills the
  whole cohort with 40 one-GPU jobs that never end (20 of them borrowed). Team B then
  submits a 4-GPU job within its nominal quota: the time until it is Admitted (A's
  borrowed jobs preempted), and, sampled every 100 ms from the watches from a second
  before B's submit to a second after A has taken the room back (B's job deleted), the
  GPUs of every Job not suspended against the 40 there are (over-admission: any sample
  above).

- **S7, cold start** (`--scenario s7`): --teams budgets of 20 GPUs (cohorts of 10) and
  --trainingjobs one-GPU TrainingJobs spread over them, settled by a first operator (its
  statuses written, most jobs queued); it stops, one more team and job are created, and a
  new operator starts: the time from its start to leading, and to that job's admission
  (the first decision that needs the whole cache), its writes until it has been quiet for
  5 s (those of that one admission included), and its peak RSS.
- **S8, metrics** (`--scenario s8`): --teams budgets (cohorts of 10), one running job
  each; 20 reads of the operator's /metrics: series, size, time per scrape, and the
  event loop's stall during a scrape (the slowest /healthz answer, polled every 20 ms,
  that overlapped a scrape, beside the slowest between scrapes).

Prints figures only; asserts nothing on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kueue_scenario import (
    GROUP,
    Queue,
    WorkloadSet,
    percentile,
    start_cluster,
    start_operator,
    watch,
)
from bench_kueue_scenario import budget as scenario_budget
from bench_kueue_scenario import training_job as scenario_job

PRIORITIES = {"normal": 100}


def training_job(namespace: str, name: str, gpus: int) -> dict[str, Any]:
    """A single-worker TrainingJob of `gpus` GPUs at the one priority class."""
    return scenario_job(namespace, name, WorkloadSet(0, 0, "normal", 0, 100, gpus))


def budget(name: str, gpus: int, cohort: str | None = None) -> dict[str, Any]:
    """A team of one namespace (of its name) with `gpus` GPUs, borrowing without limit."""
    return scenario_budget(Queue(name, cohort, gpus, None, ()))


class World:
    """TrainingJobs and Jobs as the watches show them, with a signal on every event."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base, self.session = base, session
        self.trainingjobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.bumped = asyncio.Event()
        self.done = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for path, into in (
            (f"{GROUP}/trainingjobs", self.trainingjobs),
            ("/apis/batch/v1/jobs", self.jobs),
        ):
            self.tasks.append(
                asyncio.ensure_future(
                    watch(self.session, self.base + path, self._keep(into), self.done)
                )
            )

    def _keep(self, into: dict[tuple[str, str], dict[str, Any]]) -> Callable[..., None]:
        def on_event(kind: str, obj: dict[str, Any]) -> None:
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            if kind == "DELETED":
                into.pop(key, None)
            else:
                into[key] = obj
            self.bumped.set()

        return on_event

    async def until(self, test: Callable[[], bool], timeout: float = 120) -> float:
        """Waits until `test()` holds after some event; the monotonic time it did."""
        deadline = time.monotonic() + timeout
        while not test():
            self.bumped.clear()  # no await since test(): no event is missed
            await asyncio.wait_for(self.bumped.wait(), max(0.0, deadline - time.monotonic()))
        return time.monotonic()

    async def admitted_and_started(self, namespace: str, name: str) -> tuple[float, float]:
        """When the TrainingJob's status says Admitted, then when its Job runs (created
        running at admission)."""
        admitted = await self.until(lambda: self.phase(namespace, name) in ("Admitted", "Running"))
        return admitted, await self.until(lambda: self.running(namespace, name))

    def running_jobs(self, namespace: str) -> int:
        return sum(1 for (ns, name) in self.jobs if ns == namespace and self.running(ns, name))

    def phase(self, namespace: str, name: str) -> str | None:
        tj = self.trainingjobs.get((namespace, name))
        return None if tj is None else (tj.get("status") or {}).get("phase")

    def running(self, namespace: str, name: str) -> bool:
        job = self.jobs.get((namespace, name))
        return job is not None and job["spec"].get("suspend") is False

    def gpus_running(self) -> int:
        """GPUs of every Job not suspended (one worker each here)."""
        total = 0
        for (namespace, name), job in self.jobs.items():
            if job["spec"].get("suspend") is False:
                tj = self.trainingjobs.get((namespace, name)) or {}
                total += int(((tj.get("spec") or {}).get("resources") or {}).get("gpus") or 0)
        return total

    async def stop(self) -> None:
        self.done.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def create(self, path: str, obj: dict[str, Any]) -> None:
        async with self.session.post(self.base + path, json=obj) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"POST {path}: {resp.status} {await resp.text()}")

    async def delete(self, path: str) -> None:
        async with self.session.delete(self.base + path) as resp:
            if resp.status >= 300 and resp.status != 404:
                raise RuntimeError(f"DELETE {path}: {resp.status} {await resp.text()}")


async def with_world(cluster_base: str, tls: Any, body: Callable[[World], Awaitable[Any]]) -> Any:
    connector = aiohttp.TCPConnector(ssl=tls, limit=50)
    async with aiohttp.ClientSession(connector=connector) as session:
        world = World(cluster_base, session)
        world.start()
        try:
            return await body(world)
        finally:
            await world.stop()


# ---- S4 ----------------------------------------------------------------------------
async def s4(world: World, runs: int, jobs: int) -> list[dict[str, float]]:
    out = []
    for r in range(runs):
        namespace = f"s4-run-{r}"
        await world.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
        await world.create(f"{GROUP}/resourcebudgets", budget(namespace, jobs))
        tjs = f"{GROUP}/namespaces/{namespace}/trainingjobs"
        to_status, to_job = [], []
        next_at = time.monotonic() + 1.0
        for i in range(jobs):
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += 1.0
            name = f"job-{i:03d}"
            sent = time.monotonic()
            await world.create(tjs, training_job(namespace, name, 1))
            admitted, started = await world.admitted_and_started(namespace, name)
            to_status.append(admitted - sent)
            to_job.append(started - sent)
        figures = {
            "p50": statistics.median(to_status),
            "p99": percentile(to_status, 0.99),
            "max": max(to_status),
            "job_p50": statistics.median(to_job),
            "job_p99": percentile(to_job, 0.99),
        }
        print(
            f"S4 run {r + 1}: {jobs} jobs, create -> Admitted p50 {figures['p50'] * 1000:.0f} ms, "
            f"p99 {figures['p99'] * 1000:.0f} ms, max {figures['max'] * 1000:.0f} ms; "
            f"-> Job running p50 {figures['job_p50'] * 1000:.0f} ms, "
            f"p99 {figures['job_p99'] * 1000:.0f} ms",
            flush=True,
        )
        out.append(figures)
    return out


# ---- S5 ----------------------------------------------------------------------------
COHORT_GPUS = 40


async def sample(world: World, into: list[int], stop: asyncio.Event) -> None:
    """GPUs of the Jobs running, every 100 ms, until `stop`."""
    while not stop.is_set():
        into.append(world.gpus_running())
        await asyncio.sleep(0.1)


async def s5(world: World, runs: int) -> list[dict[str, float]]:
    for team in ("team-a", "team-b"):
        await world.create("/api/v1/namespaces", {"metadata": {"name": team}})
        await world.create(f"{GROUP}/resourcebudgets", budget(team, 20, cohort="cohort"))
    a_jobs = f"{GROUP}/namespaces/team-a/trainingjobs"
    b_jobs = f"{GROUP}/namespaces/team-b/trainingjobs"
    for i in range(COHORT_GPUS):
        await world.create(a_jobs, training_job("team-a", f"a-{i:02d}", 1))

    def a_whole() -> bool:
        return world.running_jobs("team-a") == COHORT_GPUS

    await world.until(a_whole, timeout=300)
    out = []
    for r in range(runs):
        samples: list[int] = []
        sampling = asyncio.Event()
        sampler = asyncio.ensure_future(sample(world, samples, sampling))
        await asyncio.sleep(1.0)  # sampled from a second before to a second after
        name = f"b-{r}"
        sent = time.monotonic()
        await world.create(b_jobs, training_job("team-b", name, 4))
        admitted, started = await world.admitted_and_started("team-b", name)
        await world.delete(f"{b_jobs}/{name}")
        await world.until(a_whole, timeout=300)
        await asyncio.sleep(1.0)
        sampling.set()
        await sampler
        figures = {
            "reclaim": admitted - sent,
            "job": started - sent,
            "samples": len(samples),
            "max_gpus": max(samples),
            "over": sum(1 for s in samples if s > COHORT_GPUS),
        }
        print(
            f"S5 run {r + 1}: team B's 4-GPU job Admitted {figures['reclaim'] * 1000:.0f} ms "
            f"after its create (Job running {figures['job'] * 1000:.0f} ms); "
            f"{figures['samples']} samples every 100 ms, at most {figures['max_gpus']} of "
            f"{COHORT_GPUS} GPUs running, over-admitted in {figures['over']}",
            flush=True,
        )
        out.append(figures)
    return out


# ---- S7 ----------------------------------------------------------------------------
TEAM_GPUS = 20


def s7(cluster: Any, folder: Path, teams: int, trainingjobs: int) -> dict[str, float]:
    """See the module: a restart of the operator with `trainingjobs` TrainingJobs settled."""
    api = cluster.api
    for t in range(teams):
        name = f"team-{t:04d}"
        api.create("/api/v1/namespaces", {"metadata": {"name": name}})
        api.create(
            f"{GROUP}/resourcebudgets", budget(name, TEAM_GPUS, cohort=f"cohort-{t // 10:03d}")
        )
    for part in ("first", "restart"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    first = start_operator(cluster, folder / "first", PRIORITIES)
    try:
        docs = [(f"team-{i % teams:04d}", f"job-{i:05d}") for i in range(trainingjobs)]

        def post(doc: tuple[str, str]) -> None:
            namespace, name = doc
            api.create(
                f"{GROUP}/namespaces/{namespace}/trainingjobs", training_job(namespace, name, 1)
            )

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(post, docs))
        waiting = max(0, trainingjobs - teams * TEAM_GPUS)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if first.metric("cadre_admission_pending_workloads") == waiting:
                break
            time.sleep(2)
        first.quiet_writes(quiet=10, timeout=900)  # every status written
        settle_writes = first.writes(accounting=True)
    finally:
        first.stop()
    # While no operator runs: a new team and its first job.
    api.create("/api/v1/namespaces", {"metadata": {"name": "team-new"}})
    api.create(f"{GROUP}/resourcebudgets", budget("team-new", TEAM_GPUS))
    path = f"{GROUP}/namespaces/team-new/trainingjobs"
    api.create(path, training_job("team-new", "first", 1))
    started = time.monotonic()
    second = start_operator(cluster, folder / "restart", PRIORITIES)
    try:
        leading = time.monotonic() - started
        while (api.get(f"{path}/first").get("status") or {}).get("phase") != "Admitted":
            time.sleep(0.05)
        decided = time.monotonic() - started
        second.quiet_writes(quiet=5, timeout=600)
        requests = second.api_requests(ok_only=True)
        writes = {
            f"{verb} {resource}": n
            for (verb, resource), n in sorted(requests.items())
            if verb in ("POST", "PUT", "PATCH", "DELETE")
        }
        figures = {
            "leading": leading,
            "decided": decided,
            "writes": float(sum(n for k, n in writes.items() if not k.endswith("leases"))),
            "rss_peak_mib": second.memory_kib()[1] / 1024,
            "settle_writes": settle_writes,
        }
    finally:
        second.stop()
    print(
        f"S7: {trainingjobs} TrainingJobs in {teams} budgets (settled with "
        f"{settle_writes:.0f} writes); restarted operator leading after "
        f"{figures['leading']:.1f} s, first decision (a new job admitted) after "
        f"{figures['decided']:.1f} s; {figures['writes']:.0f} writes until quiet "
        f"({', '.join(f'{k} {v:.0f}' for k, v in writes.items())}); peak RSS "
        f"{figures['rss_peak_mib']:.0f} MiB",
        flush=True,
    )
    return figures


# ---- S8 ----------------------------------------------------------------------------
def s8(cluster: Any, op: Any, teams: int, scrapes: int, *, create: bool) -> dict[str, float]:
    """`teams` budgets (cohorts of 10, one namespace each) with one running job each
    (created when `create`), then `scrapes` reads of the operator's /metrics: time, size
    and series."""
    api = cluster.api
    for t in range(teams if create else 0):
        name = f"team-{t:04d}"
        api.create("/api/v1/namespaces", {"metadata": {"name": name}})
        api.create(f"{GROUP}/resourcebudgets", budget(name, 2, cohort=f"cohort-{t // 10:03d}"))
        api.create(f"{GROUP}/namespaces/{name}/trainingjobs", training_job(name, "job", 1))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if (op.metric("cadre_admission_pending_workloads") or 0) == 0 and sum(
            1 for line in op.metrics().splitlines() if line.startswith("cadre_team_quota_gpus{")
        ) >= teams:
            break
        time.sleep(2)
    times, sizes, series = [], [], []
    scraping: list[tuple[float, float]] = []  # (start, end) of each scrape
    probes: list[tuple[float, float]] = []  # (start, end) of each /healthz answer
    stop = threading.Event()

    def probe() -> None:
        # /healthz is answered on the operator's event loop, /metrics in a thread of its
        # own: a /healthz answer slower during a scrape is the loop held up by the scrape.
        url = f"http://127.0.0.1:{op.health_port}/healthz"
        while not stop.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(url, timeout=10) as answer:
                answer.read()
            probes.append((started, time.perf_counter()))
            stop.wait(0.02)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    for _ in range(scrapes):
        started = time.perf_counter()
        text = op.metrics()
        ended = time.perf_counter()
        times.append(ended - started)
        scraping.append((started, ended))
        sizes.append(len(text))
        series.append(sum(1 for line in text.splitlines() if line and not line.startswith("#")))
        time.sleep(0.5)
    stop.set()
    prober.join()
    during: list[float] = []
    idle: list[float] = []
    for b, e in probes:
        overlapped = any(b < se and e > ss for ss, se in scraping)
        (during if overlapped else idle).append(e - b)
    figures = {
        "series": float(statistics.median(series)),
        "bytes": float(statistics.median(sizes)),
        "p50": statistics.median(times),
        "max": max(times),
        "loop_during_p50": statistics.median(during) if during else 0.0,
        "loop_during_max": max(during, default=0.0),
        "loop_idle_max": max(idle, default=0.0),
    }
    print(
        f"S8: {teams} budgets, {teams} jobs running: {figures['series']:.0f} series, "
        f"{figures['bytes'] / 1024:.0f} KiB; scrape p50 {figures['p50'] * 1000:.0f} ms, "
        f"max {figures['max'] * 1000:.0f} ms over {scrapes}; event loop (/healthz answer) "
        f"p50 {figures['loop_during_p50'] * 1000:.0f} ms, "
        f"max {figures['loop_during_max'] * 1000:.0f} ms "
        "during scrapes, max "
        f"{figures['loop_idle_max'] * 1000:.0f} ms between them",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("s4", "s5", "s7", "s8", "both"), default="both")
    parser.add_argument("--teams", type=int, default=None, help="S7, S8: budgets (100, 1000)")
    parser.add_argument("--trainingjobs", type=int, default=10000, help="S7: TrainingJobs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=60, help="S4: jobs per run (one a second)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="cadre-latency-"))
    chosen = ("s4", "s5") if args.scenario == "both" else (args.scenario,)
    figures: dict[str, list[Any]] = {}  # per scenario, its runs' figures (bench/suite.py)
    for scenario in chosen:
        folder = out / scenario
        folder.mkdir(parents=True, exist_ok=True)
        teams = args.teams or (100 if scenario == "s7" else 1000)
        gpus = {
            "s4": args.runs * args.jobs,
            "s5": COHORT_GPUS,
            "s7": (teams + 1) * TEAM_GPUS,
            "s8": teams,
        }[scenario]
        cluster = None
        op = None
        try:
            cluster = start_cluster(folder, gpus)
            if scenario == "s7":
                for r in range(args.runs):  # a cluster each: a restart of a settled one
                    if r:
                        cluster.down()
                        cluster = start_cluster(folder / f"run-{r}", gpus)
                    figures.setdefault(scenario, []).append(
                        s7(cluster, folder / f"run-{r}", teams, args.trainingjobs)
                    )
                continue
            op = start_operator(cluster, folder, PRIORITIES)
            print(f"{scenario}: operator pid {op.pid} leading, output {folder}", flush=True)
            if scenario == "s8":
                for r in range(args.runs):  # the same operator, scraped again
                    figures.setdefault(scenario, []).append(
                        s8(cluster, op, teams, scrapes=20, create=r == 0)
                    )
                continue
            if scenario == "s4":
                body: Callable[[World], Awaitable[Any]] = lambda w: s4(w, args.runs, args.jobs)  # noqa: E731
            else:
                body = lambda w: s5(w, args.runs)  # noqa: E731
            figures[scenario] = asyncio.run(with_world(cluster.server, cluster.api.tls, body))
        finally:
            if op is not None:
                op.stop()
            if cluster is not None:
                cluster.down()
    (out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
