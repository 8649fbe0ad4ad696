"""A ModelDeployment as the store sees it: its spec, admission, children, plan and wish.
Pure. The admission snapshot and the serving reconciler read the same view, so what the
pass counts and what the reconciler runs cannot disagree.

What a ModelDeployment holds of its team's quota is the larger of what its admission
allows and what runs (pods that exist, terminating ones included): replicas started by
someone else, or not yet stopped after a revocation, are counted until they are gone
(never over-admit). What it wants is `wanted_replicas`: replicas.min, or the autoscaler's
wish within [min, max], plus one surge replica while a rolling update or shift waits.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from cadre.core.api.config import OperatorConfig
from cadre.core.api.modeldeployment import ModelDeploymentSpec
from cadre.core.api.names import ANNOTATION_SPEC_HASH
from cadre.core.cluster.store import Store, serving_key
from cadre.core.objects import generation_of
from cadre.core.serving.children import build_deployment, deployment_name, hpa_name
from cadre.core.serving.lifecycle import admission_of
from cadre.core.serving.plan import (
    Observed,
    ReplicaPlan,
    plan_replicas,
    wanted_replicas,
)
from cadre.core.workloads.errors import BuildError, invalid_spec_message

__all__ = ["ServingView", "built_hashes", "serving_view"]


@dataclass(frozen=True, slots=True)
class ServingView:
    key: str
    """The store's key, "namespace/name"."""
    workload_key: str
    """The admission pass's key, "md:namespace/name"."""
    name: str
    namespace: str
    uid: str
    generation: int
    spec: ModelDeploymentSpec | None
    """None when the stored spec does not parse (`problem` says why)."""
    problem: tuple[str, str] | None
    """(reason, message) when it cannot be served as it is."""
    team: str | None
    admission: Mapping[str, Any] | None
    gang: int
    """Replicas held as the gang: min(replicas.min, the admitted gang)."""
    admitted: int
    """Replicas the admission allows in all (0 without one)."""
    running: int
    """Pods that exist."""
    observed: Observed
    plan: ReplicaPlan | None
    wanted: int
    """Replicas wanted admitted in all (`wanted_replicas`)."""
    serving_wanted: int
    """Replicas that should serve (`serving_wish`)."""
    hashes: Mapping[str, str | None]
    """What the spec builds now: the spec hash per track ("stable", "canary")."""

    @property
    def held(self) -> int:
        """What it holds of its team's quota: admitted, or running if more."""
        return max(self.admitted, self.running)


def _parse(md: Mapping[str, Any]) -> ModelDeploymentSpec | tuple[str, str]:
    try:
        return ModelDeploymentSpec.model_validate(md.get("spec") or {})
    except ValidationError as err:
        return "InvalidSpec", invalid_spec_message(err)


def built_hashes(
    md: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    team: str | None,
    config: OperatorConfig,
    cache: MutableMapping[Any, Any] | None = None,
) -> dict[str, str | None] | tuple[str, str]:
    """The spec hash of each track's Deployment as the spec builds it now (the canary's
    is None without a canary), or (reason, message) when it cannot be built. `cache` keeps
    it per (uid, generation, team)."""
    metadata = md.get("metadata") or {}
    cache_key = ("serving-hashes", str(metadata.get("uid", "")), generation_of(md), team)
    if cache is not None and cache_key in cache:
        cached: dict[str, str | None] | tuple[str, str] = cache[cache_key]
        return cached
    result: dict[str, str | None] | tuple[str, str]
    try:
        result = {}
        for track in ("stable", "canary"):
            if track == "canary" and spec.canary is None:
                result[track] = None
                continue
            built = build_deployment(
                spec,
                name=str(metadata.get("name", "")),
                namespace=str(metadata.get("namespace", "")),
                uid=str(metadata.get("uid", "")),
                team=team,
                config=config,
                track=track,
                replicas=0,
            )
            result[track] = str(built["metadata"]["annotations"][ANNOTATION_SPEC_HASH])
    except BuildError as err:
        result = (err.reason, str(err))
    if cache is not None:
        cache[cache_key] = result
    return result


def serving_view(
    store: Store,
    key: str,
    config: OperatorConfig,
    team: str | None,
    cache: MutableMapping[Any, Any] | None = None,
) -> ServingView | None:
    """The view of ModelDeployment `key` ("namespace/name"), None if the store has none."""
    md = store.modeldeployments.get(key)
    if md is None:
        return None
    metadata = md.get("metadata") or {}
    namespace, name = key.split("/", 1)
    uid = str(metadata.get("uid", ""))
    parsed = _parse(md)
    spec = parsed if isinstance(parsed, ModelDeploymentSpec) else None
    problem = parsed if isinstance(parsed, tuple) else None
    hashes: Mapping[str, str | None] = {}
    if spec is not None:
        built = built_hashes(md, spec, team, config, cache)
        if isinstance(built, tuple):
            problem = built
        else:
            hashes = built
    stable = store.deployment_of(namespace, deployment_name(name, "stable"), uid)
    canary = store.deployment_of(namespace, deployment_name(name, "canary"), uid)
    observed = Observed(
        stable=stable,
        canary=canary,
        autoscaler=store.autoscaler_of(namespace, hpa_name(name), uid),
        stable_current=stable is None or stable.spec_hash == hashes.get("stable"),
        canary_current=canary is None or canary.spec_hash == hashes.get("canary"),
    )
    admission = admission_of(md.get("status"), uid)
    admitted = 0
    gang = spec.replicas.min if spec is not None else 0
    if admission is not None:
        gang_admitted = int(admission.get("replicas") or 0)
        admitted = gang_admitted + int(admission.get("extraReplicas") or 0)
        gang = min(gang, gang_admitted) if spec is not None else gang_admitted
    plan = wanted = serving = None
    if spec is not None and problem is None:
        plan = plan_replicas(spec, admitted, gang, observed)
        wanted = wanted_replicas(spec, admitted, plan)
        serving = plan.wish
    return ServingView(
        key=key,
        workload_key=serving_key(key),
        name=name,
        namespace=namespace,
        uid=uid,
        generation=generation_of(md),
        spec=spec,
        problem=problem,
        team=team,
        admission=admission,
        gang=gang,
        admitted=admitted,
        running=store.serving_running(key),
        observed=observed,
        plan=plan,
        wanted=wanted or 0,
        serving_wanted=serving or 0,
        hashes=hashes,
    )
