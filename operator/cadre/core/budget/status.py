"""ResourceBudget status: usage, spend, state and conditions. Pure: values in, dicts out.

The budget writer (`cadre.controller.budget_writer`) gathers the inputs (the last admission
pass, the team's pods, the ledger in the budget's status) and writes what
`budget_status` returns when it differs from the status in the API.

Spend of the current period = the ledger's settled charges (pods that are gone) + the
live charge of the team's pods that exist, each clipped to the period and priced by
its flavour's rates. The state follows `spend_verdict` (the first of money and
GPU-hours to run out counts); a change of state, or of the highest warnAt threshold
reached, is a crossing: it sets the conditions and yields one Event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from cadre.core.accounting import (
    PERIOD_WORDS,
    Charge,
    Ledger,
    PodCharge,
    Rates,
    Window,
    charge_within,
    finished_by,
    forecast,
    period_bounds,
    previous_period,
    spend_verdict,
    to_cents,
)
from cadre.core.accounting.pods import GPU_HOURS_STEP
from cadre.core.accounting.usage import PodUsage
from cadre.core.api.resourcebudget import ResourceBudgetSpec
from cadre.core.objects import timestamp, with_condition
from cadre.core.scheduling import (
    Limits,
    PassResult,
    Resources,
    Snapshot,
    Spend,
    SpendPolicy,
    SpendState,
)

__all__ = [
    "BudgetFigures",
    "BudgetInputs",
    "FinishedCharge",
    "FinishedCharges",
    "budget_figures",
    "budget_status",
    "format_cpu",
    "format_memory",
    "spend_from_status",
    "team_inputs",
]

NAMESPACE_CONFLICT: Final = "NamespaceConflict"
BUDGET_WARNING: Final = "BudgetWarning"
BUDGET_EXCEEDED: Final = "BudgetExceeded"
INVALID_SPEC: Final = "InvalidSpec"
_STATE_RANK: Final = {"Ok": 0, "Warning": 1, "Exceeded": 2}


@dataclass(frozen=True, slots=True)
class BudgetInputs:
    """What the last admission pass says about one team."""

    namespaces: tuple[str, ...] = ()
    conflicts: Mapping[str, tuple[str, ...]] | None = None
    """namespace -> the other budgets that claim it too."""
    usage: Mapping[str, Resources] | None = None
    """flavour -> admitted GPUs, CPU (millicores) and memory (bytes)."""
    nominal: Mapping[str, Limits] | None = None
    """flavour -> the team's nominal quota (None fields: not limited)."""
    admitted: int = 0
    queued: int = 0


@dataclass(frozen=True, slots=True)
class BudgetFigures:
    """The spend of one budget at `now`, exactly."""

    current: Window
    previous: Window
    spent: Charge
    previous_spent: Charge
    spent_an_hour_ago: Decimal
    ledger: Ledger
    period: str
    state: str
    threshold: float | None
    fraction: Decimal
    limiting: str | None
    policy: str
    limit: Decimal | None
    gpu_hours_limit: int | None

    def scheduling_spend(self, currency: str) -> Spend:
        """The admission core's view: state, policy and the figures for the reason."""
        if self.limiting == "gpuHours":
            spent, limit, unit = (
                self.spent.gpu_hours.quantize(Decimal("0.01")),
                Decimal(self.gpu_hours_limit or 0),
                "GPU-hours",
            )
        else:
            spent, limit, unit = to_cents(self.spent.cost), self.limit or Decimal(0), currency
        return Spend(
            state=SpendState(self.state),
            policy=SpendPolicy(self.policy),
            spent=spent,
            limit=limit,
            currency=unit,
            period=PERIOD_WORDS.get(self.period, "month"),
        )


def team_inputs(
    snapshot: Snapshot,
    result: PassResult,
    *,
    namespaces: Mapping[str, tuple[str, ...]],
    waiting: Mapping[str, int],
) -> dict[str, BudgetInputs]:
    """Each team's inputs after a pass. `namespaces`: namespace -> the budgets that claim
    it (first the one it is charged to); `waiting`: team -> jobs held before the core
    (a namespace conflict, an invalid spec) that count as queued."""
    victims = {v.key for v in result.victims}
    admitted_now = {a.key for a in result.admitted}
    use: dict[str, dict[str, Resources]] = {}
    admitted: dict[str, int] = {}
    for w in snapshot.workloads:
        if not ((w.admitted and w.key not in victims) or w.key in admitted_now):
            continue
        replicas = w.pods + (w.admitted_extra if w.admitted else 0)
        flavours = use.setdefault(w.team, {})
        held = flavours.get(w.flavour, Resources())
        flavours[w.flavour] = Resources(
            held.gpus + w.per_pod.gpus * replicas,
            held.cpu + w.per_pod.cpu * replicas,
            held.memory + w.per_pod.memory * replicas,
        )
        admitted[w.team] = admitted.get(w.team, 0) + 1
    queued: dict[str, int] = dict(waiting)
    for p in result.pending:
        queued[p.team] = queued.get(p.team, 0) + 1
    owned: dict[str, list[str]] = {}
    conflicts: dict[str, dict[str, tuple[str, ...]]] = {}
    for namespace, claimants in namespaces.items():
        if not claimants:
            continue
        owned.setdefault(claimants[0], []).append(namespace)
        if len(claimants) > 1:
            for claimant in claimants:
                others = tuple(sorted(c for c in claimants if c != claimant))
                conflicts.setdefault(claimant, {})[namespace] = others
    out: dict[str, BudgetInputs] = {}
    for team in snapshot.teams:
        out[team.name] = BudgetInputs(
            namespaces=tuple(sorted(owned.get(team.name, ()))),
            conflicts=conflicts.get(team.name) or None,
            usage=use.get(team.name) or None,
            nominal={q.flavour: q.nominal for q in team.quotas} or None,
            admitted=admitted.get(team.name, 0),
            queued=queued.get(team.name, 0),
        )
    return out


def _windows(period: str, now: datetime, tz: str) -> tuple[Window, Window]:
    start, end = period_bounds(period, now, tz)  # type: ignore[arg-type]
    p_start, p_end = previous_period(period, now, tz)  # type: ignore[arg-type]
    return Window(start, end), Window(p_start, p_end)


@dataclass(frozen=True, slots=True)
class FinishedCharge:
    """A finished pod's charge in a budget's two periods, as `budget_figures` computed it
    (valid while its intervals, its flavour's rates and the periods are these)."""

    usages: tuple[PodUsage, ...]
    rates: Rates
    current: Window
    previous: Window
    in_current: Charge
    in_previous: Charge


FinishedCharges = MutableMapping[str, FinishedCharge]
"""Pod uid -> its FinishedCharge: kept by the caller between calls of `budget_figures`."""


def budget_figures(
    spec: ResourceBudgetSpec,
    ledger: Ledger,
    pods: Iterable[PodCharge],
    *,
    rates: Mapping[str, Rates],
    now: datetime,
    tz: str = "UTC",
    finished: FinishedCharges | None = None,
) -> BudgetFigures:
    """Spend of the current and previous period: the ledger plus the live pods (those
    not settled), each clipped to the period and priced by its flavour. `finished` keeps
    the charges of pods that ended between calls: thousands of finished pods wait for
    the pod garbage collector, and their charge never changes (the same exact figures,
    computed once)."""
    policy = spec.spend
    period = policy.period if policy is not None else "Monthly"
    current, previous = _windows(period, now, tz)
    ledger = ledger.rolled(current, previous)
    settled = set(ledger.settled_pods)
    live = live_previous = Charge()
    hour_ago = now - timedelta(hours=1)
    before_last_hour = Decimal(0)
    for pod in pods:
        if pod.uid in settled:
            continue
        pod_rates = rates.get(pod.flavor or "", Rates())
        ended = finished_by(pod.usages, now) if finished is not None else None
        known = finished.get(pod.uid) if finished is not None and ended is not None else None
        if (
            known is not None
            and known.usages == pod.usages
            and known.rates == pod_rates
            and known.current == current
            and known.previous == previous
        ):
            in_current, in_previous = known.in_current, known.in_previous
        else:
            in_current = charge_within(pod.usages, pod_rates, current.start, current.end, now)
            in_previous = charge_within(pod.usages, pod_rates, previous.start, previous.end, now)
            if finished is not None and ended is not None:
                finished[pod.uid] = FinishedCharge(
                    pod.usages, pod_rates, current, previous, in_current, in_previous
                )
        live += in_current
        live_previous += in_previous
        if hour_ago > current.start:
            if ended is not None and ended <= hour_ago:
                # All of it ran before the last hour, and inside the current period's
                # part of it: its charge there is its current charge.
                before_last_hour += in_current.cost
            else:
                before_last_hour += charge_within(
                    pod.usages, pod_rates, current.start, hour_ago, now
                ).cost
    spent = ledger.settled + live
    verdict = spend_verdict(
        spent=spent.cost,
        limit=Decimal(policy.limit) if policy is not None and policy.limit is not None else None,
        gpu_hours=spent.gpu_hours,
        gpu_hours_limit=policy.gpu_hours if policy is not None else None,
        warn_at=policy.warn_at if policy is not None else (),
    )
    return BudgetFigures(
        current=current,
        previous=previous,
        spent=spent,
        previous_spent=ledger.previous_settled + live_previous,
        # Settled charges are counted as older than an hour: a pod is settled when it
        # is gone, and the burn rate is about what runs now.
        spent_an_hour_ago=ledger.settled.cost + before_last_hour,
        ledger=ledger,
        period=period,
        state=verdict.state,
        threshold=verdict.threshold,
        fraction=verdict.fraction,
        limiting=verdict.limiting,
        policy=policy.when_exceeded if policy is not None else "Queue",
        limit=Decimal(policy.limit) if policy is not None and policy.limit is not None else None,
        gpu_hours_limit=policy.gpu_hours if policy is not None else None,
    )


def format_cpu(millicores: int) -> str:
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def format_memory(size: int) -> str:
    for suffix, unit in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def _gpu_hours(value: Decimal) -> str:
    return str(value.quantize(GPU_HOURS_STEP, rounding=ROUND_HALF_EVEN))


def _usage(inputs: BudgetInputs) -> dict[str, Any]:
    out: dict[str, Any] = {}
    nominal = inputs.nominal or {}
    usage = inputs.usage or {}
    # Every flavour of the quota is shown, idle ones at zero, plus any borrowed from.
    for flavor in sorted(set(usage) | set(nominal)):
        used = usage.get(flavor, Resources())
        quota = nominal.get(flavor)

        def borrowed(value: int, limit: int | None) -> int:
            return max(0, value - limit) if limit is not None else 0

        gpus = borrowed(used.gpus, quota.gpus if quota else 0)
        cpu = borrowed(used.cpu, quota.cpu if quota else None)
        memory = borrowed(used.memory, quota.memory if quota else None)
        out[flavor] = {
            "gpus": used.gpus,
            "cpu": format_cpu(used.cpu),
            "memory": format_memory(used.memory),
            "borrowedGpus": gpus,
            "borrowedCpu": format_cpu(cpu),
            "borrowedMemory": format_memory(memory),
        }
    return out


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _spend_message(figures: BudgetFigures, currency: str) -> str:
    word = PERIOD_WORDS.get(figures.period, "month")
    parts = []
    if figures.limit is not None:
        parts.append(f"{to_cents(figures.spent.cost)} of {figures.limit} {currency}")
    if figures.gpu_hours_limit is not None:
        parts.append(
            f"{figures.spent.gpu_hours.quantize(Decimal('0.01'))} of "
            f"{figures.gpu_hours_limit} GPU-hours"
        )
    return f"this {word}: " + ", ".join(parts) if parts else f"this {word}"


def _crossing_event(
    old_state: str, old_threshold: object, figures: BudgetFigures, currency: str
) -> tuple[str, str, str] | None:
    """(type, reason, message) when the state or the threshold reached changed."""
    new_level = (_STATE_RANK[figures.state], figures.threshold or 0.0)
    try:
        old_level = (_STATE_RANK.get(old_state, 0), float(old_threshold or 0.0))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        old_level = (_STATE_RANK.get(old_state, 0), 0.0)
    if new_level == old_level:
        return None
    spent = _spend_message(figures, currency)
    if figures.state == "Exceeded":
        action = {
            "Queue": "new work of the team waits until the next period or a higher limit",
            "Suspend": "the team's running work is suspended and new work waits",
            "Warn": "work continues (policy Warn)",
        }[figures.policy]
        return "Warning", BUDGET_EXCEEDED, f"budget exceeded {spent}: {action}"
    if figures.state == "Warning":
        kind = "Warning" if new_level > old_level else "Normal"
        assert figures.threshold is not None
        return kind, BUDGET_WARNING, f"{_percent(figures.threshold)} of the budget spent {spent}"
    return "Normal", "BudgetOk", f"budget within its limits again {spent}"


def invalid_budget_status(budget: Mapping[str, Any], message: str, now: datetime) -> dict[str, Any]:
    """The status of a budget whose spec the models refuse (stored under an older, looser
    CRD): the rest of its status as it was, and the condition InvalidSpec saying what to
    fix. Such a budget gives its team no quota (the pass skips it)."""
    metadata = budget.get("metadata") or {}
    generation = int(metadata.get("generation") or 0)
    out = dict(budget.get("status") or {})
    out["conditions"] = with_condition(
        out.get("conditions"), INVALID_SPEC, "True", "InvalidSpec", message, generation, now
    )
    return out


def budget_status(
    budget: Mapping[str, Any],
    inputs: BudgetInputs,
    figures: BudgetFigures,
    *,
    currency: str,
    now: datetime,
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """The wanted status of a ResourceBudget, and the Events (type, reason, message) of
    the crossings since the status it has."""
    metadata = budget.get("metadata") or {}
    generation = int(metadata.get("generation") or 0)
    old: Mapping[str, Any] = budget.get("status") or {}
    old_spend: Mapping[str, Any] = old.get("spend") or {}
    has_limits = figures.limit is not None or figures.gpu_hours_limit is not None
    events: list[tuple[str, str, str]] = []

    spend: dict[str, Any] = {
        "periodStart": timestamp(figures.current.start),
        "periodEnd": timestamp(figures.current.end),
        "spent": str(to_cents(figures.spent.cost)),
        "gpuHours": _gpu_hours(figures.spent.gpu_hours),
        "currency": currency,
        "previousPeriod": {
            "periodStart": timestamp(figures.previous.start),
            "periodEnd": timestamp(figures.previous.end),
            "spent": str(to_cents(figures.previous_spent.cost)),
            "gpuHours": _gpu_hours(figures.previous_spent.gpu_hours),
        },
    }
    outlook = forecast(
        spent=figures.spent.cost,
        spent_an_hour_ago=figures.spent_an_hour_ago,
        period_start=figures.current.start,
        period_end=figures.current.end,
        now=now,
    )
    spend["forecast"] = str(to_cents(outlook.at_period_end))
    spend["burnRatePerHour"] = str(to_cents(outlook.burn_rate_last_hour))
    spend["periodBurnRatePerHour"] = str(to_cents(outlook.burn_rate_period))
    if has_limits:
        spend["state"] = figures.state
        if figures.threshold is not None:
            spend["threshold"] = figures.threshold
        event = _crossing_event(
            str(old_spend.get("state") or "Ok"), old_spend.get("threshold"), figures, currency
        )
        if event is not None:
            events.append(event)

    conditions = old.get("conditions")
    if any(c.get("type") == INVALID_SPEC for c in conditions or ()):
        conditions = with_condition(
            conditions, INVALID_SPEC, "False", "SpecValid", "the spec is valid", generation, now
        )
    conflicts = inputs.conflicts or {}
    if conflicts:
        message = "; ".join(
            f"namespace {ns} is also claimed by {', '.join(others)}"
            for ns, others in sorted(conflicts.items())
        )
        message += ": work there waits until one budget alone claims each namespace"
        was = next((c for c in conditions or () if c.get("type") == NAMESPACE_CONFLICT), None)
        if was is None or was.get("status") != "True" or was.get("message") != message:
            events.append(("Warning", NAMESPACE_CONFLICT, message))
        conditions = with_condition(
            conditions,
            NAMESPACE_CONFLICT,
            "True",
            "NamespaceClaimedTwice",
            message,
            generation,
            now,
        )
    else:
        conditions = with_condition(
            conditions,
            NAMESPACE_CONFLICT,
            "False",
            "NoConflict",
            "no other budget claims this budget's namespaces",
            generation,
            now,
        )
    if has_limits:
        spent = _spend_message(figures, currency)
        if figures.state in ("Warning", "Exceeded"):
            reached = figures.threshold if figures.state == "Warning" else 1.0
            assert reached is not None
            conditions = with_condition(
                conditions,
                BUDGET_WARNING,
                "True",
                f"Reached{round(reached * 100)}Percent",
                f"{_percent(reached)} of the budget spent {spent}",
                generation,
                now,
            )
        else:
            conditions = with_condition(
                conditions,
                BUDGET_WARNING,
                "False",
                "BelowThresholds",
                f"below every warnAt threshold {spent}",
                generation,
                now,
            )
        if figures.state == "Exceeded":
            reason = {"Queue": "NewWorkHeld", "Suspend": "WorkSuspended", "Warn": "WarnOnly"}
            conditions = with_condition(
                conditions,
                BUDGET_EXCEEDED,
                "True",
                reason[figures.policy],
                f"budget exceeded {spent} (whenExceeded: {figures.policy})",
                generation,
                now,
            )
        else:
            conditions = with_condition(
                conditions,
                BUDGET_EXCEEDED,
                "False",
                "WithinBudget",
                f"within budget {spent}",
                generation,
                now,
            )
    else:
        conditions = [
            c for c in conditions or () if c.get("type") not in (BUDGET_WARNING, BUDGET_EXCEEDED)
        ]

    status: dict[str, Any] = {
        "observedGeneration": generation,
        "namespaces": sorted(inputs.namespaces),
        "usage": _usage(inputs),
        "admitted": inputs.admitted,
        "queued": inputs.queued,
        "spend": spend,
        "ledger": figures.ledger.to_status(),
        "conditions": conditions,
    }
    return status, events


def spend_from_status(budget: Mapping[str, Any]) -> Spend | None:
    """The team's spend state as its budget's status last recorded it: what the admission
    core uses until this replica's budget writer has computed it afresh (a restart, a new
    leader), so an exceeded budget never admits work in between. None: no state recorded."""
    spend_status = (budget.get("status") or {}).get("spend") or {}
    state = spend_status.get("state")
    if state not in ("Ok", "Warning", "Exceeded"):
        return None
    policy = (budget.get("spec") or {}).get("spend") or {}
    try:
        spent = Decimal(str(spend_status.get("spent") or "0"))
        limit = Decimal(str(policy.get("limit") or "0"))
    except ArithmeticError:
        spent = limit = Decimal(0)
    return Spend(
        state=SpendState(state),
        policy=SpendPolicy(policy.get("whenExceeded") or "Queue"),
        spent=spent,
        limit=limit,
        currency=str(spend_status.get("currency") or "USD"),
        period=PERIOD_WORDS.get(str(policy.get("period") or "Monthly"), "month"),
    )
