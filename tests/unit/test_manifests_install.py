"""The plain install (manifests/, `kubectl apply -k manifests/`), read offline: what it
contains, that the operator's pod meets the restricted Pod Security Standard, and that its
ports and config agree with the operator config it mounts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cadre.core.api.config import parse_config

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def documents(name: str) -> list[dict[str, Any]]:
    text = (MANIFESTS / name).read_text(encoding="utf-8")
    return [d for d in yaml.safe_load_all(text) if d]


def operator_objects() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in documents("operator.yaml")}


def test_the_kustomization_names_every_part_of_the_install() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    assert resources[0] == "../crds"
    for name in resources[1:]:
        assert (MANIFESTS / name).is_file(), name
    expected = {
        "namespace.yaml",
        "rbac.yaml",
        "roles.yaml",
        "admission-policies.yaml",
        "operator.yaml",
        "finalizer-release.yaml",
    }
    assert expected <= set(resources)
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == "cadre-config"
    assert generator["files"] == ["operator-config.yaml"]


def test_the_operator_runs_two_replicas_under_its_service_account() -> None:
    deployment = operator_objects()["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "cadre-operator"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    pdb = operator_objects()["PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def _restricted(pod: dict[str, Any]) -> None:
    """The restricted Pod Security Standard, field by field."""
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        own = container["securityContext"]
        assert own["allowPrivilegeEscalation"] is False
        assert own["capabilities"]["drop"] == ["ALL"]
        assert own["readOnlyRootFilesystem"] is True
        assert container["resources"]["requests"] and container["resources"]["limits"]
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    for volume in pod.get("volumes", []):
        assert "hostPath" not in volume


def test_the_operator_and_the_cronjob_meet_the_restricted_standard() -> None:
    _restricted(operator_objects()["Deployment"]["spec"]["template"]["spec"])
    (cronjob,) = documents("finalizer-release.yaml")
    _restricted(cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    (namespace,) = documents("namespace.yaml")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_ports_probes_and_config_agree_with_the_operator_config() -> None:
    config = parse_config((MANIFESTS / "operator-config.yaml").read_text())
    deployment = operator_objects()["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": config.metrics_port, "health": config.health_port}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert f"--config={mounts['config']}/operator-config.yaml" in container["args"]
    service = operator_objects()["Service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
