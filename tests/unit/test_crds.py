"""The committed CRDs are exactly what the models generate, and are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre.core.api import KINDS
from cadre.tools.cli import main
from cadre.tools.crdgen import crd_for, render_crds

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


def test_committed_crds_match_the_generator() -> None:
    committed = {p.name: p.read_text(encoding="utf-8") for p in CRD_DIR.glob("cadre.dev_*.yaml")}
    generated = render_crds()
    assert sorted(committed) == sorted(generated)
    stale = [name for name, text in generated.items() if committed[name] != text]
    assert not stale, f"crds/ is stale, run `cadre crds --output crds`: {stale}"


def test_cli_writes_the_same_files(tmp_path: Path) -> None:
    assert main(["crds", "--output", str(tmp_path)]) == 0
    for name, text in render_crds().items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        found += _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _nodes(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        found += _nodes(schema["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_schema_is_structural(kind: str) -> None:
    schema = crd_for(KINDS[kind])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _nodes(schema):
        assert "$ref" not in node and "title" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            continue
        assert "type" in node, f"{kind}{path} has no type"
        assert "anyOf" not in node, f"{kind}{path} is a union"
        assert node.get("additionalProperties") is not False, path
        if node["type"] == "array":
            assert "maxItems" in node, f"{kind}{path}: unbounded lists make CEL cost unbounded"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_spec_field_is_described(kind: str) -> None:
    spec = crd_for(KINDS[kind])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _nodes(spec["properties"]["spec"], ".spec"):
        if path.endswith(("[]", ".*")):
            continue  # items inherit the description of their list
        assert node.get("description"), f"{kind}{path} has no description for kubectl explain"


def test_names_scope_and_columns() -> None:
    crds = {k: crd_for(info) for k, info in KINDS.items()}
    assert crds["ResourceBudget"]["spec"]["scope"] == "Cluster"
    assert crds["TrainingJob"]["spec"]["scope"] == "Namespaced"
    assert crds["ModelDeployment"]["spec"]["scope"] == "Namespaced"
    shorts = {k: c["spec"]["names"]["shortNames"] for k, c in crds.items()}
    assert shorts == {"TrainingJob": ["tj"], "ModelDeployment": ["md"], "ResourceBudget": ["rb"]}
    for crd in crds.values():
        assert crd["spec"]["names"]["categories"] == ["cadre"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    tj_columns = [
        c["name"] for c in crds["TrainingJob"]["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    for column in ("Phase", "Workers", "Flavor", "GPUs", "Cost", "Age"):
        assert column in tj_columns


def test_defaults_live_in_the_schema() -> None:
    """Defaults come from the schema so the operator never writes a user's spec."""
    spec = crd_for(KINDS["TrainingJob"])["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]["properties"]
    assert spec["workers"]["default"] == 1
    assert spec["retries"]["default"] == 0
    assert spec["distribution"]["default"] == "None"


def test_generated_yaml_parses() -> None:
    for text in render_crds().values():
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


def test_the_kustomization_lists_every_crd() -> None:
    """crds/kustomization.yaml (the base `kubectl apply -k manifests/` includes) names
    exactly the generated CRDs."""
    kustomization = yaml.safe_load((CRD_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == sorted(render_crds())
