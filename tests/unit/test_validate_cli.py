"""`cadre validate` on files: exit status, output format, examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadre.tools.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BROKEN = """\
apiVersion: v1
kind: Namespace
metadata: {name: vision}
---
apiVersion: cadre.dev/v1alpha1
kind: TrainingJob
metadata: {name: resnet, namespace: vision}
spec:
  image: train:1
  resources: {gpus: 8, memory: 8Gb}
"""


def test_examples_pass() -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    assert len(files) >= 5
    assert main(["validate", *files]) == 0


def test_errors_name_file_document_and_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(BROKEN, encoding="utf-8")
    assert main(["validate", str(manifest)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert (
        f"{manifest}[1]: TrainingJob resnet: spec.resources.flavor: a flavor is required" in err[0]
    )
    assert f"{manifest}[1]: TrainingJob resnet: spec.resources.memory: '8Gb'" in err[1]
    assert err[-1] == "1 Cadre document(s) checked, 1 with errors"


def test_unknown_cadre_kind_and_bad_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("apiVersion: cadre.dev/v1alpha1\nkind: TrainingJobs\nmetadata: {name: x}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed\n")
    assert main(["validate", str(typo), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "kind: unknown kind 'TrainingJobs'" in err
    assert "not valid YAML" in err


def test_old_api_version_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "v.yaml"
    doc.write_text("apiVersion: cadre.dev/v1\nkind: TrainingJob\nmetadata: {name: x}\nspec: {}\n")
    assert main(["validate", str(doc)]) == 1
    assert "apiVersion: 'cadre.dev/v1' is not served" in capsys.readouterr().err


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "/nonexistent/file.yaml"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "apiVersion: config.cadre.dev/v1alpha1\nkind: OperatorConfig\n"
        "flavors: [{name: a100, nodeLabels: {x: y}}, {name: a100, nodeLabels: {x: z}}]\n"
        "defaultPriority: urgent\ntimezone: Mars/Olympus\ncurency: USD\n"
    )
    assert main(["validate", str(config)]) == 1
    err = capsys.readouterr().err
    assert "curency: unknown field; did you mean 'currency'?" in err
    assert "flavors: flavour 'a100' is defined twice" in err
    assert "timezone: unknown timezone 'Mars/Olympus'" in err
