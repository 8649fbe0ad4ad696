"""The view model of `cadre status`, computed from the objects that were read: pure (no
I/O, no clock: `now` is an argument), so every figure the terminal and the JSON show is
unit-tested here.

Objects are plain dicts as the API server sends them. A field that is absent or malformed
reads as "unknown", never as an exception: the command must not crash on a budget whose
status the operator has not written yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Final, Literal

from cadre.core.objects.conditions import find_condition
from cadre.core.objects.times import parse_api_time

BAR_WIDTH: Final = 10
WORKLOAD_KINDS: Final = ("TrainingJob", "ModelDeployment")

WorkloadKind = Literal["TrainingJob", "ModelDeployment"]


# -- what was read ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Something the user's credentials could not read (or the server did not answer)."""

    what: str
    """`resourcebudgets`, `trainingjobs`, `modeldeployments`."""
    namespace: str | None
    """None: the cluster-wide list (or a cluster-scoped object)."""
    status: int
    """HTTP status; 0 when the API server did not answer."""
    message: str

    def describe(self) -> str:
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        why = "forbidden" if self.status == 403 else f"HTTP {self.status}"
        if self.status == 0:
            why = "no answer"
        return f"{self.what} {where}: {why}"


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything `reading` got from the API server, and what it could not get."""

    budgets: tuple[Mapping[str, Any], ...] = ()
    budgets_complete: bool = True
    """False: the cluster-wide list of budgets was refused; `budgets` are those read by name."""
    workloads: Mapping[WorkloadKind, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    workload_namespaces: Mapping[WorkloadKind, frozenset[str] | None] = field(default_factory=dict)
    """Per kind: None when listed cluster-wide, else the namespaces that were listed."""
    unreadable: tuple[Unreadable, ...] = ()


# -- the view model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    """A bar of `width` cells: `filled` cells of spent, a forecast marker at `marker`."""

    width: int
    filled: int
    marker: int | None
    """Cell of the forecast (0-based), None without a forecast."""
    forecast_over: bool
    """The forecast passes the end of the bar (the limit)."""


@dataclass(frozen=True, slots=True)
class FlavourRow:
    flavour: str
    quota_gpus: int | None
    """Guaranteed GPUs (spec.quota); None: the flavour is not in the quota (borrow only)."""
    used_gpus: int
    """GPUs the team's admitted work holds (status.usage), borrowed ones included."""
    borrowed_gpus: int


@dataclass(frozen=True, slots=True)
class SpendView:
    currency: str
    spent: Decimal
    limit: Decimal | None
    forecast: Decimal | None
    period: str | None
    period_end: datetime | None
    when_exceeded: str | None
    state: str | None
    bar: Bar | None
    """None without a limit: nothing to fill."""

    @property
    def spent_fraction(self) -> Decimal | None:
        return _fraction(self.spent, self.limit)

    @property
    def forecast_fraction(self) -> Decimal | None:
        return None if self.forecast is None else _fraction(self.forecast, self.limit)


@dataclass(frozen=True, slots=True)
class WaitingJob:
    kind: WorkloadKind
    namespace: str
    name: str
    since: datetime | None
    waited_seconds: int | None
    position: int | None
    position_range: str | None
    """Behind the exact positions of the team's queue: the range of its place."""
    reason: str


@dataclass(frozen=True, slots=True)
class TeamStatus:
    name: str
    cohort: str | None
    namespaces: tuple[str, ...]
    budget_readable: bool
    workloads_complete: bool
    """Every namespace of the team was listed for every workload kind."""
    unread_namespaces: tuple[str, ...]
    flavours: tuple[FlavourRow, ...]
    spend: SpendView | None
    admitted: int | None
    queued: int | None
    """Waiting workloads: counted when the team's namespaces were all read, else the
    operator's figure from the budget's status, else None (unknown)."""
    oldest_waiting: WaitingJob | None
    """Among the workloads read (so possibly not the team's oldest when incomplete)."""


@dataclass(frozen=True, slots=True)
class StatusView:
    generated_at: datetime
    teams: tuple[TeamStatus, ...]
    notes: tuple[str, ...]
    unreadable: tuple[Unreadable, ...]

    @property
    def complete(self) -> bool:
        return not self.unreadable


# -- building it ------------------------------------------------------------------------------


def build_view(observed: Observed, *, now: datetime, team: str | None = None) -> StatusView:
    """The view of every team (or of `team` only) from what was read."""
    budgets = {_name(b): b for b in observed.budgets if _name(b)}
    namespace_owner = _namespace_owners(budgets.values())
    by_team: dict[str, list[tuple[WorkloadKind, Mapping[str, Any]]]] = {}
    for kind in WORKLOAD_KINDS:
        for obj in observed.workloads.get(kind, ()):
            owner = _team_of(obj, namespace_owner)
            if owner is not None:
                by_team.setdefault(owner, []).append((kind, obj))

    names = sorted(set(budgets) | set(by_team))
    if team is not None:
        names = [n for n in names if n == team]
    teams = tuple(
        _team_status(name, budgets.get(name), by_team.get(name, []), observed, now)
        for name in names
    )
    notes = [f"could not read {u.describe()}" for u in observed.unreadable]
    if not observed.budgets_complete:
        notes.append("teams without a readable ResourceBudget show workloads only")
    for t in teams:
        if not t.workloads_complete and t.unread_namespaces:
            shown = ", ".join(t.unread_namespaces)
            notes.append(
                f"team {t.name}: workloads in {shown} not readable; its queue length is "
                "the operator's figure and its oldest waiting job may be missing"
            )
    if team is not None and not teams:
        notes.append(f"no team {team} among what could be read")
    return StatusView(
        generated_at=now, teams=teams, notes=tuple(notes), unreadable=observed.unreadable
    )


def _team_status(
    name: str,
    budget: Mapping[str, Any] | None,
    workloads: Sequence[tuple[WorkloadKind, Mapping[str, Any]]],
    observed: Observed,
    now: datetime,
) -> TeamStatus:
    spec = _dict(budget, "spec")
    status = _dict(budget, "status")
    namespaces = _team_namespaces(spec, status, workloads)
    unread = _unread_namespaces(namespaces, observed) if budget is not None else ()
    # Without the budget the team's namespaces are not known: never complete.
    complete = budget is not None and not unread
    waiting = [w for kind, obj in workloads if (w := waiting_job(kind, obj, now)) is not None]
    oldest = min(waiting, key=_waiting_order) if waiting else None
    queued: int | None = len(waiting)
    if not complete:
        queued = _int(status.get("queued"))
    admitted = _int(status.get("admitted")) if budget is not None else None
    return TeamStatus(
        name=name,
        cohort=_str(spec.get("cohort")),
        namespaces=namespaces,
        budget_readable=budget is not None,
        workloads_complete=complete,
        unread_namespaces=unread,
        flavours=flavour_rows(spec, status),
        spend=spend_view(spec, status) if budget is not None else None,
        admitted=admitted,
        queued=queued,
        oldest_waiting=oldest,
    )


def flavour_rows(spec: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[FlavourRow, ...]:
    """One row per flavour in the quota or in use, in the quota's order, then by name."""
    quota: dict[str, int] = {}
    for entry in _list(spec.get("quota")):
        flavour = _str(entry.get("flavor")) if isinstance(entry, Mapping) else None
        if flavour:
            quota[flavour] = _int(entry.get("gpus")) or 0
    usage = status.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    order = list(quota) + sorted(f for f in usage if f not in quota and isinstance(f, str))
    rows = []
    for flavour in order:
        used = usage.get(flavour)
        used = used if isinstance(used, Mapping) else {}
        rows.append(
            FlavourRow(
                flavour=flavour,
                quota_gpus=quota.get(flavour),
                used_gpus=_int(used.get("gpus")) or 0,
                borrowed_gpus=_int(used.get("borrowedGpus")) or 0,
            )
        )
    return tuple(rows)


def spend_view(spec: Mapping[str, Any], status: Mapping[str, Any]) -> SpendView | None:
    """The current period's spend; None when the budget has no money limit and the
    operator has written no spend yet."""
    policy = _dict(spec, "spend")
    spend = _dict(status, "spend")
    limit = _money(policy.get("limit"))
    if not spend and limit is None:
        return None
    spent = _money(spend.get("spent")) or Decimal(0)
    forecast = _money(spend.get("forecast"))
    return SpendView(
        currency=_str(spend.get("currency")) or "",
        spent=spent,
        limit=limit,
        forecast=forecast,
        period=_str(policy.get("period")) or ("Monthly" if policy else None),
        period_end=parse_api_time(spend.get("periodEnd")),
        when_exceeded=_str(policy.get("whenExceeded")) or ("Queue" if policy else None),
        state=_str(spend.get("state")),
        bar=spend_bar(spent, limit, forecast) if limit is not None else None,
    )


def spend_bar(
    spent: Decimal, limit: Decimal, forecast: Decimal | None, width: int = BAR_WIDTH
) -> Bar:
    """Cells filled in proportion to spent/limit (rounded down, so a full bar means the
    limit is reached); the forecast's marker in the cell its fraction falls in, the last
    cell when it is at or past the limit."""
    filled = min(width, _cells(spent, limit, width))
    marker = None
    over = False
    if forecast is not None:
        over = limit <= 0 or forecast > limit
        marker = min(width - 1, _cells(forecast, limit, width))
    return Bar(width=width, filled=filled, marker=marker, forecast_over=over)


def _cells(amount: Decimal, limit: Decimal, width: int) -> int:
    if limit <= 0:
        return width if amount > 0 else 0
    return int((amount * width / limit).to_integral_value(rounding=ROUND_FLOOR))


def waiting_job(kind: WorkloadKind, obj: Mapping[str, Any], now: datetime) -> WaitingJob | None:
    """The workload as a waiting job, or None if it is not waiting for quota.

    Waiting: phase Queued, or no phase yet (the operator has not seen it). Since when: the
    Admitted condition's last transition while it is False (a preempted job waits again
    from its preemption), else the object's creation."""
    status = _dict(obj, "status")
    phase = _str(status.get("phase"))
    if phase not in (None, "Queued"):
        return None
    meta = _dict(obj, "metadata")
    admitted = find_condition(status, "Admitted")
    since = None
    if admitted is not None and admitted.get("status") == "False":
        since = parse_api_time(admitted.get("lastTransitionTime"))
    since = since or parse_api_time(meta.get("creationTimestamp"))
    queue = _dict(status, "queue")
    reason = _str(queue.get("reason"))
    if not reason and admitted is not None:
        reason = _str(admitted.get("message")) or _str(admitted.get("reason"))
    if not reason:
        reason = "not yet seen by the operator" if phase is None else "waiting (no reason given)"
    return WaitingJob(
        kind=kind,
        namespace=_str(meta.get("namespace")) or "",
        name=_str(meta.get("name")) or "",
        since=since,
        waited_seconds=max(0, int((now - since).total_seconds())) if since else None,
        position=_int(queue.get("position")),
        position_range=_str(queue.get("positionRange")),
        reason=reason,
    )


def _waiting_order(job: WaitingJob) -> tuple[int, float, str, str]:
    # Oldest first; a job without a time sorts last; names break ties for a stable answer.
    if job.since is None:
        return (1, 0.0, job.namespace, job.name)
    return (0, job.since.timestamp(), job.namespace, job.name)


def _team_namespaces(
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    workloads: Sequence[tuple[WorkloadKind, Mapping[str, Any]]],
) -> tuple[str, ...]:
    # status.namespaces resolves a namespaceSelector; spec.namespaces until it is written.
    listed = _list(status.get("namespaces")) or _list(spec.get("namespaces"))
    found = {n for n in listed if isinstance(n, str)}
    found |= {_str(_dict(obj, "metadata").get("namespace")) or "" for _, obj in workloads}
    return tuple(sorted(n for n in found if n))


def _unread_namespaces(namespaces: Iterable[str], observed: Observed) -> tuple[str, ...]:
    unread: set[str] = set()
    for kind in WORKLOAD_KINDS:
        scope = observed.workload_namespaces.get(kind, frozenset())
        if scope is None:
            continue
        unread |= {n for n in namespaces if n not in scope}
    return tuple(sorted(unread))


def _namespace_owners(budgets: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for budget in budgets:
        status, spec = _dict(budget, "status"), _dict(budget, "spec")
        for ns in _list(status.get("namespaces")) or _list(spec.get("namespaces")):
            if isinstance(ns, str):
                owners.setdefault(ns, _name(budget))
    return owners


def _team_of(obj: Mapping[str, Any], namespace_owner: Mapping[str, str]) -> str | None:
    team = _str(_dict(obj, "status").get("team"))
    if team:
        return team
    return namespace_owner.get(_str(_dict(obj, "metadata").get("namespace")) or "")


def _fraction(amount: Decimal, limit: Decimal | None) -> Decimal | None:
    if limit is None or limit <= 0:
        return None
    return amount / limit


# -- defensive field access --------------------------------------------------------------------


def _name(obj: Mapping[str, Any]) -> str:
    return _str(_dict(obj, "metadata").get("name")) or ""


def _dict(obj: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _money(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


# -- exit status ---------------------------------------------------------------------------------

EXIT_COMPLETE: Final = 0
EXIT_NOTHING: Final = 1
"""Nothing could be read, or no such `--team` (and unreadable kubeconfig, no answer: the
command's own errors)."""
EXIT_USAGE: Final = 2
"""argparse's status for bad arguments."""
EXIT_PARTIAL: Final = 3
"""Shown, but something could not be read (listed in the notes)."""


def exit_code(view: StatusView, *, team: str | None = None) -> int:
    if team is not None and not view.teams:
        return EXIT_NOTHING
    if view.unreadable:
        return EXIT_PARTIAL if view.teams else EXIT_NOTHING
    return EXIT_COMPLETE
