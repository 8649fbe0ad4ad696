"""Drawing the view: a rich renderable for the terminal (and `--watch`), or JSON.

The JSON keys are a stable interface (docs/cli.md): `schemaVersion` changes when a key is
removed or changes meaning; keys may be added."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cadre.core.objects.times import timestamp
from cadre.tools.status.view import Bar, SpendView, StatusView, TeamStatus, WaitingJob

SCHEMA_VERSION: Final = 1
SPENT_CELL: Final = "█"
FREE_CELL: Final = "░"
FORECAST_CELL: Final = "┃"
FORECAST_OVER_CELL: Final = "»"
STATE_STYLES: Final = {"Ok": "green", "Warning": "yellow", "Exceeded": "bold red"}


def render(view: StatusView) -> RenderableType:
    parts: list[RenderableType] = [
        Text(f"Cadre status at {timestamp(view.generated_at)}", style="bold")
    ]
    if view.teams:
        parts.append(_teams_table(view.teams))
        parts.append(_waiting_table(view.teams))
    else:
        parts.append(Text("No teams to show."))
    if view.notes:
        notes = Text("Not everything could be read:\n" if view.unreadable else "Notes:\n")
        notes.stylize("yellow")
        for note in view.notes:
            notes.append(f"  - {note}\n", style="yellow")
        notes.rstrip()
        parts.append(notes)
    return Group(*parts)


def _teams_table(teams: tuple[TeamStatus, ...]) -> Table:
    currencies = {t.spend.currency for t in teams if t.spend and t.spend.currency}
    # One currency (the operator config has one): said once in the title, not per cell.
    title = f"Teams (money in {currencies.pop()})" if len(currencies) == 1 else "Teams"
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
    table.add_column("TEAM", no_wrap=True, overflow="fold")
    table.add_column("FLAVOUR", no_wrap=True)
    table.add_column("GPUS", justify="right", no_wrap=True)
    table.add_column("BORROWED", justify="right", no_wrap=True)
    table.add_column("SPENT", justify="right", no_wrap=True)
    table.add_column("LIMIT", justify="right", no_wrap=True)
    table.add_column("BUDGET", no_wrap=True)
    table.add_column("FORECAST", justify="right", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("QUEUE", justify="right", no_wrap=True)
    for team in teams:
        rows = team.flavours or (None,)
        spend = team.spend
        for index, row in enumerate(rows):
            first = index == 0
            table.add_row(
                _team_label(team) if first else "",
                row.flavour if row else "-",
                _gpus(row.used_gpus, row.quota_gpus) if row else "-",
                str(row.borrowed_gpus) if row else "-",
                _spent(team) if first else "",
                _limit(spend) if first else "",
                _bar(spend.bar) if first and spend and spend.bar else "",
                _forecast(spend) if first else "",
                _state(team) if first else "",
                _queued(team) if first else "",
                end_section=index == len(rows) - 1,
            )
    return table


def _waiting_table(teams: tuple[TeamStatus, ...]) -> RenderableType:
    waiting = [t for t in teams if t.oldest_waiting is not None]
    if not waiting:
        return Text("No job is waiting.")
    table = Table(
        title="Oldest waiting job per team",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("TEAM", no_wrap=True)
    table.add_column("JOB", no_wrap=True)
    table.add_column("WAITING", justify="right", no_wrap=True)
    table.add_column("POS", justify="right", no_wrap=True)
    table.add_column("REASON", ratio=1)
    for team in waiting:
        job = team.oldest_waiting
        assert job is not None
        table.add_row(
            team.name,
            f"{_short_kind(job)} {job.namespace}/{job.name}",
            _duration(job.waited_seconds),
            str(job.position) if job.position is not None else job.position_range or "-",
            job.reason,
        )
    return table


def _team_label(team: TeamStatus) -> Text:
    label = Text(team.name, style="bold")
    if not team.budget_readable:
        label.append(" [no budget]", style="yellow")
    return label


def _gpus(used: int, quota: int | None) -> str:
    return f"{used}/{quota}" if quota is not None else f"{used}/-"


def _spent(team: TeamStatus) -> str:
    if team.spend is None:
        return "-" if team.budget_readable else "?"
    return _money(team.spend.spent)


def _limit(spend: SpendView | None) -> str:
    if spend is None or spend.limit is None:
        return "-"
    # A limit is a round figure ("20000"): no cents unless it has some.
    whole = spend.limit == spend.limit.to_integral_value()
    return f"{spend.limit:,.0f}" if whole else _money(spend.limit)


def _forecast(spend: SpendView | None) -> str:
    if spend is None or spend.forecast is None:
        return "-"
    return _money(spend.forecast)


def _state(team: TeamStatus) -> Text:
    state = team.spend.state if team.spend else None
    if state is None:
        return Text("-")
    return Text(state, style=STATE_STYLES.get(state, ""))


def _queued(team: TeamStatus) -> str:
    if team.queued is None:
        return "?"
    return str(team.queued) if team.workloads_complete else f"{team.queued}*"


def _bar(bar: Bar) -> Text:
    text = Text()
    for cell in range(bar.width):
        if bar.marker == cell:
            text.append(FORECAST_OVER_CELL if bar.forecast_over else FORECAST_CELL, "bold")
        elif cell < bar.filled:
            text.append(SPENT_CELL, "red" if bar.filled >= bar.width else "cyan")
        else:
            text.append(FREE_CELL, "dim")
    return text


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):,}"


def _short_kind(job: WaitingJob) -> str:
    return "tj" if job.kind == "TrainingJob" else "md"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


# -- JSON -----------------------------------------------------------------------------------


def to_json(view: StatusView) -> dict[str, Any]:
    """The view as JSON-ready data (money as exact decimal strings, times RFC 3339)."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "generatedAt": timestamp(view.generated_at),
        "complete": view.complete,
        "teams": [_team_json(t) for t in view.teams],
        "unreadable": [
            {"resource": u.what, "namespace": u.namespace, "status": u.status, "message": u.message}
            for u in view.unreadable
        ],
        "notes": list(view.notes),
    }


def _team_json(team: TeamStatus) -> dict[str, Any]:
    job = team.oldest_waiting
    return {
        "name": team.name,
        "cohort": team.cohort,
        "namespaces": list(team.namespaces),
        "budgetReadable": team.budget_readable,
        "workloadsComplete": team.workloads_complete,
        "unreadNamespaces": list(team.unread_namespaces),
        "flavours": [
            {
                "flavour": f.flavour,
                "quotaGpus": f.quota_gpus,
                "usedGpus": f.used_gpus,
                "borrowedGpus": f.borrowed_gpus,
            }
            for f in team.flavours
        ],
        "spend": _spend_json(team.spend),
        "admitted": team.admitted,
        "queued": team.queued,
        "oldestWaiting": None
        if job is None
        else {
            "kind": job.kind,
            "namespace": job.namespace,
            "name": job.name,
            "since": _time(job.since),
            "waitingSeconds": job.waited_seconds,
            "position": job.position,
            "positionRange": job.position_range,
            "reason": job.reason,
        },
    }


def _spend_json(spend: SpendView | None) -> dict[str, Any] | None:
    if spend is None:
        return None
    return {
        "currency": spend.currency or None,
        "spent": str(spend.spent),
        "limit": _decimal(spend.limit),
        "forecast": _decimal(spend.forecast),
        "spentFraction": _fraction(spend.spent_fraction),
        "forecastFraction": _fraction(spend.forecast_fraction),
        "period": spend.period,
        "periodEnd": _time(spend.period_end),
        "whenExceeded": spend.when_exceeded,
        "state": spend.state,
    }


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _fraction(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.0001")))


def _time(value: datetime | None) -> str | None:
    return None if value is None else timestamp(value)
