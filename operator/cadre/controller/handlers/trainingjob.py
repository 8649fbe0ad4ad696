"""TrainingJobs, their Jobs and their pods: watch events into the cache.

`kopf.on.event`, not Kopf's create/update handlers: those would write a finalizer and a
last-handled-configuration annotation on every TrainingJob (extra writes on the user's
object, and drift that Argo CD sees). Deletion needs no finalizer: the DELETED event
frees the quota; the garbage collector removes the children (owner references); pods
keep Cadre's accounting finalizer until their cost is recorded (`budget_writer.py`).
"""

from __future__ import annotations

from typing import Any

import kopf

from cadre.controller.runtime.context import Runtime
from cadre.core.api.names import LABEL_TRAININGJOB


@kopf.on.event("cadre.dev", "v1alpha1", "trainingjobs")
async def trainingjob_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    memo.cache.apply_trainingjob(event["type"], event["object"])


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_TRAININGJOB: kopf.PRESENT})
async def job_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    memo.cache.apply_job(event["type"], event["object"])


@kopf.on.event("", "v1", "pods")
async def pod_event(event: kopf.RawEvent, memo: Runtime, **_: Any) -> None:
    """Pods of every Cadre workload (training and serving) feed accounting, and serving
    pods also say how their model loads: nothing is written for them here (the figures
    ride on status writes; the budget writer settles deleted pods). The watch selects
    pods by label on the server (settings.py); no filter here, so the
    DELETED event of a pod whose label was removed (it left the selection, it still
    exists) reaches the cache, which keeps it charged (`Cache.apply_pod`)."""
    memo.cache.apply_pod(
        event["object"], deleted=event["type"] == "DELETED", event_type=event["type"]
    )
