"""Shared code of the pytest fixtures in tests/integration/conftest.py and e2e/conftest.py.

When the cluster cannot be built or started, tests fail with the reason under CI=true
and are skipped with the reason elsewhere; never silently.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster import REPO_ROOT, LocalCluster, Mode

CRDS_DIR = REPO_ROOT / "crds"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def crd_files() -> list[Path]:
    return sorted(CRDS_DIR.glob("cadre.dev_*.yaml")) if CRDS_DIR.is_dir() else []


def start_cluster(
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    mode: Mode,
    install_crds: bool = True,
    scale: int = 1,
    **options: Any,
) -> LocalCluster:
    """A cluster of its own for this test session (free ports, own state dir), whose
    processes die with the test run even if it is killed. Builds the binaries if missing
    (set CADRE_NO_BUILD=1 to refuse), with the build's progress on the terminal.
    `options` go to LocalCluster (e.g. audit_log_maxsize_mb=1 to see the log rotate)."""
    cluster = LocalCluster(
        tmp_path_factory.mktemp(f"cadre-{mode}"),
        mode=mode,
        scale=scale,
        die_with_parent=True,
        build=os.environ.get("CADRE_NO_BUILD", "") != "1",
        **options,
    )
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    try:
        if capman is not None:
            with capman.global_and_fixture_disabled():
                cluster.up()
        else:
            cluster.up()
        if install_crds and crd_files():
            cluster.install_crds(crd_files())
    except Exception as exc:
        cluster.down()
        reason = f"local {mode} could not be started: {type(exc).__name__}: {exc}"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return cluster


def namespace_name(request: pytest.FixtureRequest) -> str:
    """A DNS-1123 label from the test's name, unique per call."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")
    return f"{base[:48].rstrip('-')}-{uuid.uuid4().hex[:6]}"


def fresh_namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = cluster.create_namespace(namespace_name(request))
    yield name
    cluster.delete_namespace(name)
