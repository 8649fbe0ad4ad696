"""The budget writer: ResourceBudget status, spend state, the ledger, and cost metrics.

One asyncio task beside the admission loop. Its first round waits for the loop's first
pass: a team's usage and counts are the pass's view, and a status written before it would
say the team uses nothing (each new leader rewrote its budgets twice that way). After that
it wakes after a pass that changed a team's usage or counts, when a pod of a Cadre Job is
going away, and every `accounting.refreshSeconds` (spend grows while work runs). Each
round it:

1. settles pods that are going: a deleted pod holding Cadre's accounting finalizer (its
   containers stopped), or a pod seen gone without it. Their charge goes into their
   team's ledger, the budget's status is written, and only then is the finalizer
   removed, so a pod never disappears before its cost is recorded, and a restart in
   between never charges it twice (the ledger names the pods it holds);
2. computes each budget's status (`cadre.core.budget.status`, pure), writes it when it
   differs, posts an Event for each crossing (warnAt thresholds, Exceeded, back to
   Ok), and gives the admission core each team's spend state (a change wakes the loop);
3. exports the figures as Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog
from prometheus_client import Counter
from pydantic import ValidationError

from cadre.controller.client import ApiClient, ApiError, NotLeaderError, budget_path, pod_path
from cadre.controller.status_writer import CONFLICT_RETRIES, post_event
from cadre.controller.tasks import BackgroundTask, wait_at_most
from cadre.controller.team_metrics import TeamFamily
from cadre.core.accounting import (
    EPOCH_CHARGE_START,
    Charge,
    Ledger,
    PodCharge,
    PodUsage,
    Rates,
    charge_within,
    finished_by,
)
from cadre.core.api.config import OperatorConfig
from cadre.core.api.names import ACCOUNTING_FINALIZER
from cadre.core.api.resourcebudget import ResourceBudgetSpec
from cadre.core.budget.status import (
    BudgetFigures,
    BudgetInputs,
    FinishedCharges,
    budget_figures,
    budget_status,
    invalid_budget_status,
    team_inputs,
)
from cadre.core.cluster.snapshot import SnapshotBuild
from cadre.core.cluster.store import Store
from cadre.core.objects import uid_of
from cadre.core.objects.events import event_about
from cadre.core.scheduling import PassResult
from cadre.core.training.lifecycle import status_patch
from cadre.core.workloads.errors import invalid_spec_message

log = structlog.get_logger("cadre.budgets")

# A node that never reports a deleted pod's containers stopped: settle it this long after
# its grace period ended, as stopped at the end of the grace period.
_LOST_NODE_GRACE: Final = timedelta(seconds=30)
_DEBOUNCE: Final = 0.2
_MIN_WRITE_INTERVAL: Final = 2.0
"""Seconds between two writes of one budget for usage changes (crossings go at once)."""

_TEAM = ["team"]
_TEAM_FLAVOR = ["team", "flavor"]
QUOTA_GPUS = TeamFamily("cadre_team_quota_gpus", "GPUs guaranteed to the team.", _TEAM_FLAVOR)
QUOTA_CPU = TeamFamily(
    "cadre_team_quota_cpu_cores", "CPU cores guaranteed to the team.", _TEAM_FLAVOR
)
QUOTA_MEMORY = TeamFamily(
    "cadre_team_quota_memory_bytes", "Memory guaranteed to the team.", _TEAM_FLAVOR
)
USAGE_GPUS = TeamFamily("cadre_team_usage_gpus", "GPUs admitted to the team now.", _TEAM_FLAVOR)
USAGE_CPU = TeamFamily("cadre_team_usage_cpu_cores", "CPU cores admitted now.", _TEAM_FLAVOR)
USAGE_MEMORY = TeamFamily("cadre_team_usage_memory_bytes", "Memory admitted now.", _TEAM_FLAVOR)
BORROWED_GPUS = TeamFamily(
    "cadre_team_borrowed_gpus", "Admitted GPUs beyond the team's guarantee.", _TEAM_FLAVOR
)
BORROWED_CPU = TeamFamily(
    "cadre_team_borrowed_cpu_cores", "Admitted CPU beyond the guarantee.", _TEAM_FLAVOR
)
BORROWED_MEMORY = TeamFamily(
    "cadre_team_borrowed_memory_bytes", "Admitted memory beyond the guarantee.", _TEAM_FLAVOR
)
WORKLOADS = TeamFamily("cadre_team_workloads", "The team's workloads by state.", ["team", "state"])
SPEND = TeamFamily(
    "cadre_budget_spend",
    "Money spent in the budget period (price list currency); period current or previous.",
    ["team", "period"],
)
GPU_HOURS = TeamFamily(
    "cadre_budget_gpu_hours", "GPU-hours used in the budget period.", ["team", "period"]
)
LIMIT = TeamFamily("cadre_budget_limit", "Money the team may spend per period.", _TEAM)
GPU_HOURS_LIMIT = TeamFamily("cadre_budget_gpu_hours_limit", "GPU-hours per period.", _TEAM)
FORECAST = TeamFamily("cadre_budget_forecast", "Expected spend at the end of the period.", _TEAM)
SPEND_RATIO = TeamFamily(
    "cadre_budget_spend_ratio", "Spent over limit (the first to run out counts).", _TEAM
)
STATE = TeamFamily("cadre_budget_state", "1 for the budget's spend state.", ["team", "state"])
GPU_SECONDS = TeamFamily(
    "cadre_gpu_seconds_total",
    "GPU-seconds used by Cadre workloads (counted while this process runs).",
    ["team", "namespace", "flavor"],
    kind="counter",
)
COST = TeamFamily(
    "cadre_cost_total",
    "Cost of Cadre workloads in the price list's currency (counted while this process runs).",
    ["team", "namespace", "flavor"],
    kind="counter",
)
SETTLED = Counter("cadre_pods_settled_total", "Pods whose charge went into a budget's ledger.")
REFRESHES = Counter(
    "cadre_budget_refreshes_total",
    "Rounds that recomputed every budget's spend (every accounting.refreshSeconds).",
)

_TEAM_GAUGES = (
    QUOTA_GPUS,
    QUOTA_CPU,
    QUOTA_MEMORY,
    USAGE_GPUS,
    USAGE_CPU,
    USAGE_MEMORY,
    BORROWED_GPUS,
    BORROWED_CPU,
    BORROWED_MEMORY,
    WORKLOADS,
    SPEND,
    GPU_HOURS,
    LIMIT,
    GPU_HOURS_LIMIT,
    FORECAST,
    SPEND_RATIO,
    STATE,
)
"""A budget's gauges, gone with the budget (its counters stay: what was spent was spent)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BudgetWriter(BackgroundTask):
    task_name = "cadre budgets"

    def __init__(
        self,
        client: ApiClient,
        store: Store,
        config: OperatorConfig,
        notify: Callable[[], None],
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__()
        self.client = client
        self._clock = clock
        self.store = store
        self.config = config
        self._notify_loop = notify
        self._rates = {f.name: Rates(*f.prices.as_decimals()) for f in config.flavors}
        self._inputs: dict[str, BudgetInputs] = {}
        self._passed = asyncio.Event()
        """Set by the first pass's `after_pass`: `_inputs` is the pass's view from then."""
        self._ledgers: dict[str, tuple[str, Ledger]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._last_write: dict[str, float] = {}
        self._counted: dict[str, Charge] = {}
        """Pod uid -> its charge already added to the counters by this process."""
        self._counted_finished: dict[str, tuple[PodUsage, ...]] = {}
        """Pod uid -> its intervals, all ended, once their whole charge is counted."""
        self._finished: FinishedCharges = {}
        """Finished pods' charges in their budget's periods (see `budget_figures`)."""
        self._baselined = False
        self._exported: set[str] = set()
        self._posting: set[asyncio.Task[None]] = set()
        self.writes = 0

    # -- control -------------------------------------------------------------------------
    def _starting(self) -> None:
        self._wake.set()  # a first round at once

    def after_pass(self, build: SnapshotBuild, result: PassResult) -> None:
        """Take the pass's view of each team; wake for the teams whose view changed."""
        claims: dict[str, tuple[str, ...]] = {}
        for namespace in self.store.namespaces:
            resolution = self.store.team_resolution(namespace)
            if resolution.team is not None:
                claims[namespace] = (resolution.team, *resolution.conflicts)
        waiting: dict[str, int] = {}
        for key in build.problems:
            info = build.info.get(key)
            if info is not None and info.team is not None:
                waiting[info.team] = waiting.get(info.team, 0) + 1
        inputs = team_inputs(build.snapshot, result, namespaces=claims, waiting=waiting)
        changed = {t for t, i in inputs.items() if self._inputs.get(t) != i}
        self._inputs = inputs
        self._passed.set()
        if changed:
            self._dirty |= changed
            self._wake.set()

    def sizes(self) -> dict[str, int]:
        """Entries kept per pod (a leak shows here)."""
        return {
            "budget_counted_pods": len(self._counted),
            "budget_finished_pods": len(self._finished),
        }

    def budget_changed(self, name: str) -> None:
        """A budget's spec changed (a limit, a policy): recompute its state now."""
        self._dirty.add(name)
        self._wake.set()

    def pod_changed(self, pod: PodCharge) -> None:
        """A pod event: wake when the pod is going (its charge is to be settled)."""
        if pod.gone or (pod.deleting and ACCOUNTING_FINALIZER in pod.finalizers):
            self._wake.set()

    # -- the task ------------------------------------------------------------------------
    async def run(self) -> None:
        refresh = float(self.config.accounting.refresh_seconds)
        next_full = 0.0
        await self._passed.wait()
        while True:
            await wait_at_most(self._wake.wait(), max(0.0, next_full - time.monotonic()))
            await asyncio.sleep(_DEBOUNCE)
            self._wake.clear()
            full = time.monotonic() >= next_full
            if full:
                next_full = time.monotonic() + refresh
            try:
                await self.settle()
                await self.refresh(full=full)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("budget round failed; retrying")
                await asyncio.sleep(1.0)
                self._wake.set()

    # -- settling ------------------------------------------------------------------------
    def _going(self, now: datetime) -> list[PodCharge]:
        out = []
        for pod in list(self.store.pods.values()):
            held = ACCOUNTING_FINALIZER in pod.finalizers
            if not (pod.gone or (pod.deleting and held)):
                continue
            if pod.running() and not pod.gone:
                if pod.deletion_due is None or now < pod.deletion_due + _LOST_NODE_GRACE:
                    continue  # its containers are still stopping: the node will say when
                out.append(pod.closed_at(pod.deletion_due))
                continue
            out.append(pod)
        return out

    async def settle(self) -> None:
        now = self._clock()
        going = self._going(now)
        if going:
            await self.settle_pods(going, now)

    async def settle_pods(self, going: Iterable[PodCharge], now: datetime) -> list[PodCharge]:
        """Record the charges of `going` in their teams' ledgers, then release their
        finalizers; returns the pods whose charge is recorded (or that no budget pays
        for). A team whose ledger write fails keeps its pods held."""
        by_team: dict[str | None, list[PodCharge]] = {}
        for pod in going:
            team = pod.team if pod.team in self.store.budgets else None
            by_team.setdefault(team, []).append(pod)
        release: list[PodCharge] = []
        for team, pods in by_team.items():
            if team is None:
                release += pods  # no budget to charge
                continue
            ledger = self._ledger(self.store.budgets[team])
            new = [p for p in pods if p.uid not in ledger.settled_pods]
            if new:
                settled = await self._write(team, now, force=True, settle=new)
                if settled is None:
                    continue  # not recorded: the pods stay held and are settled next round
                if settled:
                    SETTLED.inc(settled)
                    log.info("pods settled", team=team, pods=settled)
            release += pods  # in the ledger now (or already): their finalizer can go
        await asyncio.gather(*(self._release(p) for p in release))
        return release

    def _forget_pod(self, uid: str) -> None:
        """The pod is gone and its charge recorded: nothing is kept of it."""
        self._counted.pop(uid, None)
        self._counted_finished.pop(uid, None)
        self._finished.pop(uid, None)
        self.store.drop_pod(uid)

    async def _release(self, pod: PodCharge) -> None:
        """The pod's charge is recorded: remove Cadre's finalizer (if it has it), and
        forget a pod that is gone."""
        if pod.gone or ACCOUNTING_FINALIZER not in pod.finalizers:
            self._forget_pod(pod.uid)
            return
        index = pod.finalizers.index(ACCOUNTING_FINALIZER)
        try:
            updated = await self.client.json_patch(
                pod_path(pod.namespace, pod.name),
                [
                    {
                        "op": "test",
                        "path": f"/metadata/finalizers/{index}",
                        "value": ACCOUNTING_FINALIZER,
                    },
                    {"op": "remove", "path": f"/metadata/finalizers/{index}"},
                ],
            )
        except ApiError as err:
            if err.status == 404:
                self._forget_pod(pod.uid)
            elif err.status == 422:  # the list moved (the Job controller's finalizer)
                fresh = await self.client.get(pod_path(pod.namespace, pod.name))
                if fresh is None:
                    self._forget_pod(pod.uid)
                else:
                    finalizers = tuple((fresh.get("metadata") or {}).get("finalizers") or ())
                    self.store.upsert_pod(_with_finalizers(pod, finalizers))
                    self._wake.set()
            else:
                log.warning("releasing a settled pod", pod=pod.name, error=str(err))
            return
        finalizers = tuple((updated.get("metadata") or {}).get("finalizers") or ())
        self.store.upsert_pod(_with_finalizers(pod, finalizers))

    # -- status --------------------------------------------------------------------------
    def _pods_by_team(self) -> dict[str, list[PodCharge]]:
        out: dict[str, list[PodCharge]] = {}
        for pod in self.store.pods.values():
            if pod.team is not None:
                out.setdefault(pod.team, []).append(pod)
        return out

    def _ledger(self, budget: dict[str, Any]) -> Ledger:
        """The budget's ledger as its status holds it (parsed once per version)."""
        metadata = budget.get("metadata") or {}
        key = (str(metadata.get("name")), str(metadata.get("resourceVersion")))
        cached = self._ledgers.get(key[0])
        if cached is not None and cached[0] == key[1]:
            return cached[1]
        ledger = Ledger.from_status((budget.get("status") or {}).get("ledger"))
        self._ledgers[key[0]] = (key[1], ledger)
        return ledger

    def _figures(
        self,
        team: str,
        now: datetime,
        pods: Iterable[PodCharge] | None = None,
        settle: Iterable[PodCharge] = (),
    ) -> tuple[BudgetFigures, int] | None:
        """The budget's figures from its status's ledger, with the charges of `settle` (pods
        that went) added to it; and how many of those were not in the ledger yet."""
        budget = self.store.budgets.get(team)
        if budget is None:
            return None
        try:
            spec = ResourceBudgetSpec.model_validate(budget.get("spec") or {})
        except ValidationError:
            return None
        if pods is None:
            pods = [p for p in self.store.pods.values() if p.team == team]
        pods = list(pods)
        ledger = self._ledger(budget)
        ledger = ledger.forget_pods(set(ledger.settled_pods) - set(self.store.pods))
        settle = [p for p in settle if p.uid not in ledger.settled_pods]

        def figures_with(ledger: Ledger) -> BudgetFigures:
            return budget_figures(
                spec,
                ledger,
                pods,
                rates=self._rates,
                now=now,
                tz=self.config.timezone,
                finished=self._finished,
            )

        if settle:
            windows = figures_with(ledger)
            for pod in settle:
                self._count(pod, now)
                ledger = ledger.settle(
                    pod.uid,
                    pod.usages,
                    self._rates.get(pod.flavor or "", Rates()),
                    current=windows.current,
                    previous=windows.previous,
                    now=now,
                )
        return figures_with(ledger), len(settle)

    async def refresh(self, *, full: bool) -> None:
        now = self._clock()
        if not self._baselined:
            # Counters count what runs while this process runs: pods that ran before it
            # started are their starting point (the budget's status has the exact sums).
            for pod in self.store.pods.values():
                self._counted[pod.uid] = self._total(pod, now)
            self._baselined = True
        for pod in list(self.store.pods.values()):
            self._count(pod, now)
        pods = self._pods_by_team()
        names = sorted(self.store.budgets)
        wanted = names if full else sorted(self._dirty & set(names))
        self._dirty.clear()
        for name in wanted:
            await self._write(name, now, force=full, pods=pods.get(name, []))
        self._forget_metrics(set(names))
        for gone in set(self._ledgers) - set(names):  # budgets deleted
            self._ledgers.pop(gone, None)
            self._last_write.pop(gone, None)
        if full:
            REFRESHES.inc()

    async def _write(
        self,
        name: str,
        now: datetime,
        *,
        force: bool,
        pods: list[PodCharge] | None = None,
        settle: list[PodCharge] | None = None,
    ) -> int | None:
        """Compute and write one budget's status, with the charges of the pods in `settle`
        added to its ledger. The write carries the resourceVersion the ledger was read
        from: a 409 re-reads the budget and computes again, so a charge is never lost or
        counted twice, whoever wrote in between. Returns how many pods were settled, or
        None when the write failed."""
        path = budget_path(name)
        for _ in range(CONFLICT_RETRIES):
            budget = self.store.budgets.get(name)
            computed = self._figures(name, now, pods, settle or ())
            if computed is None or budget is None:
                if budget is not None:
                    await self._report_invalid(name, budget, now)
                return 0 if not settle else None
            figures, settled = computed
            self._spend_state(name, figures)
            inputs = self._inputs.get(name, BudgetInputs())
            self._export(name, budget, inputs, figures)
            status, events = budget_status(
                budget, inputs, figures, currency=self.config.currency, now=now
            )
            patch = status_patch(budget.get("status"), status)
            if patch is None:
                return settled
            due = (
                time.monotonic() - self._last_write.get(name, float("-inf")) >= _MIN_WRITE_INTERVAL
            )
            if not (force or events or due):
                self._dirty.add(name)
                self._wake.set()
                return settled
            base = str((budget.get("metadata") or {}).get("resourceVersion") or "")
            try:
                updated = await self.client.patch_status(path, patch, resource_version=base or None)
            except ApiError as err:
                if err.status == 404:
                    return 0 if not settle else None
                if err.status == 409:
                    fresh = await self.client.get(path)
                    if fresh is None or uid_of(fresh) != uid_of(budget):
                        return None  # gone, or a new budget of its name: its events bring it
                    self.store.upsert_budget(fresh, read=True)
                    continue
                log.warning("writing a budget's status", budget=name, error=str(err))
                return None
            except NotLeaderError:
                return None
            self.writes += 1
            self._last_write[name] = time.monotonic()
            self.store.upsert_budget(updated, written_from=base)
            for kind, reason, message in events:
                self._post(updated, kind, reason, message, now)
            return settled
        log.warning("a budget's status still conflicts; trying again later", budget=name)
        return None

    async def _report_invalid(self, name: str, budget: dict[str, Any], now: datetime) -> None:
        """A budget whose spec the models refuse gets the condition InvalidSpec (once: an
        unchanged status is not written again). A failed write is logged; the next round
        tries again."""
        try:
            ResourceBudgetSpec.model_validate(budget.get("spec") or {})
            return
        except ValidationError as err:
            message = invalid_spec_message(err)
        patch = status_patch(budget.get("status"), invalid_budget_status(budget, message, now))
        if patch is None:
            return
        base = str((budget.get("metadata") or {}).get("resourceVersion") or "")
        try:
            updated = await self.client.patch_status(
                budget_path(name), patch, resource_version=base or None
            )
        except (ApiError, NotLeaderError) as err:
            log.info("reporting an invalid budget failed", budget=name, error=str(err))
            return
        self.store.upsert_budget(updated, written_from=base)

    def _spend_state(self, name: str, figures: BudgetFigures) -> None:
        """Hand the admission core the team's spend state (a change wakes the loop)."""
        spend = figures.scheduling_spend(self.config.currency)
        previous = self.store.spend.get(name)
        self.store.spend[name] = spend
        if previous is None or (previous.state, previous.policy) != (spend.state, spend.policy):
            self._notify_loop()

    def _post(
        self, budget: dict[str, Any], kind: str, reason: str, message: str, now: datetime
    ) -> None:
        metadata = budget.get("metadata") or {}
        log.info("budget event", budget=metadata.get("name"), reason=reason, message=message)
        # A ResourceBudget is cluster-scoped: its Events live in "default", as a Node's
        # do, where `kubectl describe rb` finds them.
        event = event_about(
            {
                "apiVersion": "cadre.dev/v1alpha1",
                "kind": "ResourceBudget",
                "name": metadata.get("name"),
                "uid": metadata.get("uid"),
            },
            namespace="default",
            reason=reason,
            message=message,
            type_=kind,
            now=now,
        )

        task = asyncio.create_task(post_event(self.client, event))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    # -- metrics -------------------------------------------------------------------------
    def _total(self, pod: PodCharge, now: datetime) -> Charge:
        rates = self._rates.get(pod.flavor or "", Rates())
        return charge_within(pod.usages, rates, EPOCH_CHARGE_START, now, now)

    def _count(self, pod: PodCharge, now: datetime) -> None:
        if self._counted_finished.get(pod.uid) == pod.usages:
            return  # it ended, and all of it is counted: nothing can be added
        total = self._total(pod, now)
        before = self._counted.get(pod.uid, Charge())
        self._counted[pod.uid] = total
        labels = (pod.team or "", pod.namespace, pod.flavor or "")
        if total.gpu_seconds > before.gpu_seconds:
            GPU_SECONDS.labels(*labels).inc(float(total.gpu_seconds - before.gpu_seconds))
        if total.cost > before.cost:
            COST.labels(*labels).inc(float(total.cost - before.cost))
        if finished_by(pod.usages, now) is not None:
            self._counted_finished[pod.uid] = pod.usages

    def _export(
        self,
        team: str,
        budget: dict[str, Any],
        inputs: BudgetInputs,
        figures: BudgetFigures,
    ) -> None:
        self._exported.add(team)
        for flavor, quota in (inputs.nominal or {}).items():
            QUOTA_GPUS.labels(team, flavor).set(quota.gpus or 0)
            if quota.cpu is not None:
                QUOTA_CPU.labels(team, flavor).set(quota.cpu / 1000)
            if quota.memory is not None:
                QUOTA_MEMORY.labels(team, flavor).set(quota.memory)
        flavours = set(inputs.nominal or {}) | set(inputs.usage or {})
        for flavor in flavours:
            used = (inputs.usage or {}).get(flavor)
            nominal = (inputs.nominal or {}).get(flavor)
            gpus, cpu, memory = (used.gpus, used.cpu, used.memory) if used else (0, 0, 0)
            USAGE_GPUS.labels(team, flavor).set(gpus)
            USAGE_CPU.labels(team, flavor).set(cpu / 1000)
            USAGE_MEMORY.labels(team, flavor).set(memory)
            BORROWED_GPUS.labels(team, flavor).set(
                max(0, gpus - (nominal.gpus or 0 if nominal else 0))
            )
            n_cpu = nominal.cpu if nominal else None
            n_memory = nominal.memory if nominal else None
            BORROWED_CPU.labels(team, flavor).set(
                max(0, cpu - n_cpu) / 1000 if n_cpu is not None else 0
            )
            BORROWED_MEMORY.labels(team, flavor).set(
                max(0, memory - n_memory) if n_memory is not None else 0
            )
        WORKLOADS.labels(team, "admitted").set(inputs.admitted)
        WORKLOADS.labels(team, "queued").set(inputs.queued)
        SPEND.labels(team, "current").set(float(figures.spent.cost))
        SPEND.labels(team, "previous").set(float(figures.previous_spent.cost))
        GPU_HOURS.labels(team, "current").set(float(figures.spent.gpu_hours))
        GPU_HOURS.labels(team, "previous").set(float(figures.previous_spent.gpu_hours))
        if figures.limit is not None:
            LIMIT.labels(team).set(float(figures.limit))
        if figures.gpu_hours_limit is not None:
            GPU_HOURS_LIMIT.labels(team).set(figures.gpu_hours_limit)
        status_spend = ((budget.get("status") or {}).get("spend")) or {}
        if status_spend.get("forecast") is not None:
            FORECAST.labels(team).set(float(status_spend["forecast"]))
        SPEND_RATIO.labels(team).set(float(figures.fraction))
        for state in ("Ok", "Warning", "Exceeded"):
            STATE.labels(team, state).set(1 if figures.state == state else 0)

    def _forget_metrics(self, teams: set[str]) -> None:
        """Label sets of budgets that were deleted go (a bounded label space)."""
        for team in self._exported - teams:
            for gauge in _TEAM_GAUGES:
                gauge.remove_team(team)
        self._exported &= teams


def _with_finalizers(pod: PodCharge, finalizers: tuple[str, ...]) -> PodCharge:
    return replace(pod, finalizers=finalizers)


__all__ = ["BudgetWriter"]
