"""How long one budget refresh takes: every team's spend and status from its pods.

The budget writer recomputes each budget every `accounting.refreshSeconds` (30 s by
default): spend of the current and previous period and the last hour for every pod of
the team (exact decimals), then the status and its conditions. This prints the time of
one such round for the whole cluster, pure code only (no API writes).

    .venv/bin/python bench/bench_budgets.py [--pods 10000] [--teams 100]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cadre.core.accounting import Interval, Ledger, PodCharge, PodUsage, Rates
from cadre.core.api.resourcebudget import ResourceBudgetSpec
from cadre.core.budget.status import BudgetInputs, budget_figures, budget_status

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RATES = {
    "a100": Rates(Decimal("2.93"), Decimal("0.048"), Decimal("0.0065")),
    "t4": Rates(Decimal("0.35"), Decimal("0.031"), Decimal("0.004")),
}


def make_pods(count: int, teams: int, rng: random.Random) -> dict[str, list[PodCharge]]:
    out: dict[str, list[PodCharge]] = {}
    for i in range(count):
        team = f"team-{i % teams}"
        start = NOW - timedelta(seconds=rng.randint(60, 40 * 86400))
        running = rng.random() < 0.5
        end = None if running else start + timedelta(seconds=rng.randint(60, 3 * 86400))
        flavor = rng.choice(("a100", "t4"))
        usage = PodUsage(
            Interval(start, end), gpus=rng.choice((1, 2, 4, 8)), cpu_milli=8000, memory_bytes=2**36
        )
        out.setdefault(team, []).append(
            PodCharge(f"pod-{i}", f"pod-{i}", "ns", team, flavor, (usage,))
        )
    return out


def one_round(pods: dict[str, list[PodCharge]], spec: ResourceBudgetSpec) -> int:
    events = 0
    for team, team_pods in pods.items():
        figures = budget_figures(spec, Ledger(), team_pods, rates=RATES, now=NOW)
        budget = {"metadata": {"name": team, "generation": 1}, "spec": {}, "status": {}}
        _, posted = budget_status(budget, BudgetInputs(), figures, currency="USD", now=NOW)
        events += len(posted)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    spec = ResourceBudgetSpec.model_validate(
        {"namespaces": ["ns"], "spend": {"limit": "20000", "gpuHours": 5000}}
    )
    print(f"{'pods':>8} {'teams':>6} {'round (best of ' + str(args.repeat) + ')':>22}")
    for pods_count in sorted({args.pods // 10, args.pods, args.pods * 5}):
        pods = make_pods(pods_count, args.teams, random.Random(7))
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            one_round(pods, spec)
            best = min(best, time.perf_counter() - started)
        print(f"{pods_count:>8,} {args.teams:>6} {best * 1000:>19.0f} ms")


if __name__ == "__main__":
    main()
