"""The Helm chart (charts/cadre) with the real `helm`, 3 and 4 (built from their Go
modules): it lints, renders, refuses bad values with a message, and describes the same
install as the plain manifests/ (`kubectl kustomize`). The server-side dry run and the
real install and uninstall run on a cluster of their own: e2e/test_helm_install_e2e.py.

Here, not in the unit layer: helm and kubectl are binaries built from Go modules, as the
cluster's are; nothing here needs the API server.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre.tools import chart
from localcluster import LocalCluster, binaries

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cadre"
MANIFESTS = REPO / "manifests"
NAMESPACE = "cadre-system"
KUBE_VERSION = "1.36.3"

# What only the Helm release carries: Helm's labels, and the config checksum that rolls
# the operator's pods on `helm upgrade` (a plain `kubectl apply` does not roll them; the
# plain install says to restart the Deployment).
HELM_LABELS = frozenset(
    {
        "helm.sh/chart",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
    }
)
HELM_ANNOTATIONS = frozenset({"cadre.dev/config-checksum"})

Key = tuple[str, str, str]  # kind, namespace, name


@pytest.fixture(scope="module", params=[3, 4], ids=["helm3", "helm4"])
def helm(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Helm 3 (what most clusters are installed with) and Helm 4, both from Go modules."""
    try:
        yield binaries.helm(request.param)
    except binaries.MissingBinariesError as err:
        pytest.fail(f"no helm {request.param}: {err}")


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def template(helm: Path, *values: str) -> list[dict[str, Any]]:
    out = run_helm(
        helm,
        "template",
        "cadre",
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *values,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def key(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def without_helm_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the plain install writes it: Helm's own metadata dropped, the config
    file parsed (the chart writes it with toYaml: same values, other order and quoting)."""
    obj = json.loads(json.dumps(obj))
    for holder in (obj, obj.get("spec", {}).get("template", {})):
        meta = holder.get("metadata")
        if not meta:
            continue
        for field, dropped in (("labels", HELM_LABELS), ("annotations", HELM_ANNOTATIONS)):
            kept = {k: v for k, v in (meta.get(field) or {}).items() if k not in dropped}
            if kept:
                meta[field] = kept
            else:
                meta.pop(field, None)
    if obj["kind"] == "ConfigMap":
        obj["data"] = {name: yaml.safe_load(text) for name, text in obj["data"].items()}
    return without_blank_lines(obj)


def without_blank_lines(value: Any) -> Any:
    """kustomize re-reads a folded scalar whose next line is more indented (the CEL of the
    admission policies) with an extra line break there; CEL does not care, nor does this
    comparison."""
    if isinstance(value, str):
        return re.sub(r"\n\s*\n", "\n", value)
    if isinstance(value, dict):
        return {k: without_blank_lines(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_blank_lines(v) for v in value]
    return value


def test_the_chart_lints_strictly_with_every_option(helm: Path) -> None:
    for values in ([], ["--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true"]):
        proc = run_helm(
            helm, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *values
        )
        assert "0 chart(s) failed" in proc.stdout, proc.stdout


def test_the_generated_files_of_the_chart_are_up_to_date() -> None:
    assert chart.main(["--check"]) == 0, "run `python -m cadre.tools.chart`"


def test_the_chart_and_the_plain_install_describe_the_same_objects(
    helm: Path, apiserver: LocalCluster
) -> None:
    """Defaults of the chart == `kubectl kustomize manifests/`, but for what only one of
    them can do: the plain install makes the namespace (Helm's convention is
    `--create-namespace` or a namespace made beforehand), the chart installs the CRDs from
    its crds/ folder (compared by the drift test) and has its uninstall hook."""
    kustomized = apiserver.kubectl("kustomize", str(MANIFESTS)).stdout
    plain = {key(d): d for d in yaml.safe_load_all(kustomized) if d}
    plain_crds = {k: v for k, v in plain.items() if k[0] == "CustomResourceDefinition"}
    plain = {
        k: v for k, v in plain.items() if k[0] not in ("CustomResourceDefinition", "Namespace")
    }
    rendered = template(helm)
    hooks = {key(d) for d in rendered if "helm.sh/hook" in (d["metadata"].get("annotations") or {})}
    helmed = {key(d): d for d in rendered if key(d) not in hooks}

    assert set(helmed) == set(plain), {
        "only in the chart": sorted(set(helmed) - set(plain)),
        "only in manifests/": sorted(set(plain) - set(helmed)),
    }
    for k, obj in plain.items():
        assert without_helm_metadata(helmed[k]) == without_helm_metadata(obj), k
    chart_crds = {
        d["metadata"]["name"]: d
        for path in sorted((CHART / "crds").glob("*.yaml"))
        for d in yaml.safe_load_all(path.read_text())
        if d
    }
    assert without_blank_lines(chart_crds) == without_blank_lines(
        {k[2]: v for k, v in plain_crds.items()}
    )
    # Helm's labels are on every object of the release (what `helm ls` and Argo CD track).
    for obj in rendered:
        assert set(obj["metadata"].get("labels") or {}) >= HELM_LABELS, key(obj)


def test_the_release_namespace_replaces_cadre_system_everywhere(helm: Path) -> None:
    rendered = template(helm, "--namespace", "ml-platform")
    text = json.dumps(rendered)
    assert "cadre-system" not in text
    assert "system:serviceaccount:ml-platform:cadre-operator" in text  # the policies' CEL
    bindings = [d for d in rendered if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert bindings and all(
        s["namespace"] == "ml-platform" for b in bindings for s in b["subjects"]
    )


def test_the_uninstall_hook_runs_with_the_operators_rules_under_its_own_account(
    helm: Path,
) -> None:
    rendered = {key(d): d for d in template(helm)}
    operator_role = rendered[("ClusterRole", "", "cadre-operator")]
    hook_role = rendered[("ClusterRole", "", "cadre-uninstall")]
    assert hook_role["rules"] == operator_role["rules"]
    job = rendered[("Job", NAMESPACE, "cadre-uninstall")]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-delete"
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "cadre-uninstall"
    assert pod["containers"][0]["args"][:2] == ["release-finalizers", "--all"]
    assert pod["volumes"][0]["configMap"]["name"] == "cadre-uninstall-config"
    off = {key(d) for d in template(helm, "--set", "uninstall.releaseFinalizers=false")}
    assert not any(k[2] == "cadre-uninstall" for k in off)


def test_values_change_what_they_say(helm: Path) -> None:
    rendered = {
        key(d): d
        for d in template(
            helm,
            "--set",
            "image.repository=registry.example/cadre,image.tag=1.2.3,replicaCount=3",
            "--set",
            "config.timezone=Europe/Paris,config.currency=EUR",
            "--set",
            "serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboards.enabled=true",
            "--set",
            "admissionPolicies.enabled=false,finalizerRelease.enabled=false",
        )
    }
    deployment = rendered[("Deployment", NAMESPACE, "cadre-operator")]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example/cadre:1.2.3"
    )
    config = yaml.safe_load(
        rendered[("ConfigMap", NAMESPACE, "cadre-config")]["data"]["operator-config.yaml"]
    )
    assert (config["timezone"], config["currency"]) == ("Europe/Paris", "EUR")
    kinds = {k[0] for k in rendered}
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds
    assert "ValidatingAdmissionPolicy" not in kinds and "CronJob" not in kinds
    dashboards = [
        d
        for d in rendered.values()
        if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert dashboards, "dashboards.enabled renders the dashboards' ConfigMaps"
    for configmap in dashboards:
        for text in configmap["data"].values():
            assert json.loads(text)["title"]
    rule = rendered[("PrometheusRule", NAMESPACE, "cadre-alerts")]
    assert rule["spec"]["groups"] and all(g["rules"] for g in rule["spec"]["groups"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "replicaCont=3"], "additional properties 'replicaCont' not allowed"),
        (["--set", "replicaCount=0"], "minimum"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "config.defaultPriority=urgent,config.surprise=1"], "surprise"),
        (["--set-string", "config.api.retries=many"], "retries"),
        (["--set", "finalizerRelease.heldLongerThan=soon"], "heldLongerThan"),
    ],
)
def test_bad_values_fail_at_install_with_a_message(
    helm: Path, values: list[str], message: str
) -> None:
    proc = run_helm(
        helm,
        "template",
        "cadre",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        *values,
        check=False,
    )
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr
