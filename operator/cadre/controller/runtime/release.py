"""`cadre release-finalizers`: settle and release pods held by Cadre's accounting finalizer
when no operator does it: for an uninstall (`--all`), and as a bound on how long a
deleted pod can wait while the operator is absent (`--held-longer-than`, run by a
CronJob beside the operator).

It writes like the operator, so it first takes the operator's leader Lease (only the
leader writes): while an operator leads, it does nothing and says so (the operator
releases pods itself). Holding the Lease, it reads the cluster like a starting operator,
plus every pod that carries the finalizer (also those whose labels were removed),
charges the chosen ones to their teams' ledgers (the same conflict-safe write), and only
then removes their finalizer. A team whose ledger cannot be written keeps its pods held,
unless `--release-uncharged` says that unblocking deletion matters more than the charge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from cadre.controller.budget_writer import BudgetWriter
from cadre.controller.cache import PODS, Cache
from cadre.controller.client import ApiClient, service_account_namespace
from cadre.controller.leader import LeaderElector, default_identity
from cadre.controller.runtime.context import DEFAULT_LEASE_NAMESPACE
from cadre.controller.runtime.logs import configure_logging
from cadre.core.accounting import PodCharge
from cadre.core.api.config import OperatorConfig
from cadre.core.api.names import ACCOUNTING_FINALIZER
from cadre.core.cluster.snapshot import build_snapshot
from cadre.core.cluster.store import Store
from cadre.core.scheduling import schedule
from cadre.core.units.duration import parse_duration

log = structlog.get_logger("cadre.release")

EXIT_OPERATOR_LEADS = 0
"""Not an error: a leading operator releases pods itself (the CronJob's usual run)."""
EXIT_HELD = 3
"""Some pods stay held: their team's ledger could not be written."""


async def release_finalizers(
    args: argparse.Namespace, config: OperatorConfig, client: ApiClient
) -> int:
    election = config.leader_election
    acquired = asyncio.Event()
    elector = LeaderElector(
        client,
        election,
        identity=f"release-{args.identity or default_identity()}",
        namespace=election.lease_namespace
        or service_account_namespace()
        or DEFAULT_LEASE_NAMESPACE,
        on_started_leading=_set(acquired),
        on_stopped_leading=lambda: None,
    )
    client.write_gate = elector.may_write
    leading = asyncio.create_task(elector.run(), name="cadre release lease")
    wait = args.lease_wait
    if wait is None:
        wait = 2.0 * election.lease_duration_seconds
    try:
        try:
            await asyncio.wait_for(acquired.wait(), timeout=wait)
        except TimeoutError:
            print(
                f"the operator ({elector.holder}) holds the leader Lease: it releases pods "
                "itself; nothing done"
            )
            return EXIT_OPERATOR_LEADS
        return await _settle_and_release(args, config, client)
    finally:
        await elector.release()
        leading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leading


def _set(event: asyncio.Event) -> Callable[[], Coroutine[Any, Any, None]]:
    async def started() -> None:
        event.set()

    return started


async def _settle_and_release(
    args: argparse.Namespace, config: OperatorConfig, client: ApiClient
) -> int:
    store = Store()
    budgets = BudgetWriter(client, store, config, lambda: None)
    cache = Cache(
        client,
        store,
        config,
        changed=lambda: None,
        reconcile=lambda key: None,
        pod_changed=lambda pod: None,
    )
    await cache.fill()
    # Pods whose labels were removed are not in the labelled listing: read every pod.
    async for page in client.pages(PODS):
        for listed in page:
            if ACCOUNTING_FINALIZER in ((listed.get("metadata") or {}).get("finalizers") or ()):
                cache.apply_pod(listed, event_type=None)
    # The budgets' usage figures as the operator's pass would compute them (no writes).
    build = build_snapshot(store, config)
    budgets.after_pass(build, schedule(build.snapshot))

    now = datetime.now(UTC)
    chosen = _chosen(store, now, args)
    if not chosen:
        print("no pod held by Cadre's accounting finalizer to release")
        return 0
    released = await budgets.settle_pods(chosen, now)
    done = {p.uid for p in released}
    held = [p for p in chosen if p.uid not in done]
    if held and args.release_uncharged:
        uncharged = [replace(p, team=None) for p in held]
        await budgets.settle_pods(uncharged, now)
        log.warning("released without a charge", pods=[p.name for p in held])
        print(f"{len(held)} pod(s) released WITHOUT a charge (their cost is lost)")
        held = []
    print(
        f"{len(released)} pod(s) charged to their teams and released"
        + (f"; {len(held)} still held (their ledger could not be written)" if held else "")
    )
    for pod in held:
        print(f"  held: {pod.namespace}/{pod.name} (team {pod.team})")
    return EXIT_HELD if held else 0


def _chosen(store: Store, now: datetime, args: argparse.Namespace) -> list[PodCharge]:
    """The pods to settle now, closed where their containers' end is not known."""
    held = [p for p in store.pods.values() if ACCOUNTING_FINALIZER in p.finalizers]
    if args.all:
        return [p.closed_at(min(now, p.deletion_due or now)) if p.running() else p for p in held]
    bound = timedelta(seconds=float(parse_duration(args.held_longer_than)))
    out: list[PodCharge] = []
    for pod in held:
        if pod.deletion_due is None or now - pod.deletion_due < bound:
            continue
        out.append(pod.closed_at(pod.deletion_due) if pod.running() else pod)
    return out


def run_release(args: argparse.Namespace) -> int:
    """The command's entry point (a synchronous wrapper)."""
    from cadre.controller.runtime.main import connect, load_config  # noqa: PLC0415

    config = load_config(args.config)
    configure_logging(args.log_format)
    client = connect(config, args.kubeconfig, "release-finalizers")

    async def main() -> int:
        try:
            return await release_finalizers(args, config, client)
        finally:
            await client.close()

    return asyncio.run(main())
