"""Status conditions (metav1.Condition): set one, find one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cadre.core.objects.times import timestamp

__all__ = ["find_condition", "with_condition"]


def with_condition(  # noqa: PLR0917 (the fields of a condition, in order)
    conditions: list[dict[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """The list with condition `type_` set; its lastTransitionTime moves only when its
    status changes. Order is kept; a new type is appended."""
    out: list[dict[str, Any]] = []
    found = False
    for c in conditions or ():
        if c.get("type") != type_:
            out.append(dict(c))
            continue
        found = True
        changed = c.get("status") != status
        out.append(
            {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": timestamp(now)
                if changed
                else c.get("lastTransitionTime", timestamp(now)),
                "observedGeneration": generation,
            }
        )
    if not found:
        out.append(
            {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": timestamp(now),
                "observedGeneration": generation,
            }
        )
    return out


def find_condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The condition of type `type_` in a status, or None."""
    return next((c for c in status.get("conditions") or () if c.get("type") == type_), None)
