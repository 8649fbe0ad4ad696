"""ModelDeployments, their Deployments and autoscalers: watch events into the cache.

As for TrainingJobs: `kopf.on.event` only (no finalizer or annotation on the user's
object), nothing written here. Their pods come through the pod handler of
`trainingjob.py` (one pod watch, selecting every pod of a Cadre workload).
"""

from __future__ import annotations

from typing import Any

import kopf

from cadre.controller.runtime.context import Runtime
from cadre.core.api.names import LABEL_MODELDEPLOYMENT


@kopf.on.event("cadre.dev", "v1alpha1", "modeldeployments")
async def modeldeployment_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    memo.cache.apply_serving("modeldeployment", event["type"], event["object"])


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MODELDEPLOYMENT: kopf.PRESENT})
async def deployment_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    memo.cache.apply_serving("deployment", event["type"], event["object"])


@kopf.on.event(
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    labels={LABEL_MODELDEPLOYMENT: kopf.PRESENT},
)
async def autoscaler_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    memo.cache.apply_serving("autoscaler", event["type"], event["object"])
