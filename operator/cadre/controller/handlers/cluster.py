"""ResourceBudgets, Nodes and Namespaces into the cache; the operator's start and stop.

At start every replica lists the cluster into the cache before Kopf's watches deliver
anything and before it stands for leader; the leader decides only from a filled cache.
"""

from __future__ import annotations

from typing import Any

import kopf

from cadre.controller.runtime.context import Runtime


@kopf.on.event("cadre.dev", "v1alpha1", "resourcebudgets")
async def budget_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    obj = event["object"]
    if memo.cache.apply("budget", event["type"], obj) and event["type"] != "DELETED":
        # A new limit or policy changes the spend state at once, not at the next refresh.
        memo.budgets.budget_changed(str(obj["metadata"]["name"]))


@kopf.on.event("", "v1", "nodes")
async def node_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    memo.cache.apply("node", event["type"], event["object"])


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    memo.cache.apply("namespace", event["type"], event["object"])


@kopf.on.startup(id="cadre-start")
async def start(memo: Runtime, **_: Any) -> None:
    """Fill the cache, then stand for leader (the leader starts the writers)."""
    await memo.start()


@kopf.on.cleanup(id="cadre-stop")
async def stop(memo: Runtime, **_: Any) -> None:
    await memo.stop()
