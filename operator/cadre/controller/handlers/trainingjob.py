"""The pods of TrainingJobs and ModelDeployments: watch events into the cache.

TrainingJobs and their Jobs do not come through Kopf: Cadre's own list-and-watch takes
their events straight into the cache (`controller/watches.py`), as Kopf's per-object
workers were the limit at 15,000 TrainingJobs a minute. Neither uses Kopf's
create/update handlers: those would write a finalizer and a last-handled-configuration
annotation on every object (extra writes on the user's object, and drift that Argo CD
sees). Deletion needs no finalizer: the DELETED event frees the quota; the garbage
collector removes the children (owner references); pods keep Cadre's accounting
finalizer until their cost is recorded (`budget_writer.py`).
"""

from __future__ import annotations

from typing import Any

import kopf

from cadre.controller.runtime.context import Runtime


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
