"""The architecture as a checked contract: the pure core does no Kubernetes I/O."""

from __future__ import annotations

import ast
from pathlib import Path

OPERATOR_DIR = Path(__file__).resolve().parents[2] / "operator"
PURE = ("api", "scheduling", "builders", "accounting", "validation")
PURE_MODULES = (
    "quantity.py",
    "duration.py",
    "config.py",
    "crdgen.py",
    "teams.py",
    "lifecycle.py",
    "budgets.py",
    "events.py",
    "admission/store.py",
    "admission/snapshot.py",
)
FORBIDDEN = ("kopf", "kubernetes", "cadre.handlers", "cadre.cli", "aiohttp", "requests")


def test_operator_folder_is_not_a_package() -> None:
    # An importable `operator` would shadow the standard library module.
    assert not (OPERATOR_DIR / "__init__.py").exists()


def _pure_files() -> list[Path]:
    root = OPERATOR_DIR / "cadre"
    files = [root / name for name in PURE_MODULES]
    for package in PURE:
        files += sorted((root / package).rglob("*.py"))
    return [f for f in files if f.exists()]


def test_pure_core_imports_no_io_layer() -> None:
    offenders = []
    for path in _pure_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN):
                    offenders.append(f"{path.relative_to(OPERATOR_DIR)} imports {name}")
    assert not offenders
    assert len(_pure_files()) >= 10
