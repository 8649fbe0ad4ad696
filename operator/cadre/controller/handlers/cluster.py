"""The cluster as admission sees it: ResourceBudgets, Nodes and Namespaces into the store.

At startup the store is filled by listing everything (and the Jobs and TrainingJobs)
before Kopf starts its watches; only then does the admission loop start. Afterwards the
watch events keep it current. Event handlers write nothing to the watched objects (no
finalizers, no annotations).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kopf

from cadre.controller.handlers.trainingjob import record_pod
from cadre.controller.runtime.context import Runtime
from cadre.core.api.names import LABEL_TRAININGJOB


def _mirror(
    event: kopf.RawEvent,
    memo: Runtime,
    upsert: Callable[[Mapping[str, Any]], bool],
    delete: Callable[[str], bool],
) -> None:
    """Keep the store's copy of one watched object current; a real change wakes the loop."""
    if event["type"] == "DELETED":
        changed = delete(str(event["object"]["metadata"]["name"]))
    else:
        changed = upsert(event["object"])
    if changed:
        memo.loop.notify()


@kopf.on.event("cadre.dev", "v1alpha1", "resourcebudgets")
async def budget_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    name = str(event["object"]["metadata"]["name"])

    def upsert(budget: Mapping[str, Any]) -> bool:
        changed = memo.store.upsert_budget(budget)
        if changed:
            # A new limit or policy changes the spend state at once, not at the next refresh.
            memo.budgets.budget_changed(name)
        return changed

    _mirror(event, memo, upsert, memo.store.delete_budget)


@kopf.on.event("", "v1", "nodes")
async def node_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    _mirror(event, memo, memo.store.upsert_node, memo.store.delete_node)


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    _mirror(event, memo, memo.store.upsert_namespace, memo.store.delete_namespace)


@kopf.on.startup(id="cadre-admission-start")
async def start_admission(memo: Runtime, logger: kopf.Logger, **_: Any) -> None:
    """List the cluster into the store, then start the admission loop."""
    kube, store = memo.kube, memo.store
    for budget in await kube.list("/apis/cadre.dev/v1alpha1/resourcebudgets"):
        store.upsert_budget(budget)
    for node in await kube.list("/api/v1/nodes"):
        store.upsert_node(node)
    for namespace in await kube.list("/api/v1/namespaces"):
        store.upsert_namespace(namespace)
    for job in await kube.list("/apis/batch/v1/jobs", label_selector=LABEL_TRAININGJOB):
        store.upsert_job(job)
    for tj in await kube.list("/apis/cadre.dev/v1alpha1/trainingjobs"):
        store.upsert_trainingjob(tj)
    # Pods last (their TrainingJobs are known): what ran while the operator was away is
    # read from the containers' timestamps, before any budget is written.
    for pod in await kube.list("/api/v1/pods", label_selector=LABEL_TRAININGJOB):
        record_pod(memo, pod)
    logger.info(
        f"store filled: {len(store.budgets)} budgets, {len(store.nodes)} nodes, "
        f"{len(store.trainingjobs)} trainingjobs, {len(store.jobs)} jobs "
        f"({sum(j.running for j in store.jobs.values())} admitted), {len(store.pods)} pods"
    )
    memo.loop.start()
    memo.budgets.start()


@kopf.on.cleanup(id="cadre-admission-stop")
async def stop_admission(memo: Runtime, **_: Any) -> None:
    await memo.loop.stop()
    await memo.budgets.stop()
    for _due, task in memo.ttl_timers.values():
        task.cancel()


@kopf.on.probe(id="admission", errors=kopf.ErrorsMode.PERMANENT)
def admission_probe(memo: Runtime, **_: Any) -> dict[str, Any]:
    if not memo.loop.alive():
        raise kopf.PermanentError("the admission loop has stopped")  # /healthz fails
    if not memo.budgets.alive():
        raise kopf.PermanentError("the budget writer has stopped")
    return {
        "trainingjobs": len(memo.store.trainingjobs),
        "admitted": sum(j.running for j in memo.store.jobs.values()),
        "nodes": len(memo.store.nodes),
    }
