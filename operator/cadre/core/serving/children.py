"""The children of a ModelDeployment: a Deployment per track (stable, and canary when
there is one), a Service over both, a HorizontalPodAutoscaler with autoscaling, and for a
Gateway an HTTPRoute with per-track Services.

Pure: plain dicts (the API's wire form) out, nothing read or written. Same input, same
output, byte for byte: names derive from the ModelDeployment's name, maps are sorted.
Replica counts are arguments, never read from the spec: how many run is decided by the
admission (the team's quota) and the canary split, not by the builder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import ValidationError

from cadre.core.api.config import Flavor, GatewayRef, OperatorConfig
from cadre.core.api.modeldeployment import ModelDeployment, ModelDeploymentSpec, ModelSource
from cadre.core.api.names import (
    ACCOUNTING_FINALIZER,
    ANNOTATION_SPEC_HASH,
    LABEL_MODELDEPLOYMENT,
    LABEL_TRACK,
)
from cadre.core.serving.model import model_volumes_and_mounts
from cadre.core.workloads.common import (
    cadre_labels,
    merge_user_metadata,
    owner_reference,
    spec_hash,
)
from cadre.core.workloads.errors import BuildError, invalid_spec_message
from cadre.core.workloads.resources import (
    PodRequest,
    container_resources,
    place_on_flavour,
    pod_request,
    resolve_flavour,
)

KIND: Final = "ModelDeployment"
Track = Literal["stable", "canary"]
TRACKS: Final[tuple[Track, ...]] = ("stable", "canary")
SERVER_CONTAINER: Final = "server"
HTTP_PORT_NAME: Final = "http"

# Cadre's variables in the server; a user variable of the same name is dropped, so the
# server always reads the model Cadre put in place.
ENV_MODEL_URI: Final = "MODEL_URI"
ENV_MODEL_FORMAT: Final = "MODEL_FORMAT"
ENV_MODEL_PATH: Final = "MODEL_PATH"
RESERVED_ENV: Final = frozenset({ENV_MODEL_URI, ENV_MODEL_FORMAT, ENV_MODEL_PATH})

# Set by the Deployment controller on its pods; a user value would only be overwritten.
_POD_TEMPLATE_HASH_LABEL: Final = "pod-template-hash"

# Loading a large model (after its download) may take minutes: the startup probe allows
# 90 x 10s = 15 minutes before the liveness probe may restart the server.
STARTUP_PERIOD_SECONDS: Final = 10
STARTUP_FAILURE_THRESHOLD: Final = 90
# A rollout is reported stalled (Progressing=False) only after a download and a full
# startup window could have passed; the default 600s would flag a big model still loading.
PROGRESS_DEADLINE_SECONDS: Final = 1800
TERMINATION_GRACE_SECONDS: Final = 30
REVISION_HISTORY_LIMIT: Final = 3

# Scale down by at most one replica a minute, once use has been low for five minutes (the
# autoscaler's default window): a model that takes minutes to load is not dropped on a lull.
SCALE_DOWN_WINDOW_SECONDS: Final = 300
SCALE_DOWN_PODS_PER_PERIOD: Final = 1
SCALE_DOWN_PERIOD_SECONDS: Final = 60

GATEWAY_GROUP: Final = "gateway.networking.k8s.io"


def deployment_name(name: str, track: Track) -> str:
    """The Deployment of `track`: `<name>` for stable, `<name>-canary` for the canary.
    ModelDeployment names are at most 50 characters (the CRD checks it): both fit a label."""
    return name if track == "stable" else f"{name}-canary"


def service_name(name: str) -> str:
    """The Service over both tracks: the ModelDeployment's name, as in its URL."""
    return name


def track_service_name(name: str, track: Track) -> str:
    """The Service of one track, a backend of the HTTPRoute: `<name>-stable`, `<name>-canary`."""
    return f"{name}-{track}"


def hpa_name(name: str) -> str:
    """The HorizontalPodAutoscaler, which scales the stable Deployment: `<name>`."""
    return name


def http_route_name(name: str) -> str:
    """The HTTPRoute on the operator config's Gateway: `<name>`."""
    return name


def service_url(name: str, namespace: str, port: int) -> str:
    """The model's in-cluster URL (status.url)."""
    return f"http://{name}.{namespace}.svc:{port}"


def route_path_prefix(name: str, namespace: str) -> str:
    """The path of the model behind the Gateway: `/<namespace>/<name>`. The Gateway is
    shared, so each model needs its own match; the prefix is removed before the request
    reaches the server, which sees the same paths as through its Service."""
    return f"/{namespace}/{name}"


def as_serving_spec(
    md: ModelDeployment | ModelDeploymentSpec | Mapping[str, Any],
) -> ModelDeploymentSpec:
    """The spec of a model, or of a wire dict: a whole object (with `spec`) or a spec."""
    if isinstance(md, ModelDeploymentSpec):
        return md
    if isinstance(md, ModelDeployment):
        return md.spec
    raw = md.get("spec", md)  # a spec has no field named spec: a whole object has one
    try:
        return ModelDeploymentSpec.model_validate(raw)
    except ValidationError as err:
        # A stored spec the models refuse (kept from an older, looser CRD): reported as
        # InvalidSpec, never a reconcile retried forever.
        raise BuildError(invalid_spec_message(err)) from err


def replica_request(
    md: ModelDeployment | ModelDeploymentSpec | Mapping[str, Any],
) -> PodRequest:
    """What one serving replica asks of its flavour (stable and canary alike), for the
    admission. The downloader's small request is not counted: see `cadre.core.serving.model`."""
    return pod_request(as_serving_spec(md).resources)


def _labels(name: str, team: str | None, flavour: Flavor | None) -> dict[str, str]:
    return cadre_labels(
        name,
        team,
        flavour.name if flavour is not None else None,
        workload_label=LABEL_MODELDEPLOYMENT,
    )


def _track_labels(base: Mapping[str, str], track: Track) -> dict[str, str]:
    return dict(sorted({**base, LABEL_TRACK: track}.items()))


def _track_selector(name: str, track: Track) -> dict[str, str]:
    # Only labels that never change: a Deployment's selector is immutable, so never the
    # team or the flavour.
    return {LABEL_MODELDEPLOYMENT: name, LABEL_TRACK: track}


def _metadata(
    child: str,
    *,
    owner: str,
    namespace: str,
    uid: str,
    labels: dict[str, str],
    spec: Mapping[str, Any],
) -> dict[str, Any]:
    """A child's metadata; the spec-hash covers its labels and `spec`."""
    return {
        "name": child,
        "namespace": namespace,
        "labels": labels,
        "annotations": {ANNOTATION_SPEC_HASH: spec_hash({"labels": labels, "spec": spec})},
        "ownerReferences": [owner_reference(KIND, owner, uid)],
    }


def _http_get(path: str) -> dict[str, Any]:
    return {"path": path, "port": HTTP_PORT_NAME}


def _server_env(
    spec: ModelDeploymentSpec, source: ModelSource, mount_path: str
) -> list[dict[str, Any]]:
    # Cadre's variables come first so the user's values can refer to them ($(MODEL_PATH)).
    ours: list[dict[str, Any]] = [{"name": ENV_MODEL_URI, "value": source.uri}]
    if source.format is not None:
        ours.append({"name": ENV_MODEL_FORMAT, "value": source.format})
    ours.append({"name": ENV_MODEL_PATH, "value": mount_path})
    user = [e.to_wire() for e in spec.runtime.env or []]
    return ours + [e for e in user if e["name"] not in RESERVED_ENV]


def _server(
    spec: ModelDeploymentSpec,
    track: Track,
    flavour: Flavor | None,
    mounts: list[dict[str, Any]],
    mount_path: str,
) -> dict[str, Any]:
    runtime = spec.runtime
    source = _source(spec, track)
    image = runtime.image
    if track == "canary" and spec.canary is not None:
        image = spec.canary.image or runtime.image
    container: dict[str, Any] = {"name": SERVER_CONTAINER, "image": image}
    if runtime.args is not None:
        container["args"] = list(runtime.args)
    container["env"] = _server_env(spec, source, mount_path)
    container["ports"] = [
        {"name": HTTP_PORT_NAME, "containerPort": runtime.port, "protocol": "TCP"}
    ]
    resources = container_resources(spec.resources, flavour)
    if resources:
        container["resources"] = resources
    # One endpoint for all three probes: it answers once the model is loaded. Readiness
    # takes a replica out of the Service quickly; liveness waits for startup to succeed.
    path = runtime.readiness_path
    container["readinessProbe"] = {
        "httpGet": _http_get(path),
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    container["startupProbe"] = {
        "httpGet": _http_get(path),
        "periodSeconds": STARTUP_PERIOD_SECONDS,
        "failureThreshold": STARTUP_FAILURE_THRESHOLD,
    }
    container["livenessProbe"] = {
        "httpGet": _http_get(path),
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    # The tail of the log becomes the termination message of a crashed server, so the
    # status can say why the model failed to load without anyone running kubectl logs.
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    container["volumeMounts"] = mounts
    return container


def _source(spec: ModelDeploymentSpec, track: Track) -> ModelSource:
    if track == "canary":
        if spec.canary is None:
            # The caller's mistake, not the spec's: no BuildError (not a status condition).
            raise ValueError("a canary Deployment needs spec.canary")
        return spec.canary.model
    return spec.model


def _pod_template(
    spec: ModelDeploymentSpec,
    track: Track,
    labels: dict[str, str],
    flavour: Flavor | None,
    config: OperatorConfig,
) -> dict[str, Any]:
    user = spec.pod_metadata
    user_labels = {
        k: v
        for k, v in (user.labels if user and user.labels else {}).items()
        if k != _POD_TEMPLATE_HASH_LABEL
    }
    metadata: dict[str, Any] = {
        "labels": merge_user_metadata(user_labels, labels),
        # The ReplicaSet controller copies template finalizers to every pod: see
        # ACCOUNTING_FINALIZER.
        "finalizers": [ACCOUNTING_FINALIZER],
    }
    annotations = merge_user_metadata(user.annotations if user else None)
    if annotations:
        metadata["annotations"] = annotations
    files = model_volumes_and_mounts(_source(spec, track), config.serving)
    pod: dict[str, Any] = {"terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS}
    place_on_flavour(pod, flavour)
    if files.init_containers:
        pod["initContainers"] = files.init_containers
    pod["containers"] = [
        _server(spec, track, flavour, files.server_mounts, config.serving.model_mount_path)
    ]
    pod["volumes"] = files.volumes
    return {"metadata": metadata, "spec": pod}


def build_deployment(
    md: ModelDeployment | ModelDeploymentSpec | Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str,
    team: str | None,
    config: OperatorConfig,
    track: Track,
    replicas: int,
) -> dict[str, Any]:
    """The apps/v1 Deployment of one track, with `replicas` replicas.

    `name`, `namespace`, `uid`: the ModelDeployment's. `team`: the ResourceBudget it is
    charged to (None: no team label). The spec-hash annotation leaves `replicas` out: the
    count is Cadre's and the autoscaler's to change, the rest is the spec's. Raises a
    `BuildError` (UnknownFlavourError, InvalidModelUriError, ...) whose message is fit
    for a status condition; a canary track without spec.canary is one too.
    """
    if track not in TRACKS:
        raise ValueError(f"track must be one of {', '.join(TRACKS)}, got {track!r}")
    if replicas < 0:
        raise ValueError(f"replicas must not be negative, got {replicas}")
    spec = as_serving_spec(md)
    flavour = resolve_flavour(spec.resources, config)
    labels = _track_labels(_labels(name, team, flavour), track)
    deployment_spec: dict[str, Any] = {
        "revisionHistoryLimit": REVISION_HISTORY_LIMIT,
        "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
        "selector": {"matchLabels": _track_selector(name, track)},
        # A new replica must be ready before an old one goes: serving never dips below
        # the admitted count during a rollout (it briefly runs one replica more).
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": _pod_template(spec, track, labels, flavour, config),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            deployment_name(name, track),
            owner=name,
            namespace=namespace,
            uid=uid,
            labels=labels,
            spec=deployment_spec,  # without replicas
        ),
        "spec": {"replicas": replicas, **deployment_spec},
    }


def _http_service(
    service: str,
    *,
    name: str,
    namespace: str,
    uid: str,
    labels: dict[str, str],
    selector: dict[str, str],
    port: int,
) -> dict[str, Any]:
    service_spec: dict[str, Any] = {
        "type": "ClusterIP",
        "selector": selector,
        "ports": [
            {"name": HTTP_PORT_NAME, "port": port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            service, owner=name, namespace=namespace, uid=uid, labels=labels, spec=service_spec
        ),
        "spec": service_spec,
    }


def build_service(
    md: ModelDeployment | ModelDeploymentSpec | Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str,
    team: str | None,
) -> dict[str, Any]:
    """The ClusterIP Service of the model (`service_url`): it selects the ready pods of
    both tracks, so without a Gateway the canary's share of traffic is its share of them."""
    spec = as_serving_spec(md)
    return _http_service(
        service_name(name),
        name=name,
        namespace=namespace,
        uid=uid,
        labels=_labels(name, team, None),
        selector={LABEL_MODELDEPLOYMENT: name},
        port=spec.runtime.port,
    )


def build_track_services(
    md: ModelDeployment | ModelDeploymentSpec | Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str,
    team: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(stable, canary): a ClusterIP Service per track, the HTTPRoute's weighted backends."""
    spec = as_serving_spec(md)
    base = _labels(name, team, None)
    stable, canary = (
        _http_service(
            track_service_name(name, track),
            name=name,
            namespace=namespace,
            uid=uid,
            labels=_track_labels(base, track),
            selector=_track_selector(name, track),
            port=spec.runtime.port,
        )
        for track in TRACKS
    )
    return stable, canary


def build_hpa(
    md: ModelDeployment | ModelDeploymentSpec | Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str,
    team: str | None,
    min_replicas: int,
    max_replicas: int,
) -> dict[str, Any] | None:
    """The autoscaling/v2 HorizontalPodAutoscaler of the stable Deployment; None without
    spec.autoscaling.

    `min_replicas` and `max_replicas` are what the quota admits (at most the spec's
    bounds), not read from the spec. The canary Deployment is not autoscaled: its count
    follows the split. Raises ValueError for bounds the autoscaler refuses (min < 1 or
    max < min), and a `BuildError` when the metric's resource is not requested: the
    autoscaler measures use as a share of the request.
    """
    spec = as_serving_spec(md)
    autoscaling = spec.autoscaling
    if autoscaling is None:
        return None
    if min_replicas < 1 or max_replicas < min_replicas:
        raise ValueError(
            f"the autoscaler needs 1 <= minReplicas <= maxReplicas, got {min_replicas} "
            f"and {max_replicas}"
        )
    requested = spec.resources.cpu if autoscaling.metric == "cpu" else spec.resources.memory
    if requested is None:
        raise BuildError(
            f"autoscaling on {autoscaling.metric} needs spec.resources.{autoscaling.metric}: "
            f"the target is a percent of what each replica requests"
        )
    labels = _labels(name, team, None)
    hpa_spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment_name(name, "stable"),
        },
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": autoscaling.metric,
                    "target": {"type": "Utilization", "averageUtilization": autoscaling.target},
                },
            }
        ],
        "behavior": {
            "scaleDown": {
                "stabilizationWindowSeconds": SCALE_DOWN_WINDOW_SECONDS,
                "policies": [
                    {
                        "type": "Pods",
                        "value": SCALE_DOWN_PODS_PER_PERIOD,
                        "periodSeconds": SCALE_DOWN_PERIOD_SECONDS,
                    }
                ],
            }
        },
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(
            hpa_name(name), owner=name, namespace=namespace, uid=uid, labels=labels, spec=hpa_spec
        ),
        "spec": hpa_spec,
    }


def build_http_route(
    md: ModelDeployment | ModelDeploymentSpec | Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str,
    team: str | None,
    gateway: GatewayRef,
    stable_weight: int,
    canary_weight: int,
) -> dict[str, Any]:
    """The gateway.networking.k8s.io/v1 HTTPRoute that splits traffic by weight between
    the track Services (`build_track_services`), whatever the replica counts.

    It matches `route_path_prefix(name, namespace)` on `gateway` and strips that prefix.
    Weights are relative (Gateway API): pass canary.trafficPercent and 100 minus it.
    """
    if stable_weight < 0 or canary_weight < 0 or stable_weight + canary_weight == 0:
        raise ValueError(
            f"route weights must be non-negative and not both 0, got {stable_weight} "
            f"and {canary_weight}"
        )
    spec = as_serving_spec(md)
    labels = _labels(name, team, None)
    port = spec.runtime.port
    weights = {"stable": stable_weight, "canary": canary_weight}
    route_spec: dict[str, Any] = {
        "parentRefs": [
            {
                "group": GATEWAY_GROUP,
                "kind": "Gateway",
                "name": gateway.name,
                "namespace": gateway.namespace,
            }
        ],
        "rules": [
            {
                "matches": [
                    {"path": {"type": "PathPrefix", "value": route_path_prefix(name, namespace)}}
                ],
                "filters": [
                    {
                        "type": "URLRewrite",
                        "urlRewrite": {
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
                        },
                    }
                ],
                "backendRefs": [
                    {
                        "group": "",
                        "kind": "Service",
                        "name": track_service_name(name, track),
                        "port": port,
                        "weight": weights[track],
                    }
                    for track in TRACKS
                ],
            }
        ],
    }
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": _metadata(
            http_route_name(name),
            owner=name,
            namespace=namespace,
            uid=uid,
            labels=labels,
            spec=route_spec,
        ),
        "spec": route_spec,
    }


@dataclass(frozen=True, slots=True)
class ServingChildren:
    """What a ModelDeployment always owns (the Gateway's route and track Services are
    built apart: only where the Gateway API is served), as wire dicts."""

    service: dict[str, Any]
    stable: dict[str, Any]
    canary: dict[str, Any] | None
    """None without spec.canary."""
    hpa: dict[str, Any] | None
    """None without spec.autoscaling."""

    def objects(self) -> tuple[dict[str, Any], ...]:
        """In creation order: the Service, the Deployments, then the autoscaler of the
        stable Deployment (so its target exists)."""
        return tuple(
            obj for obj in (self.service, self.stable, self.canary, self.hpa) if obj is not None
        )


def build_serving_children(
    md: ModelDeployment | ModelDeploymentSpec | Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str,
    team: str | None,
    config: OperatorConfig,
    stable_replicas: int,
    canary_replicas: int,
    hpa_min: int,
    hpa_max: int,
) -> ServingChildren:
    """The Service, the stable Deployment, the canary Deployment (only with spec.canary;
    `canary_replicas` is ignored without one) and the autoscaler (only with
    spec.autoscaling; `hpa_min` / `hpa_max` are ignored without it).

    The autoscaler scales the stable Deployment alone, so `hpa_min` and `hpa_max` bound
    the stable replicas: with a canary, what the quota admits minus `canary_replicas`.
    """
    spec = as_serving_spec(md)

    def deployment(track: Track, replicas: int) -> dict[str, Any]:
        return build_deployment(
            spec,
            name=name,
            namespace=namespace,
            uid=uid,
            team=team,
            config=config,
            track=track,
            replicas=replicas,
        )

    return ServingChildren(
        service=build_service(spec, name=name, namespace=namespace, uid=uid, team=team),
        stable=deployment("stable", stable_replicas),
        canary=deployment("canary", canary_replicas) if spec.canary is not None else None,
        hpa=build_hpa(
            spec,
            name=name,
            namespace=namespace,
            uid=uid,
            team=team,
            min_replicas=hpa_min,
            max_replicas=hpa_max,
        ),
    )
