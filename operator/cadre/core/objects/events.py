"""Kubernetes Events as Cadre posts them (core/v1, so `kubectl describe` shows them).

Pure: the Event's wire dict from what it is about; the caller posts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["event_about"]


def event_about(
    involved: Mapping[str, Any],
    *,
    namespace: str,
    reason: str,
    message: str,
    type_: str,
    now: datetime,
) -> dict[str, Any]:
    """An Event about the object `involved` (apiVersion, kind, name, uid and, when
    namespaced, namespace), in `namespace` (a cluster-scoped object's go to default)."""
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{involved.get('name')}.", "namespace": namespace},
        "involvedObject": dict(involved),
        "reason": reason,
        "message": message[:1024],
        "type": type_,
        "source": {"component": "cadre-operator"},
        "reportingComponent": "cadre.dev/operator",
        "reportingInstance": "cadre-operator",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
