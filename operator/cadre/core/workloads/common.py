"""Names, labels and owner references shared by every child Cadre builds, whatever the
workload's kind."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from cadre.core.api.common import API_VERSION
from cadre.core.api.names import (
    LABEL_FLAVOR,
    LABEL_MANAGED_BY,
    LABEL_TEAM,
    LABEL_TRAININGJOB,
    MANAGED_BY,
)
from cadre.core.workloads.errors import InvalidTeamError

# User pod labels and annotations with these prefixes, or these exact keys, are dropped:
# they belong to Cadre or to the Job controller, which rejects or overwrites them.
RESERVED_PREFIXES: Final = ("cadre.dev/", "batch.kubernetes.io/")
RESERVED_KEYS: Final = frozenset({"job-name", "controller-uid", LABEL_MANAGED_BY})

_LABEL_VALUE_RE: Final = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def cadre_labels(
    name: str,
    team: str | None,
    flavor: str | None = None,
    *,
    workload_label: str = LABEL_TRAININGJOB,
) -> dict[str, str]:
    """Cadre's labels for the children of workload `name` (`workload_label` names its
    kind); no team label without a team, no flavour label without a flavour."""
    labels = {LABEL_MANAGED_BY: MANAGED_BY, workload_label: name}
    if flavor is not None:
        labels[LABEL_FLAVOR] = flavor
    if team is not None:
        if len(team) > 63 or not _LABEL_VALUE_RE.match(team):
            raise InvalidTeamError(team)
        labels[LABEL_TEAM] = team
    return dict(sorted(labels.items()))


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """The controller reference from a child to its Cadre object: deletion cascades."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _reserved(key: str) -> bool:
    return key in RESERVED_KEYS or key.startswith(RESERVED_PREFIXES)


def merge_user_metadata(
    user: Mapping[str, str] | None, ours: Mapping[str, str] | None = None
) -> dict[str, str]:
    """User keys minus reserved ones, then ours on top; sorted so output is stable."""
    merged = {k: v for k, v in (user or {}).items() if not _reserved(k)}
    merged.update(ours or {})
    return dict(sorted(merged.items()))


def spec_hash(obj: Mapping[str, Any]) -> str:
    """A short, stable digest of a JSON-able object (key order does not matter)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]
