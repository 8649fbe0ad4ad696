"""The ModelDeployment reconciler: level-based, like the TrainingJob reconciler.

`reconcile("md:namespace/name")` reads the view of the ModelDeployment the admission
pass reads too (`core/cluster/serving.py`: spec, admission, children as observed, the
replica plan) and brings the children to it:

- the Service (created with the first reconcile, kept while the object lives: a stopped
  model keeps its address);
- the stable and canary Deployments: created with the planned replicas (0 until the
  admission allows any); a new template is applied only when the plan rolls it (the
  surge replica is admitted, or the Deployment has no pod); replicas are set to the plan
  (with an autoscaler: kept within its planned bounds, the autoscaler moves them in
  between); a canary no longer in the spec is deleted once its replicas moved to stable;
- the HorizontalPodAutoscaler while admitted, its min and max what the quota admits;
- the status: phase, URL, replicas, canary split, the model's load state, cost of the
  period; an Event for every step it takes.

It never scales above what `status.admission` allows (the admission loop writes that
first) and never writes the user's spec. An API error raises: the work queue retries the
key with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final

import structlog

from cadre.controller.client import (
    ApiClient,
    ApiError,
    autoscaler_path,
    deployment_path,
    http_route_path,
    service_path,
)
from cadre.controller.status_writer import StatusWriter, utcnow
from cadre.core.api.config import OperatorConfig
from cadre.core.api.names import ANNOTATION_SPEC_HASH
from cadre.core.cluster.serving import ServingView, serving_view
from cadre.core.cluster.store import Store, stored_key
from cadre.core.objects import generation_of, owner_uids
from cadre.core.serving.children import (
    build_http_route,
    build_serving_children,
    build_track_services,
    service_url,
)
from cadre.core.serving.lifecycle import (
    ServingFacts,
    serving_event,
    serving_failed,
    serving_status,
)
from cadre.core.serving.observed import DeploymentRecord
from cadre.core.workloads.errors import BuildError

log = structlog.get_logger("cadre.modeldeployment")

_CHILD_RETRY_SECONDS: Final = 1.0
GATEWAY_API: Final = "/apis/gateway.networking.k8s.io/v1"
_DISCOVERY_SECONDS: Final = 300.0
"""How long the answer to "does the API server serve HTTPRoutes?" is kept."""
_ANNOTATION_PATH: Final = "/metadata/annotations/" + ANNOTATION_SPEC_HASH.replace("/", "~1")
# The parts of a Deployment's spec Cadre builds (replicas and selector aside: the plan
# sets the one, the other is immutable).
_DEPLOYMENT_FIELDS: Final = (
    "template",
    "strategy",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
)


class ModelDeploymentReconciler:
    def __init__(
        self,
        client: ApiClient,
        store: Store,
        config: OperatorConfig,
        *,
        status: StatusWriter,
        notify: Callable[[], None],
        waiting: Callable[[str], str | None],
        hashes: MutableMapping[Any, Any] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.config = config
        self.status = status
        self._notify = notify
        self._waiting = waiting
        """Why a ModelDeployment's extra replicas wait, from the last admission pass."""
        self.hashes: MutableMapping[Any, Any] = {} if hashes is None else hashes
        self._routes: tuple[bool, float] | None = None
        """(HTTPRoutes served, monotonic time asked)."""

    async def reconcile(self, key: str) -> float | None:
        stored = stored_key(key)
        md = self.store.modeldeployments.get(stored)
        if md is None or (md.get("metadata") or {}).get("deletionTimestamp"):
            return None  # the garbage collector takes the children
        namespace = stored.split("/", 1)[0]
        team = self.store.team_of(namespace)
        view = serving_view(self.store, stored, self.config, team, self.hashes)
        if view is None:
            return None
        if view.problem is not None or view.spec is None or view.plan is None:
            await self._cannot_serve(key, view)
            return None
        try:
            again = await self._apply(key, md, view)
        except BuildError as err:
            await self._cannot_serve(key, view, (err.reason, str(err)))
            return None
        except ApiError as err:
            if err.namespace_going:
                log.info("namespace deleted: no children made", modeldeployment=view.key)
                return None
            if err.status not in (400, 422):
                raise
            # The CRD let the spec through, the API server refuses what it builds: say
            # so with its words; nothing changes until the spec does.
            kind = err.path.split("/")[-2] if "/" in err.path else "object"
            await self._cannot_serve(
                key, view, ("InvalidSpec", f"the API server refused its {kind}: {err.message}")
            )
            return None
        if again is not None:
            return again
        await self._write_status(key, view)
        # Cost of the period moves while replicas run: look again at the refresh rate.
        return float(self.config.accounting.refresh_seconds) if view.running else None

    # -- children ----------------------------------------------------------------------
    async def _apply(self, key: str, md: dict[str, Any], view: ServingView) -> float | None:
        plan = view.plan
        assert plan is not None
        autoscaler = plan.autoscaler or (1, 1)
        children = build_serving_children(
            md,
            name=view.name,
            namespace=view.namespace,
            uid=view.uid,
            team=view.team,
            config=self.config,
            stable_replicas=plan.stable,
            canary_replicas=plan.canary,
            hpa_min=autoscaler[0],
            hpa_max=autoscaler[1],
        )
        service, _ = await self.client.create(children.service)
        if view.uid not in owner_uids(service):
            return await self._foreign(md, service, service_path(view.namespace, view.name))
        await self._update_service(service, children.service)
        observed = view.observed
        bounds = plan.autoscaler if view.admitted > 0 else None
        again = await self._ensure_deployment(
            md,
            children.stable,
            observed.stable,
            plan.stable,
            roll=plan.roll_stable,
            bounds=bounds,
        )
        if again is not None:
            return again
        if children.canary is not None:
            again = await self._ensure_deployment(
                md,
                children.canary,
                observed.canary,
                plan.canary,
                roll=plan.roll_canary,
                bounds=None,
            )
            if again is not None:
                return again
        elif observed.canary is not None and (plan.delete_canary or view.admitted == 0):
            await self._delete(
                md,
                deployment_path(view.namespace, observed.canary.name),
                observed.canary.uid,
                "CanaryRemoved",
                "the canary Deployment is removed: its replicas moved to stable",
            )
            self.store.delete_deployment(f"{view.namespace}/{observed.canary.name}")
        await self._ensure_autoscaler(md, view, children.hpa if bounds is not None else None)
        return await self._ensure_route(md, view)

    async def _routes_served(self) -> bool:
        """The Gateway API's HTTPRoute kind is served (its CRDs are installed)."""
        now = time.monotonic()
        if self._routes is None or now - self._routes[1] > _DISCOVERY_SECONDS:
            found = await self.client.get(GATEWAY_API)
            served = any(
                r.get("name") == "httproutes" for r in (found or {}).get("resources") or ()
            )
            self._routes = (served, now)
        return self._routes[0]

    async def _ensure_route(self, md: dict[str, Any], view: ServingView) -> float | None:
        """With a Gateway in the config and HTTPRoutes served: a Service per track and an
        HTTPRoute that splits by the exact weights (the canary's trafficPercent)."""
        gateway = self.config.serving.gateway
        if gateway is None or view.spec is None or not await self._routes_served():
            return None
        for wanted in build_track_services(
            md, name=view.name, namespace=view.namespace, uid=view.uid, team=view.team
        ):
            service, _ = await self.client.create(wanted)
            metadata = wanted["metadata"]
            path = service_path(metadata["namespace"], metadata["name"])
            if view.uid not in owner_uids(service):
                return await self._foreign(md, service, path)
            await self._update_service(service, wanted)
        canary = view.spec.canary.traffic_percent if view.spec.canary is not None else 0
        wanted = build_http_route(
            md,
            name=view.name,
            namespace=view.namespace,
            uid=view.uid,
            team=view.team,
            gateway=gateway,
            stable_weight=100 - canary,
            canary_weight=canary,
        )
        route, created = await self.client.create(wanted)
        path = http_route_path(view.namespace, view.name)
        if view.uid not in owner_uids(route):
            return await self._foreign(md, route, path)
        want_hash = wanted["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
        metadata = route.get("metadata") or {}
        if created or (metadata.get("annotations") or {}).get(ANNOTATION_SPEC_HASH) == want_hash:
            return None
        await self.client.json_patch(
            path,
            [
                {"op": "test", "path": "/metadata/uid", "value": metadata.get("uid")},
                {"op": "replace", "path": "/spec", "value": wanted["spec"]},
                _hash_operation(want_hash),
            ],
        )
        self._event(
            md, "RouteWeights", f"HTTPRoute {view.name}: stable {100 - canary}, canary {canary}"
        )
        return None

    async def _foreign(
        self, md: dict[str, Any], child: Mapping[str, Any], path: str
    ) -> float | None:
        """A child of the name exists and is not this ModelDeployment's: one of an
        earlier ModelDeployment of the same name is deleted (by UID) first; anyone
        else's is reported, never touched."""
        refs = (child.get("metadata") or {}).get("ownerReferences") or ()
        if any(ref.get("kind") == "ModelDeployment" for ref in refs):
            uid = str((child.get("metadata") or {}).get("uid", ""))
            if not (child.get("metadata") or {}).get("deletionTimestamp"):
                await self.client.delete(path, uid=uid)
            return _CHILD_RETRY_SECONDS
        kind = str(child.get("kind", "object"))
        name = str((child.get("metadata") or {}).get("name"))
        raise BuildError(
            f"a {kind} named {name} already exists in the namespace and is not this "
            "ModelDeployment's: rename one of them"
        )

    async def _update_service(self, current: Mapping[str, Any], wanted: dict[str, Any]) -> None:
        want_hash = wanted["metadata"]["annotations"][ANNOTATION_SPEC_HASH]
        metadata = current.get("metadata") or {}
        if (metadata.get("annotations") or {}).get(ANNOTATION_SPEC_HASH) == want_hash:
            return
        operations = [
            {"op": "test", "path": "/metadata/uid", "value": metadata.get("uid")},
            {"op": "replace", "path": "/spec/ports", "value": wanted["spec"]["ports"]},
            {"op": "replace", "path": "/spec/selector", "value": wanted["spec"]["selector"]},
            {"op": "replace", "path": "/metadata/labels", "value": wanted["metadata"]["labels"]},
            _hash_operation(want_hash),
        ]
        await self.client.json_patch(
            service_path(str(metadata.get("namespace")), str(metadata.get("name"))), operations
        )

    async def _ensure_deployment(
        self,
        md: dict[str, Any],
        wanted: dict[str, Any],
        record: DeploymentRecord | None,
        replicas: int,
        *,
        roll: bool,
        bounds: tuple[int, int] | None,
    ) -> float | None:
        metadata = wanted["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        path = deployment_path(namespace, name)
        uid = str(md["metadata"]["uid"])
        if record is None:
            wanted["spec"]["replicas"] = replicas
            created, fresh = await self.client.create(wanted)
            if uid not in owner_uids(created):
                return await self._foreign(md, created, path)
            self.store.upsert_deployment(created)
            if fresh:
                self._event(
                    md, "DeploymentCreated", f"Deployment {name} created ({replicas} replicas)"
                )
                return None
            record = self.store.deployment_of(namespace, name, uid)
            if record is None:
                return _CHILD_RETRY_SECONDS
        want_hash = str(metadata["annotations"][ANNOTATION_SPEC_HASH])
        target = replicas
        if bounds is not None:  # the autoscaler moves it between the bounds
            target = min(max(record.replicas, bounds[0]), bounds[1])
        operations: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/uid", "value": record.uid}
        ]
        steps: list[str] = []
        if roll and record.spec_hash != want_hash:
            for field in _DEPLOYMENT_FIELDS:
                operations.append(
                    {"op": "add", "path": f"/spec/{field}", "value": wanted["spec"][field]}
                )
            operations.append(
                {"op": "replace", "path": "/metadata/labels", "value": metadata["labels"]}
            )
            operations.append(_hash_operation(want_hash))
            steps.append("rolling update to the spec's template")
        if target != record.replicas:
            operations.append({"op": "replace", "path": "/spec/replicas", "value": target})
            steps.append(f"{record.replicas} -> {target} replicas")
        if not steps:
            return None
        updated = await self.client.json_patch(path, operations)
        self.store.upsert_deployment(updated)
        self._event(
            md,
            "Scaled" if len(steps) == 1 and "->" in steps[0] else "RollingUpdate",
            f"Deployment {name}: " + ", ".join(steps),
        )
        return None

    async def _ensure_autoscaler(
        self, md: dict[str, Any], view: ServingView, wanted: dict[str, Any] | None
    ) -> None:
        record = view.observed.autoscaler
        if wanted is None:
            if record is not None:
                await self._delete(
                    md,
                    autoscaler_path(view.namespace, record.name),
                    record.uid,
                    "AutoscalerRemoved",
                    "no replica is admitted: the autoscaler is removed until one is",
                )
                self.store.delete_autoscaler(f"{view.namespace}/{record.name}")
            return
        if record is None:
            created, _ = await self.client.create(wanted)
            if view.uid in owner_uids(created):
                self.store.upsert_autoscaler(created)
            return
        spec = wanted["spec"]
        want_hash = str(wanted["metadata"]["annotations"][ANNOTATION_SPEC_HASH])
        if record.spec_hash == want_hash:
            return
        operations: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/uid", "value": record.uid},
            {"op": "replace", "path": "/spec", "value": spec},
            _hash_operation(want_hash),
        ]
        updated = await self.client.json_patch(
            autoscaler_path(view.namespace, record.name), operations
        )
        self.store.upsert_autoscaler(updated)
        if (record.min_replicas, record.max_replicas) != (
            spec["minReplicas"],
            spec["maxReplicas"],
        ):
            self._event(
                md,
                "AutoscalerLimits",
                f"the autoscaler may run {spec['minReplicas']} to {spec['maxReplicas']} "
                "stable replicas (what the quota admits)",
            )

    async def _delete(
        self, md: dict[str, Any], path: str, uid: str, reason: str, message: str
    ) -> None:
        if await self.client.delete(path, uid=uid):
            self._event(md, reason, message)

    def _event(self, md: Mapping[str, Any], reason: str, message: str) -> None:
        metadata = md.get("metadata") or {}
        self.status.post(serving_event(md, reason=reason, message=message, now=utcnow()))
        log.info(message, modeldeployment=f"{metadata.get('namespace')}/{metadata.get('name')}")

    # -- status ------------------------------------------------------------------------
    async def _write_status(self, key: str, view: ServingView) -> None:
        assert view.spec is not None and view.plan is not None
        now = utcnow()
        if view.admission is None and not view.spec.stopped and not view.running:
            # Waiting for its gang: the queue-status writer says why. A new one says
            # Pending, with its address, until then.
            url = service_url(view.name, view.namespace, view.spec.runtime.port)
            await self.status.update(
                key,
                lambda status, md: (
                    None
                    if (status or {}).get("phase")
                    else {
                        **(status or {}),
                        "phase": "Pending",
                        "url": url,
                        "observedGeneration": generation_of(md),
                    }
                ),
            )
            return
        facts = ServingFacts(
            name=view.name,
            namespace=view.namespace,
            spec=view.spec,
            plan=view.plan,
            observed=view.observed,
            pods=tuple((self.store.serving_pods.get(view.key) or {}).values()),
            wanted=view.serving_wanted,
            waiting=self._waiting(key),
        )
        await self.status.update(
            key,
            lambda status, md: serving_status(
                status, generation=generation_of(md), now=now, facts=facts
            ),
        )

    async def _cannot_serve(
        self, key: str, view: ServingView, problem: tuple[str, str] | None = None
    ) -> None:
        reason, message = problem or view.problem or ("InvalidSpec", "the spec is not valid")
        log.info("cannot serve", modeldeployment=view.key, reason=reason)
        now = utcnow()
        await self.status.update(
            key,
            lambda status, md: serving_failed(
                status,
                generation=generation_of(md),
                now=now,
                reason=reason,
                message=message,
                team=view.team,
            ),
        )
        self._notify()  # its admission, if any, is released by the next pass


def _hash_operation(value: str) -> dict[str, Any]:
    """Set Cadre's spec-hash annotation (a JSON patch `add` replaces a present key; the
    annotations map exists on every object Cadre built)."""
    return {"op": "add", "path": _ANNOTATION_PATH, "value": value}
