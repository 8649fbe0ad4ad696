"""A ModelDeployment's children and lifecycle: pure, like `cadre.core.training`.

No I/O, no Kopf, no Kubernetes client: specs (pydantic models, or their wire dicts) in,
plain wire dicts out. The same input always gives the same output, names included.

ModelDeployment:

- `build_serving_children(md, *, name, namespace, uid, team, config, stable_replicas,
  canary_replicas, hpa_min, hpa_max)` -> `ServingChildren(service, stable, canary, hpa)`
  (no canary Deployment without spec.canary, no autoscaler without spec.autoscaling);
  `.objects()` in creation order. The autoscaler scales the stable Deployment only:
  `hpa_min` / `hpa_max` bound the stable replicas.
- `build_deployment(..., config, track, replicas)`, `build_service(...)`,
  `build_hpa(..., min_replicas, max_replicas)` build one of them. Replica counts and the
  autoscaler's bounds are arguments (what the quota admits), never read from the spec;
  the Deployments' spec-hash leaves `replicas` out.
- With a Gateway (config.serving.gateway): `build_track_services(...)` -> the
  `<name>-stable` and `<name>-canary` Services, and `build_http_route(..., gateway,
  stable_weight, canary_weight)` -> the HTTPRoute that splits traffic by weight.
- `md` is a `ModelDeployment`, a `ModelDeploymentSpec`, or a wire dict of either (Kopf's
  `body` or `spec`); `name`, `namespace`, `uid` are the ModelDeployment's; `team` is the
  ResourceBudget it is charged to, or None (no team label).
- Errors are `BuildError`s with a condition `reason` and a message for people:
  `UnknownFlavourError`, `FlavourRequiredError`, `InvalidTeamError`,
  `InvalidModelUriError`. Wrong arguments (negative replicas, ...) are ValueErrors.
- `replica_request(md)` -> `PodRequest` of one replica, for the admission adapter.
- `service_url(name, namespace, port)` -> status.url.
- The canary split without a mesh: `split_replicas(total, traffic_percent)` ->
  (stable, canary); `effective_percent(stable_ready, canary_ready)`;
  `split_text(stable, canary)` -> "25% (1/4)".
- The model's files: `parse_model_uri(uri)` -> `ModelLocation`;
  `model_volumes_and_mounts(source, serving)` -> `ModelVolumes` (a read-only claim for
  pvc://, a `storage-initializer` init container and an emptyDir otherwise).
"""

from __future__ import annotations

from cadre.core.api.names import (
    ACCOUNTING_FINALIZER,
    ANNOTATION_SPEC_HASH,
    LABEL_FLAVOR,
    LABEL_MANAGED_BY,
    LABEL_MODELDEPLOYMENT,
    LABEL_TEAM,
    LABEL_TRACK,
    MANAGED_BY,
)
from cadre.core.serving.canary import effective_percent, split_replicas, split_text
from cadre.core.serving.children import (
    ENV_MODEL_FORMAT,
    ENV_MODEL_PATH,
    ENV_MODEL_URI,
    SERVER_CONTAINER,
    ServingChildren,
    Track,
    as_serving_spec,
    build_deployment,
    build_hpa,
    build_http_route,
    build_service,
    build_serving_children,
    build_track_services,
    deployment_name,
    hpa_name,
    http_route_name,
    replica_request,
    route_path_prefix,
    service_name,
    service_url,
    track_service_name,
)
from cadre.core.serving.model import (
    MODEL_VOLUME,
    STORAGE_INITIALIZER_CONTAINER,
    InvalidModelUriError,
    ModelLocation,
    ModelVolumes,
    credentials_secret,
    model_volumes_and_mounts,
    parse_model_uri,
)
from cadre.core.workloads.errors import (
    BuildError,
    FlavourRequiredError,
    InvalidTeamError,
    UnknownFlavourError,
)
from cadre.core.workloads.resources import PodRequest

__all__ = [
    "ACCOUNTING_FINALIZER",
    "ANNOTATION_SPEC_HASH",
    "ENV_MODEL_FORMAT",
    "ENV_MODEL_PATH",
    "ENV_MODEL_URI",
    "LABEL_FLAVOR",
    "LABEL_MANAGED_BY",
    "LABEL_MODELDEPLOYMENT",
    "LABEL_TEAM",
    "LABEL_TRACK",
    "MANAGED_BY",
    "MODEL_VOLUME",
    "SERVER_CONTAINER",
    "STORAGE_INITIALIZER_CONTAINER",
    "BuildError",
    "FlavourRequiredError",
    "InvalidModelUriError",
    "InvalidTeamError",
    "ModelLocation",
    "ModelVolumes",
    "PodRequest",
    "ServingChildren",
    "Track",
    "UnknownFlavourError",
    "as_serving_spec",
    "build_deployment",
    "build_hpa",
    "build_http_route",
    "build_service",
    "build_serving_children",
    "build_track_services",
    "credentials_secret",
    "deployment_name",
    "effective_percent",
    "hpa_name",
    "http_route_name",
    "model_volumes_and_mounts",
    "parse_model_uri",
    "replica_request",
    "route_path_prefix",
    "service_name",
    "service_url",
    "split_replicas",
    "split_text",
    "track_service_name",
]
