"""API times: RFC 3339 in UTC, as the API server writes them. The one parser and the one
formatter of the project."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_api_time", "timestamp"]


def parse_api_time(value: object) -> datetime | None:
    """A timestamp as the API server writes it (RFC 3339, Z), aware; None if absent or
    not a time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with seconds, as the API server writes times."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
