"""Shared inputs of the serving builder tests: ModelDeployments and the counts Cadre admits."""

from __future__ import annotations

from typing import Any

from builders_fixtures import TEAM, UID, config

from cadre.core.api.config import GatewayRef
from cadre.core.serving import (
    ServingChildren,
    as_serving_spec,
    build_http_route,
    build_serving_children,
    build_track_services,
    split_replicas,
)

GATEWAY = GatewayRef(name="public", namespace="gateways")


def admitted_children(body: dict[str, Any], *, team: str | None = TEAM) -> ServingChildren:
    """The children as Cadre builds them once the gang of replicas.min is admitted: min
    replicas split between the tracks, the autoscaler bounding the stable track."""
    spec = as_serving_spec(body)
    total = spec.replicas.min
    stable, canary = (
        split_replicas(total, spec.canary.traffic_percent)
        if spec.canary is not None
        else (total, 0)
    )
    meta = body["metadata"]
    return build_serving_children(
        body,
        name=meta["name"],
        namespace=meta["namespace"],
        uid=UID,
        team=team,
        config=config(),
        stable_replicas=stable,
        canary_replicas=canary,
        hpa_min=stable,
        hpa_max=spec.replicas.max - canary,
    )


def route_objects(body: dict[str, Any], *, team: str | None = TEAM) -> list[dict[str, Any]]:
    """The track Services and the HTTPRoute on GATEWAY, weighted as the canary asks."""
    spec = as_serving_spec(body)
    assert spec.canary is not None
    meta = body["metadata"]
    common: dict[str, Any] = {
        "name": meta["name"],
        "namespace": meta["namespace"],
        "uid": UID,
        "team": team,
    }
    stable_svc, canary_svc = build_track_services(body, **common)
    route = build_http_route(
        body,
        **common,
        gateway=GATEWAY,
        stable_weight=100 - spec.canary.traffic_percent,
        canary_weight=spec.canary.traffic_percent,
    )
    return [stable_svc, canary_svc, route]


def minimal_md(**spec: Any) -> dict[str, Any]:
    """A small valid ModelDeployment wire dict; keyword arguments override spec fields."""
    base: dict[str, Any] = {
        "model": {"uri": "s3://models/demo/v1"},
        "runtime": {"image": "ghcr.io/acme/serve:1.0"},
        "resources": {"flavor": "t4", "gpus": 1, "cpu": "2", "memory": "8Gi"},
    }
    base.update(spec)
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "md", "namespace": "ns"},
        "spec": base,
    }


def with_canary(traffic_percent: int = 25, **canary: Any) -> dict[str, Any]:
    """minimal_md with a canary and four replicas."""
    return minimal_md(
        replicas={"min": 4, "max": 4},
        canary={
            "model": {"uri": "s3://models/demo/v2"},
            "trafficPercent": traffic_percent,
            **canary,
        },
    )


def server(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["server"]
    container = containers[0]
    assert isinstance(container, dict)
    return container


def init_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    found = deployment["spec"]["template"]["spec"].get("initContainers", [])
    assert isinstance(found, list)
    return found


def env_of(container: dict[str, Any]) -> list[tuple[str, Any]]:
    """The container's env in order, as (name, value or valueFrom)."""
    return [(e["name"], e.get("value", e.get("valueFrom"))) for e in container.get("env", [])]
