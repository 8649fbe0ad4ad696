"""Reading the API server's audit log: who wrote what, and when, seen from the server.

Fault tests need the server's side of the story (did the paused replica write after it
lost its lease? which replica patched this status?), which no client's own counters can
tell. The API server writes one JSON line per mutating request at Metadata level (see
POLICY) to logs/audit.log, and rotates it to logs/audit-<UTC time>.log when it grows past
--audit-log-maxsize; the reader reads that backup too, oldest first.

The log backend runs in blocking mode, so an entry is written while its request is being
answered: a client usually finds it as soon as it has the answer, but poll
(LocalCluster.wait_audit_events) rather than assume.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

MUTATING_VERBS = ("create", "update", "patch", "delete", "deletecollection")

# Every mutating request of every resource and subresource (leases in
# coordination.k8s.io, */status, pods/binding, serviceaccounts/token ...) at Metadata
# level: user, user agent, object, response code and times, but no bodies. Reads
# (get/list/watch) are left out: they are most of the traffic and no fault test needs
# them. Idle, a cluster logs 6 lines a minute (the API server's own identity lease).
POLICY = (
    "apiVersion: audit.k8s.io/v1\n"
    "kind: Policy\n"
    "omitStages: [RequestReceived]\n"
    "rules:\n"
    "  - level: Metadata\n"
    f"    verbs: [{', '.join(MUTATING_VERBS)}]\n"
    "  - level: None\n"
)


@dataclass(frozen=True)
class AuditEvent:
    """One audit entry, with the fields fault tests compare (raw keeps the rest)."""

    audit_id: str
    stage: str
    verb: str
    username: str
    groups: tuple[str, ...]
    user_agent: str
    request_uri: str
    api_group: str  # "" for the core group
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    code: int | None  # responseStatus.code
    request_received: datetime  # requestReceivedTimestamp, aware (UTC)
    stage_timestamp: datetime  # stageTimestamp, aware (UTC)
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def what(self) -> str:
        """A short description for assertion messages: `patch configmaps/x/status ns`."""
        path = "/".join(p for p in (self.resource, self.name, self.subresource) if p)
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.verb} {path}{where} -> {self.code} by {self.user_agent or self.username}"

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> AuditEvent:
        ref = entry.get("objectRef") or {}
        user = entry.get("user") or {}
        return cls(
            audit_id=entry.get("auditID", ""),
            stage=entry.get("stage", ""),
            verb=entry.get("verb", ""),
            username=user.get("username", ""),
            groups=tuple(user.get("groups") or ()),
            user_agent=entry.get("userAgent", ""),
            request_uri=entry.get("requestURI", ""),
            api_group=ref.get("apiGroup", ""),
            resource=ref.get("resource"),
            subresource=ref.get("subresource"),
            namespace=ref.get("namespace"),
            name=ref.get("name"),
            code=(entry.get("responseStatus") or {}).get("code"),
            request_received=parse_time(entry["requestReceivedTimestamp"]),
            stage_timestamp=parse_time(entry["stageTimestamp"]),
            raw=entry,
        )


def parse_time(text: str) -> datetime:
    """The API server's MicroTime ("2026-11-29T20:17:01.376116Z") as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def log_files(current: Path) -> list[Path]:
    """The rotated backups of `current` (audit-<time>.log, .gz if compressed), oldest
    first, then `current` itself if it exists. The backups' names sort by time."""
    stem, suffix = current.stem, current.suffix
    backups = sorted(
        p
        for p in current.parent.glob(f"{stem}-*{suffix}*")
        if p.name.endswith((suffix, suffix + ".gz"))
    )
    return [*backups, *([current] if current.exists() else [])]


def _lines(path: Path) -> Iterator[str]:
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.endswith("\n"):  # a last line still being written is skipped
                yield line


def read_events(
    current: Path,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    user: str | None = None,
    user_agent_prefix: str | None = None,
    verbs: Iterable[str] | None = MUTATING_VERBS,
    resource: str | None = None,
    subresource: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    where: Callable[[AuditEvent], bool] | None = None,
) -> list[AuditEvent]:
    """The entries of the audit log at `current` and its backups that match every given
    filter, in the order the server wrote them.

    since/until bound requestReceivedTimestamp: [since, until). A request received just
    before `since` and answered after it is not included (it was sent before). Naive
    datetimes are refused (the log is in UTC). subresource="" matches only requests on
    the object itself. A rotation during the read makes the read start again.
    """
    for t in (since, until):
        if t is not None and t.tzinfo is None:
            raise ValueError(f"give an aware datetime (e.g. datetime.now(UTC)), not {t}")
    verb_set = None if verbs is None else frozenset(verbs)
    # File times come from the kernel's coarse clock (a few ms behind): keep a margin.
    skip_before = None if since is None else since - timedelta(seconds=5)

    def matches(event: AuditEvent) -> bool:
        return (
            (since is None or event.request_received >= since)
            and (until is None or event.request_received < until)
            and (verb_set is None or event.verb in verb_set)
            and (user is None or event.username == user)
            and (user_agent_prefix is None or event.user_agent.startswith(user_agent_prefix))
            and (resource is None or event.resource == resource)
            and (subresource is None or (event.subresource or "") == subresource)
            and (namespace is None or event.namespace == namespace)
            and (name is None or event.name == name)
            and (where is None or where(event))
        )

    found: list[AuditEvent] = []
    for _attempt in range(5):
        files = log_files(current)
        found = []
        try:
            for path in files:
                if skip_before is not None and _mtime(path) < skip_before:
                    continue  # last written before `since`: nothing in it is newer
                for line in _lines(path):
                    try:
                        event = AuditEvent.from_json(json.loads(line))
                    except (ValueError, KeyError):
                        continue  # not an audit event (should not happen): skip it
                    if matches(event):
                        found.append(event)
        except FileNotFoundError:
            continue  # rotated between the listing and the open: read again
        if log_files(current) == files:
            return found
        # rotated while being read: what we read as the current file may be the backup
    return found


def _mtime(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return datetime.max.replace(tzinfo=UTC)  # vanished: let the read find out
