"""What the cluster offers, looked up once at start: Kubernetes' own gang scheduling.

`admission.nativeGangScheduling: Auto` (or Native) becomes Native when the API server serves
PodGroups (scheduling.k8s.io/v1alpha2, Kubernetes 1.36 with the GenericWorkload gate and
the group version enabled), Off otherwise. It is resolved before the cache is filled and
before anything is built, so every Job of this process is built one way (a Job built the
other way by an earlier process is rebuilt while it waits: `Reshaping`).
"""

from __future__ import annotations

from typing import Final

import structlog
from prometheus_client import Gauge

from cadre.controller.client import ApiClient, ApiError
from cadre.core.api.config import OperatorConfig
from cadre.core.training.children import POD_GROUP_API_VERSION

log = structlog.get_logger("cadre.discovery")

NATIVE_GANGS = Gauge(
    "cadre_native_gang_scheduling",
    "1 when multi-worker TrainingJobs get a PodGroup (kube-scheduler binds all workers or "
    "none), 0 when gangs rely on admission's node placement alone.",
)
POD_GROUPS_PATH: Final = f"/apis/{POD_GROUP_API_VERSION}"


async def serves_pod_groups(client: ApiClient) -> bool:
    """Does the API server serve PodGroups of the version Cadre writes?"""
    found = await client.get(POD_GROUPS_PATH)
    if found is None:
        return False
    return any(r.get("name") == "podgroups" for r in found.get("resources") or ())


async def resolve_native_gangs(client: ApiClient, config: OperatorConfig) -> None:
    """Turn `Auto` into Native or Off, in place (every part shares this config)."""
    admission = config.admission
    if admission.native_gang_scheduling != "Off":
        # Native is checked too: a Job naming a PodGroup the API server does not serve
        # would lose the field, and differ from what the spec builds for ever.
        try:
            served = await serves_pod_groups(client)
        except ApiError as err:  # discovery refused or down: the safe way is without
            log.warning("could not look up PodGroups; native gang scheduling off", error=str(err))
            served = False
        if admission.native_gang_scheduling == "Native" and not served:
            log.warning("nativeGangScheduling is Native, but PodGroups are not served: off")
        admission.native_gang_scheduling = "Native" if served else "Off"
    native = admission.native_gang_scheduling == "Native"
    NATIVE_GANGS.set(1 if native else 0)
    log.info(
        "gang scheduling",
        native=native,
        how="PodGroup per multi-worker TrainingJob" if native else "admission placement only",
    )
