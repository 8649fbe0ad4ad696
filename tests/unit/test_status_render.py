"""`cadre status` as drawn: the terminal text at width 100 against a golden file, and the
JSON's stable keys.

regenerate the golden text with:
    CADRE_UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/unit/test_status_render.py
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from test_status_view import budget, tj

from cadre.tools.status.render import render, to_json
from cadre.tools.status.view import Observed, StatusView, Unreadable, build_view

GOLDEN = Path(__file__).parent / "golden" / "status-width-100.txt"
UPDATE = os.environ.get("CADRE_UPDATE_GOLDEN") == "1"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def sample_view() -> StatusView:
    observed = Observed(
        budgets=(
            budget(
                "vision",
                ["vision-research"],
                quota={"a100": 16, "t4": 4},
                usage={"a100": (20, 4), "t4": (1, 0)},
                limit="20000",
                spent="16250.40",
                forecast="21900",
                state="Warning",
                queued=3,
                admitted=4,
            ),
            budget(
                "nlp",
                ["nlp-research", "nlp-serving"],
                quota={"a100": 8},
                usage={"a100": (4, 0)},
                limit="5000",
                spent="120.00",
                forecast="900",
                queued=2,
                admitted=1,
            ),
        ),
        workloads={
            "TrainingJob": (
                tj(
                    "vision-research",
                    "resnet50-imagenet",
                    team="vision",
                    created=200,
                    waiting_since=133,
                    reason="waiting for 8 a100 GPUs: team vision uses 20/16 nominal, "
                    "cohort research has 0 idle",
                ),
                tj("vision-research", "mnist", team="vision", created=5, position=2),
            ),
            "ModelDeployment": (),
        },
        workload_namespaces={
            "TrainingJob": frozenset({"vision-research"}),
            "ModelDeployment": frozenset({"vision-research"}),
        },
        unreadable=(
            Unreadable("trainingjobs", None, 403, "forbidden"),
            Unreadable("modeldeployments", None, 403, "forbidden"),
        ),
    )
    return build_view(observed, now=NOW)


def rendered(view: StatusView, width: int = 100) -> str:
    console = Console(record=True, width=width, no_color=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render(view))
    return console.export_text()


def test_terminal_text_at_width_100_matches_the_golden_file() -> None:
    text = rendered(sample_view())
    if UPDATE:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run with CADRE_UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(encoding="utf-8"), (
        "the rendering changed: check it, then regenerate with CADRE_UPDATE_GOLDEN=1\n" + text
    )


def test_no_line_is_wider_than_the_terminal() -> None:
    for width in (80, 100, 140):
        assert max(len(line) for line in rendered(sample_view(), width).splitlines()) <= width


def test_empty_view_says_so() -> None:
    text = rendered(StatusView(generated_at=NOW, teams=(), notes=(), unreadable=()))
    assert "No teams to show." in text


def test_json_keys_and_exact_money() -> None:
    data = to_json(sample_view())
    json.dumps(data)  # serialisable as is
    assert data["schemaVersion"] == 1 and data["complete"] is False
    assert data["generatedAt"] == "2026-11-30T12:00:00Z"
    vision = next(t for t in data["teams"] if t["name"] == "vision")
    assert vision["spend"] == {
        "currency": "USD",
        "spent": "16250.40",
        "limit": "20000",
        "forecast": "21900",
        "spentFraction": "0.8125",
        "forecastFraction": "1.0950",
        "period": "Monthly",
        "periodEnd": None,
        "whenExceeded": "Queue",
        "state": "Warning",
    }
    assert vision["queued"] == 2  # both read: counted, not the operator's 3
    assert vision["oldestWaiting"] == {
        "kind": "TrainingJob",
        "namespace": "vision-research",
        "name": "resnet50-imagenet",
        "since": (NOW - timedelta(minutes=133)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "waitingSeconds": 133 * 60,
        "position": 1,
        "positionRange": None,
        "reason": "waiting for 8 a100 GPUs: team vision uses 20/16 nominal, cohort research "
        "has 0 idle",
    }
    nlp = next(t for t in data["teams"] if t["name"] == "nlp")
    assert nlp["workloadsComplete"] is False and nlp["queued"] == 2
    assert data["unreadable"][0] == {
        "resource": "trainingjobs",
        "namespace": None,
        "status": 403,
        "message": "forbidden",
    }
