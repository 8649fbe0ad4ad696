from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from cadre.core.api.config import parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "operator-config.yaml"


def test_example_config_loads() -> None:
    config = parse_config(EXAMPLE.read_text(encoding="utf-8"))
    assert [f.name for f in config.flavors] == ["a100", "t4", "cpu-only"]
    a100 = config.flavor("a100")
    assert a100 is not None
    assert a100.prices.as_decimals() == (Decimal("2.93"), Decimal("0.031"), Decimal("0.004"))
    assert a100.gpu_resource == "nvidia.com/gpu"
    assert config.priority_value(None) == 500
    assert config.priority_value("high") == 1000
    assert config.priority_value("urgent") is None
    assert config.flavor("h100") is None


def test_default_priority_must_exist() -> None:
    with pytest.raises(ValidationError, match="defaultPriority 'top' is not one of"):
        parse_config("flavors: [{name: a, nodeLabels: {k: v}}]\ndefaultPriority: top\n")


def test_needs_a_flavour() -> None:
    with pytest.raises(ValidationError, match="flavors"):
        parse_config("flavors: []\n")


def test_the_collectors_threshold_defaults_well_above_cpythons() -> None:
    assert (
        parse_config("flavors: [{name: a, nodeLabels: {k: v}}]\n").controller.gc_threshold == 50_000
    )
    with pytest.raises(ValidationError, match=r"gcThreshold|gc_threshold"):
        parse_config("flavors: [{name: a, nodeLabels: {k: v}}]\ncontroller: {gcThreshold: 10}\n")
