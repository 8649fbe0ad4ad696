"""The operator's log lines: one JSON object each, from structlog and from the standard
library's loggers (Kopf's) alike, whatever the values logged."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from cadre.controller.runtime.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_every_line_is_one_json_object_with_the_event_level_logger_and_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert configure_logging("json") is True
    structlog.get_logger("cadre.test").info(
        "admitted", trainingjob="ns/a", gpus=8, at=datetime(2026, 1, 2, tzinfo=UTC), odd=object()
    )
    logging.getLogger("kopf.test").warning("handler %s failed", "x")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["event"], r["level"], r["logger"]) for r in lines] == [
        ("admitted", "info", "cadre.test"),
        ("handler x failed", "warning", "kopf.test"),
    ]
    first = lines[0]
    assert first["trainingjob"] == "ns/a" and first["gpus"] == 8
    assert first["at"].startswith("2026-01-02T00:00:00")
    assert first["odd"].startswith("<object object")  # not serialisable: its repr, no crash
    assert all(r["timestamp"].endswith("Z") for r in lines)
