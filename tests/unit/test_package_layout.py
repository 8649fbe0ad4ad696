"""The source folder `operator/` must never become a package: an importable `operator`
would shadow the standard library's module of that name. (The layering itself is the
import-linter contracts in pyproject.toml, run by `make lint`.)"""

from __future__ import annotations

from pathlib import Path

OPERATOR_DIR = Path(__file__).resolve().parents[2] / "operator"


def test_operator_folder_is_not_a_package() -> None:
    assert not (OPERATOR_DIR / "__init__.py").exists()
    assert (OPERATOR_DIR / "cadre" / "__init__.py").exists()
