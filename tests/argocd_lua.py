"""Argo CD's Lua VM for the tests: the harness in e2e/tools/luahealth (gopher-lua, as
Argo CD runs the health checks), built once per version of its sources into
~/.cache/cadre/tools, and a helper that runs one health script on one object. Used by
the unit tests of the scripts and by the e2e test that runs them on live objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO / "e2e" / "tools" / "luahealth"
HEALTH_SCRIPTS = REPO / "manifests" / "argocd" / "health"


def harness_binary() -> Path:
    """The harness built from its current sources (cached by their digest)."""
    go = shutil.which("go")
    if go is None:
        if os.environ.get("CI"):
            pytest.fail("go is not installed: the Argo CD health checks cannot be tested")
        pytest.skip("go is not installed")
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update(name.encode() + b"\0" + (HARNESS / name).read_bytes())
    cache = Path.home() / ".cache" / "cadre" / "tools"
    binary = cache / f"luahealth-{digest.hexdigest()[:16]}"
    if binary.is_file():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.partial")
    # GOTOOLCHAIN=local: never download another Go; -mod=readonly: go.sum is the truth.
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    built = subprocess.run(
        [go, "build", "-o", str(partial), "."],
        cwd=HARNESS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(f"go build of the Lua health harness failed:\n{built.stderr}")
    partial.replace(binary)  # atomic: a parallel run never sees half a binary
    return binary


def run_health(binary: Path, script: Path, obj: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(binary), str(script)],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result
