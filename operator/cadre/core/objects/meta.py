"""Reading an object's metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["generation_of", "key_of", "owner_uids", "uid_of"]


def generation_of(obj: Mapping[str, Any]) -> int:
    """metadata.generation of an object (0 before the API server set one): what a status
    written now reports as observedGeneration."""
    return int((obj.get("metadata") or {}).get("generation") or 0)


def key_of(obj: Mapping[str, Any]) -> str:
    """ "namespace/name" of a namespaced object (the key of every per-object map)."""
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def owner_uids(obj: Mapping[str, Any]) -> list[str]:
    """The UIDs of the object's owners (owner references)."""
    return [str(o.get("uid")) for o in (obj.get("metadata") or {}).get("ownerReferences") or ()]


def uid_of(obj: Mapping[str, Any]) -> str:
    """metadata.uid ("" when absent): which object of a name this is."""
    return str((obj.get("metadata") or {}).get("uid") or "")
