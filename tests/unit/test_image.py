"""The operator's image, read (no container runtime here to build it: docs/install.md):
its user is the one the chart and manifests/ run it as, its entry point is the `cadre`
command, and its dependencies are pinned with hashes, every one pyproject.toml names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "operator" / "Dockerfile"
LOCK = REPO / "operator" / "requirements.lock"


def instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def operator_deployment() -> dict[str, Any]:
    docs = yaml.safe_load_all((REPO / "manifests" / "operator.yaml").read_text())
    deployment: dict[str, Any] = next(d for d in docs if d and d["kind"] == "Deployment")
    return deployment


def locked() -> dict[str, tuple[Version, int]]:
    """Package -> (pinned version, number of hashes)."""
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text())
    pins: dict[str, tuple[Version, int]] = {}
    for line in text.splitlines():
        spec = line.split("#", 1)[0].strip()  # comments: the header, "# via ..."
        if not spec:
            continue
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", spec)
        assert match, f"not pinned with ==: {spec}"
        pins[canonicalize_name(match[1])] = (Version(match[2]), spec.count("--hash=sha256:"))
    return pins


def test_the_image_runs_as_the_non_root_user_of_the_chart_and_the_manifests() -> None:
    users = [args for word, args in final_stage() if word == "USER"]
    assert users == ["65532:65532"]
    pod = operator_deployment()["spec"]["template"]["spec"]["securityContext"]
    assert f"{pod['runAsUser']}:{pod['runAsGroup']}" == users[0]
    chart = (REPO / "charts" / "cadre" / "templates" / "operator.yaml").read_text()
    assert "runAsUser: 65532" in chart and "runAsGroup: 65532" in chart


def test_the_entry_point_is_the_cadre_command_and_the_default_runs_the_operator() -> None:
    steps = dict(final_stage())
    assert steps["ENTRYPOINT"] == '["cadre"]'
    assert steps["CMD"].startswith('["run"')
    # The chart's container args start with the subcommand: the entry point is cadre.
    deployment = operator_deployment()
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][0] == "run"


def test_dependencies_are_installed_pinned_and_hash_checked() -> None:
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    assert "--require-hashes" in runs and "requirements.lock" in runs
    pins = locked()
    assert all(hashes > 0 for _, hashes in pins.values())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in operator/requirements.lock: regenerate it"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} in the lock does not meet {requirement.specifier}: regenerate it"
        )
