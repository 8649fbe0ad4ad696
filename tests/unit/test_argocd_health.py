"""The Argo CD health checks (manifests/argocd/health/*.lua), run by the Lua VM Argo CD
uses (gopher-lua, through the harness in e2e/tools/luahealth) on a status object of
every phase of every kind (tests/argocd/fixtures), and the files generated from them.

The harness is built once per version of its sources into ~/.cache/cadre/tools. Without
`go` the Lua tests are skipped, unless CI is set: there they fail.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from argocd_lua import harness_binary, run_health
from cadre.core.api.modeldeployment import ModelDeployment, ModelDeploymentPhase
from cadre.core.api.resourcebudget import ResourceBudget
from cadre.core.api.trainingjob import TrainingJob, TrainingJobPhase
from cadre.tools import argocd

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "argocd" / "fixtures"
SCRIPTS = {
    "trainingjob": REPO / argocd.SOURCES / "cadre.dev_TrainingJob.lua",
    "modeldeployment": REPO / argocd.SOURCES / "cadre.dev_ModelDeployment.lua",
    "resourcebudget": REPO / argocd.SOURCES / "cadre.dev_ResourceBudget.lua",
}
MODELS: dict[str, Any] = {
    "trainingjob": TrainingJob,
    "modeldeployment": ModelDeployment,
    "resourcebudget": ResourceBudget,
}
ARGO_HEALTH = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
FIXTURE_FILES = sorted(FIXTURES.glob("*/*.yaml"))


@pytest.fixture(scope="module")
def luahealth() -> Path:
    return harness_binary()


def load_fixture(path: Path) -> dict[str, Any]:
    fixture: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return fixture


@pytest.mark.parametrize(
    "path", FIXTURE_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FIXTURE_FILES]
)
def test_fixture_health(luahealth: Path, path: Path) -> None:
    fixture = load_fixture(path)
    expected = fixture["expected"]
    health = run_health(luahealth, SCRIPTS[path.parent.name], fixture["object"])
    assert health["status"] == expected["status"], health
    assert expected["message"] in health.get("message", ""), health


def test_every_phase_of_every_kind_has_a_fixture() -> None:
    seen: dict[str, set[str]] = {kind: set() for kind in SCRIPTS}
    for path in FIXTURE_FILES:
        status = load_fixture(path)["object"].get("status") or {}
        if "phase" in status:
            seen[path.parent.name].add(status["phase"])
    assert set(get_args(TrainingJobPhase)) <= seen["trainingjob"]
    assert set(get_args(ModelDeploymentPhase)) <= seen["modeldeployment"]
    assert {"Healthy", "Progressing", "Degraded"} <= {
        load_fixture(p)["expected"]["status"] for p in FIXTURES.glob("resourcebudget/*.yaml")
    }


@pytest.mark.parametrize(
    "path", FIXTURE_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FIXTURE_FILES]
)
def test_fixture_is_an_object_the_api_accepts(path: Path) -> None:
    """The fixtures are the shapes the operator writes: the API models take them (all
    but the one with a phase from the future)."""
    fixture = load_fixture(path)
    assert fixture["expected"]["status"] in ARGO_HEALTH
    if fixture["expected"]["status"] == "Unknown":
        return
    MODELS[path.parent.name].model_validate(fixture["object"])


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_edge_cases_argo_users_hit(luahealth: Path, kind: str) -> None:
    script = SCRIPTS[kind]
    # Just created: no status at all, and no generation either (a dry run).
    bare = {"apiVersion": "cadre.dev/v1alpha1", "kind": "X", "metadata": {"name": "a"}}
    assert run_health(luahealth, script, bare)["status"] == "Progressing"
    # An empty conditions list, or conditions that are not Cadre's.
    for conditions in ([], [{"type": "Other", "status": "True"}]):
        obj = {
            "metadata": {"name": "a", "generation": 1},
            "status": {"observedGeneration": 1, "conditions": conditions},
        }
        assert run_health(luahealth, script, obj)["status"] in ARGO_HEALTH


def test_the_harness_turns_an_invalid_status_into_unknown_as_argo_does(
    luahealth: Path, tmp_path: Path
) -> None:
    script = tmp_path / "typo.lua"
    script.write_text('return {status = "Healthy ", message = "typo"}\n', encoding="utf-8")
    health = run_health(luahealth, script, {"metadata": {}})
    assert health == {"status": "Unknown", "message": "Lua returned an invalid health status"}


def test_the_harness_has_no_string_library_as_argo_does(luahealth: Path, tmp_path: Path) -> None:
    """Argo CD opens base and table only for custom checks: a script that would use
    string.find passes in a plain Lua and fails in Argo CD; here it fails too."""
    script = tmp_path / "strings.lua"
    script.write_text('return {status = string.lower("Healthy")}\n', encoding="utf-8")
    done = subprocess.run(
        [str(luahealth), str(script)], input="{}", capture_output=True, text=True, check=False
    )
    assert done.returncode != 0


def test_arrays_are_one_based_and_integers_are_numbers(luahealth: Path, tmp_path: Path) -> None:
    script = tmp_path / "shape.lua"
    script.write_text(
        "local c = obj.status.conditions\n"
        'return {status = "Healthy", message = c[1].type .. " " .. #c .. " "'
        " .. (obj.metadata.generation + 1)}\n",
        encoding="utf-8",
    )
    obj = {"metadata": {"generation": 4}, "status": {"conditions": [{"type": "A"}, {"type": "B"}]}}
    assert run_health(luahealth, script, obj)["message"] == "A 2 5"


def test_generated_files_are_fresh() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cadre.tools.argocd", "--check", "--root", str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_configmap_patch_carries_each_script_unchanged() -> None:
    patch = yaml.safe_load((REPO / argocd.CONFIGMAP_PATCH).read_text(encoding="utf-8"))
    assert patch["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    assert patch["data"] == {
        f"resource.customizations.health.{script.stem}": script.read_text(encoding="utf-8")
        for script in SCRIPTS.values()
    }


def test_check_reports_drift_and_write_repairs_it(tmp_path: Path) -> None:
    shutil.copytree(REPO / argocd.SOURCES, tmp_path / argocd.SOURCES)
    assert argocd.main(["--root", str(tmp_path), "--check"]) == 1  # nothing written yet
    assert argocd.main(["--root", str(tmp_path)]) == 0
    assert argocd.main(["--root", str(tmp_path), "--check"]) == 0
    source = tmp_path / argocd.SOURCES / "cadre.dev_TrainingJob.lua"
    source.write_text(source.read_text(encoding="utf-8") + "-- changed\n", encoding="utf-8")
    assert argocd.main(["--root", str(tmp_path), "--check"]) == 1
    stray = tmp_path / argocd.CHART_COPIES / "cadre.dev_Gone.lua"
    stray.write_text("return {}\n", encoding="utf-8")
    assert argocd.main(["--root", str(tmp_path)]) == 0
    assert not stray.exists()
    assert argocd.main(["--root", str(tmp_path), "--check"]) == 0


def test_a_script_with_trailing_blanks_is_refused(tmp_path: Path) -> None:
    sources = tmp_path / argocd.SOURCES
    sources.mkdir(parents=True)
    (sources / "cadre.dev_TrainingJob.lua").write_text("return {} \n", encoding="utf-8")
    assert argocd.main(["--root", str(tmp_path)]) == 2
