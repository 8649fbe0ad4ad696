"""The Helm chart installed for real: `helm install` on a local cluster of its own (its
CRDs come from the chart), the operator brought up, the people of a team working under
the chart's roles, and `helm uninstall` releasing every accounting finalizer.

No container runtime exists here (KWOK "runs" the pods): where a kubelet would start the
operator's container, the test starts the same command as a process, with the
ServiceAccount token and the config the release made (a TokenRequest, the ConfigMap), and
stops it when the release's Deployment goes. Where a kubelet would run the uninstall
hook's container, the test runs the hook's command the same way and then reports the pod
Succeeded, as the kubelet would; the Job controller, Helm's wait on the hook and the hook
clean-up are all real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from argocd_lua import HEALTH_SCRIPTS, harness_binary, run_health
from burst import LEASE, trainingjob
from cadre_process import OperatorProcess, service_account_kubeconfig
from localcluster import LocalCluster, binaries
from localcluster.testing import start_cluster
from test_rbac_e2e import Person, allowed
from waiting import eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "cadre"
SYSTEM = "cadre-system"
GROUP = "/apis/cadre.dev/v1alpha1"
RBS = f"{GROUP}/resourcebudgets"
FINALIZER = "cadre.dev/accounting"
# KWOK's pod-complete stage waits this long before it reports a Job's pod Succeeded: the
# hook's pod "runs" until the test has run its command.
KWOK_RUNS_UNTIL_TOLD = {"pod-complete.stage.kwok.x-k8s.io/delay": "24h"}


@pytest.fixture(scope="module")
def cluster(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """A cluster of its own: the release's cluster-wide objects (CRDs, roles, policies)
    must not meet those the other e2e tests apply with kubectl."""
    c = start_cluster(pytestconfig, tmp_path_factory, "cluster", install_crds=False)
    c.create_namespace(
        SYSTEM,
        labels={
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    )
    yield c
    c.down()


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        return binaries.helm()
    except binaries.MissingBinariesError as err:
        pytest.fail(f"no helm: {err}")


def run_helm(
    helm: Path, cluster: LocalCluster, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(helm), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {proc.stdout}\n{proc.stderr}")
    return proc


def test_a_server_side_dry_run_of_the_install_passes(helm: Path, cluster: LocalCluster) -> None:
    """Every object of the release, as the API server validates it (nothing is made)."""
    proc = run_helm(helm, cluster, "install", "cadre", str(CHART), "-n", SYSTEM, "--dry-run=server")
    assert "STATUS: pending-install" in proc.stdout, proc.stdout
    assert not cluster.api.call("GET", "/apis/apps/v1/namespaces/cadre-system/deployments")["items"]


def values_file(tmp_path: Path) -> Path:
    """The chart's values for this test: its own config with short leases, spend brought
    up to date every second and a t4 GPU-second at 1 (a short run has a visible cost)."""
    config = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    for flavor in config["flavors"]:
        flavor["prices"] = {"gpuHour": "3600"} if flavor["name"] == "t4" else {}
    config["leaderElection"] = {**config["leaderElection"], **LEASE}
    config["accounting"] = {"refreshSeconds": 1}
    path = tmp_path / "values.yaml"
    path.write_text(
        yaml.safe_dump({"config": config, "hooks": {"podAnnotations": KWOK_RUNS_UNTIL_TOLD}})
    )
    return path


def mounted_config(cluster: LocalCluster, configmap: str, path: Path) -> Path:
    """The config file a pod would see at /etc/cadre/operator-config.yaml."""
    data = cluster.api.call("GET", f"/api/v1/namespaces/{SYSTEM}/configmaps/{configmap}")["data"]
    path.write_text(data["operator-config.yaml"])
    return path


def held_pods(cluster: LocalCluster, namespace: str) -> list[str]:
    pods = cluster.api.call("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
    return [
        p["metadata"]["name"] for p in pods if FINALIZER in (p["metadata"].get("finalizers") or ())
    ]


def report_succeeded(cluster: LocalCluster, pod: dict[str, Any]) -> None:
    """What the kubelet reports when the container exited 0."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    container = pod["spec"]["containers"][0]
    status = {
        "phase": "Succeeded",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "PodCompleted",
                "lastTransitionTime": now,
            },
            {
                "type": "ContainersReady",
                "status": "False",
                "reason": "PodCompleted",
                "lastTransitionTime": now,
            },
        ],
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": pod["status"].get("startTime", now),
                        "finishedAt": now,
                    }
                },
            }
        ],
    }
    name = pod["metadata"]["name"]
    cluster.api.patch(f"/api/v1/namespaces/{SYSTEM}/pods/{name}/status", {"status": status})


@dataclass
class Release:
    """The installed release and the operator "its pod" runs (a process here)."""

    operator: OperatorProcess
    workdir: Path


@pytest.fixture(scope="module")
def release(
    helm: Path, cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    workdir = tmp_path_factory.mktemp("helm-release")
    run_helm(
        helm, cluster, "install", "cadre", str(CHART), "-n", SYSTEM, "-f", str(values_file(workdir))
    )
    deployment = cluster.api.call(
        "GET", f"/apis/apps/v1/namespaces/{SYSTEM}/deployments/cadre-operator"
    )
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["args"][0] == "run"
    # The kubelet's part: the operator's container, as a process, with the release's
    # ServiceAccount and config. Its readiness is the pod's readiness probe.
    operator = OperatorProcess(
        service_account_kubeconfig(cluster, SYSTEM, pod_spec["serviceAccountName"], workdir / "sa"),
        workdir,
        mounted_config(cluster, "cadre-config", workdir / "operator-config.yaml"),
        identity="cadre-operator-helm",
    ).start()
    try:
        yield Release(operator, workdir)
    finally:
        operator.stop()


@pytest.fixture(scope="module")
def team(release: Release, cluster: LocalCluster) -> str:
    """A team namespace whose people are bound as a platform binds them: alice to the
    built-in edit role there, victor to view, adam to admin; paula to cadre-platform-admin
    (the ClusterRole, and the Role of the operator's namespace)."""
    name = f"helm-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(name)
    rolebindings = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{name}/rolebindings"
    for user, role in (("alice", "edit"), ("victor", "view"), ("adam", "admin")):
        cluster.api.create(rolebindings, binding("RoleBinding", user, role))
    cluster.api.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        binding("ClusterRoleBinding", "paula", "cadre-platform-admin", f"paula-{name}"),
    )
    config_binding = binding("RoleBinding", "paula", "cadre-platform-admin")
    config_binding["roleRef"]["kind"] = "Role"
    cluster.api.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{SYSTEM}/rolebindings",
        config_binding,
        exist_ok=True,
    )
    return name


def binding(kind: str, user: str, role: str, name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name or user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": user}],
    }


def play_hook(cluster: LocalCluster, component: str, workdir: Path) -> str:
    """The kubelet's part for a hook Job's pod: once it runs (KWOK), run its container's
    command as a process with its ServiceAccount's credentials and the files its volumes
    would mount, then report the pod Succeeded. Returns the command's output."""
    selector = f"app.kubernetes.io/component={component}"
    pod = eventually(
        f"the {component} hook's pod runs",
        lambda: next(
            (
                p
                for p in cluster.api.get(
                    f"/api/v1/namespaces/{SYSTEM}/pods?labelSelector={selector}"
                )["items"]
                if p.get("status", {}).get("phase") == "Running"
            ),
            None,
        ),
        timeout=120,
    )
    spec = pod["spec"]
    volumes = {v["name"]: v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v}
    mounts = {
        m["mountPath"]: volumes[m["name"]]
        for m in spec["containers"][0].get("volumeMounts", [])
        if m["name"] in volumes
    }
    args = []
    for given in spec["containers"][0]["args"]:
        arg = given
        # A path under a mounted ConfigMap: the same files, in a folder of the test's.
        for mount, configmap in mounts.items():
            if arg.partition("=")[2].startswith(mount):
                folder = workdir / f"{component}-{configmap}"
                folder.mkdir(exist_ok=True)
                data = cluster.api.get(f"/api/v1/namespaces/{SYSTEM}/configmaps/{configmap}")
                for name, text in data["data"].items():
                    (folder / name).write_text(text)
                arg = arg.replace(mount, str(folder))
        args.append(arg)
    credentials = service_account_kubeconfig(
        cluster, SYSTEM, spec["serviceAccountName"], workdir / f"{component}-sa"
    )
    done = subprocess.run(
        [sys.executable, "-m", "cadre.tools.cli", *args, "--kubeconfig", str(credentials)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    report_succeeded(cluster, pod)
    return done.stdout


ARGO_CM_PATH = "/api/v1/namespaces/argocd/configmaps/argocd-cm"
ARGO_CM_DATA = {"url": "https://argocd.example", "timeout.reconciliation": "180s"}
HEALTH_PREFIX = "resource.customizations.health.cadre.dev_"


def test_the_install_brings_the_operator_up_with_the_charts_crds(
    release: Release, cluster: LocalCluster
) -> None:
    crds = cluster.api.call("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    assert {
        "trainingjobs.cadre.dev",
        "modeldeployments.cadre.dev",
        "resourcebudgets.cadre.dev",
    } <= {c["metadata"]["name"] for c in crds["items"]}
    eventually("the operator leads", release.operator.leading, timeout=60)
    readiness = release.operator.readiness()
    assert readiness["ready"] and readiness["identity"] == "cadre-operator-helm", readiness


def test_the_people_of_a_team_work_under_the_charts_roles(
    release: Release, cluster: LocalCluster, team: str
) -> None:
    """The chart's cadre-edit and cadre-view reach team members through the built-in edit
    and view roles (kube-controller-manager aggregates them); budgets are the platform
    admin's; nobody but the operator writes a status."""
    alice, victor, adam, paula = (Person(cluster, u) for u in ("alice", "victor", "adam", "paula"))
    try:
        eventually(
            "edit aggregates cadre-edit",
            lambda: alice.can("create", "trainingjobs", team),
            timeout=60,
        )
        eventually("view aggregates cadre-view", lambda: victor.can("get", "trainingjobs", team))
        budget = {
            "apiVersion": "cadre.dev/v1alpha1",
            "kind": "ResourceBudget",
            "metadata": {"name": team},
            "spec": {"namespaces": [team], "quota": [{"flavor": "t4", "gpus": 2}]},
        }
        eventually("admin aggregates cadre-edit", lambda: adam.can("create", "trainingjobs", team))
        for person in (alice, victor, adam):  # a team sets no quota of its own
            allowed(person.call("POST", RBS, budget), 403)
        # nor may its admin hand itself the platform admin's role (RBAC's escalation check)
        allowed(
            adam.call(
                "POST",
                f"/apis/rbac.authorization.k8s.io/v1/namespaces/{team}/rolebindings",
                binding("RoleBinding", "adam", "cadre-platform-admin", "adam-escalates"),
            ),
            403,
        )
        allowed(paula.call("POST", RBS, budget), 201)
        job = trainingjob("by-alice", "helm", "t4", runtime="1h")
        tjs = f"{GROUP}/namespaces/{team}/trainingjobs"
        allowed(victor.call("POST", tjs, job), 403)
        allowed(alice.call("POST", tjs, job), 201)
        allowed(victor.call("GET", f"{tjs}/by-alice"), 200)
        for person in (alice, paula):
            allowed(
                person.call(
                    "PATCH",
                    f"{tjs}/by-alice/status",
                    {"status": {"phase": "Succeeded"}},
                    "application/merge-patch+json",
                ),
                403,
            )
        allowed(alice.call("DELETE", f"{tjs}/by-alice"), 200)
        # The operator config is the platform admin's, and nothing else in its namespace.
        configmaps = f"/api/v1/namespaces/{SYSTEM}/configmaps"
        patch = {"metadata": {"annotations": {"cadre.dev/reviewed-by": "paula"}}}
        merge = "application/merge-patch+json"
        allowed(paula.call("PATCH", f"{configmaps}/cadre-config", patch, merge), 200)
        allowed(alice.call("PATCH", f"{configmaps}/cadre-config", patch, merge), 403)
        assert not paula.can("get", "secrets", SYSTEM, group="")
        assert not paula.can("create", "configmaps", SYSTEM, group="")
        restart = {  # what `kubectl rollout restart` sends (a dry run here)
            "spec": {"template": {"metadata": {"annotations": {"cadre.dev/restarted": "1"}}}}
        }
        deployment = f"/apis/apps/v1/namespaces/{SYSTEM}/deployments/cadre-operator"
        allowed(paula.call("PATCH", f"{deployment}?dryRun=All", restart, merge), 200)
        assert not paula.can("get", "configmaps", team, group="")
    finally:
        for person in (alice, victor, adam, paula):
            person.close()


EXAMPLES = [
    REPO / "examples" / "budgets.yaml",
    REPO / "e2e" / "cluster" / "demo-volumes.yaml",
    REPO / "examples" / "checkpoint-volume.yaml",
    REPO / "examples" / "trainingjob-single-gpu.yaml",
    REPO / "examples" / "trainingjob-pytorch.yaml",
    REPO / "examples" / "modeldeployment-canary.yaml",
]


def example_objects() -> list[tuple[str, str, str]]:
    """(plural path, namespace, name) of every Cadre object in the examples."""
    out = []
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["apiVersion"].startswith("cadre.dev/"):
                plural = doc["kind"].lower() + "s"
                namespace = doc["metadata"].get("namespace", "")
                out.append((plural, namespace, doc["metadata"]["name"]))
    return out


def has_status(obj: dict[str, Any]) -> bool:
    """The operator has written the object's status for its current spec."""
    status = obj.get("status") or {}
    return status.get("observedGeneration") == obj["metadata"]["generation"]


def object_path(plural: str, namespace: str, name: str) -> str:
    if namespace:
        return f"{GROUP}/namespaces/{namespace}/{plural}/{name}"
    return f"{GROUP}/{plural}/{name}"


def test_applying_the_examples_again_after_the_operator_reconciled_them_changes_nothing(
    release: Release, cluster: LocalCluster, luahealth: Path
) -> None:
    """GitOps: Argo CD applies the same files again and again. The operator writes status
    (and child objects) only, never a spec: a second server-side apply finds nothing to
    change, and the managed fields say who wrote what. The Argo CD health checks then run
    on the live objects, as Argo CD would run them."""
    files = [arg for path in EXAMPLES for arg in ("-f", str(path))]
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", *files)
    objects = example_objects()

    def reconciled() -> list[dict[str, Any]] | None:
        live = [cluster.api.get(object_path(*o)) for o in objects]
        return live if all(has_status(obj) for obj in live) else None

    live = eventually("the operator reconciled every example", reconciled, timeout=90)
    generations = {o: obj["metadata"]["generation"] for o, obj in zip(objects, live, strict=True)}

    # What a second apply would make of each object (a server-side dry run), against the
    # live object: the same spec and metadata. (kubectl diff would also show the status
    # the operator rewrites between its two reads.)
    dry = cluster.kubectl(
        "apply", "--server-side", "--field-manager=gitops", "--dry-run=server", "-o", "json", *files
    )
    would_be = {
        (i["kind"].lower() + "s", i["metadata"].get("namespace", ""), i["metadata"]["name"]): i
        for i in json.loads(dry.stdout)["items"]
        if i["apiVersion"].startswith("cadre.dev/")
    }
    for o in objects:
        live_now = cluster.api.get(object_path(*o))
        for part in ("labels", "annotations", "finalizers", "generation"):
            assert would_be[o]["metadata"].get(part) == live_now["metadata"].get(part), (o, part)
        assert would_be[o]["spec"] == live_now["spec"], o
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", *files)
    for o in objects:
        obj = cluster.api.get(object_path(*o))
        assert obj["metadata"]["generation"] == generations[o], o
        for entry in obj["metadata"]["managedFields"]:
            if entry["manager"].startswith("cadre"):
                assert entry.get("subresource") == "status", (o, entry)
            else:
                assert entry["manager"] == "gitops", (o, entry)

    # Argo CD's view of the live objects (its Lua VM, the scripts it would be given).
    scripts = {
        "trainingjobs": "cadre.dev_TrainingJob.lua",
        "modeldeployments": "cadre.dev_ModelDeployment.lua",
        "resourcebudgets": "cadre.dev_ResourceBudget.lua",
    }
    for o in objects:
        obj = cluster.api.get(object_path(*o))
        health = run_health(luahealth, HEALTH_SCRIPTS / scripts[o[0]], obj)
        assert health["status"] in EXPECTED_HEALTH[o[0]], (o, obj.get("status"), health)


# What Argo CD may show for the examples once reconciled on this cluster (docs/argocd.md):
# the budgets are Healthy whatever their spend; a TrainingJob runs or has run (KWOK ends
# its pods after a second), or waits its turn; the ModelDeployment's replicas come up.
EXPECTED_HEALTH = {
    "resourcebudgets": {"Healthy"},
    "trainingjobs": {"Healthy", "Progressing"},
    "modeldeployments": {"Healthy", "Progressing"},
}


@pytest.fixture(scope="module")
def luahealth() -> Path:
    return harness_binary()


def test_helm_upgrade_puts_the_health_checks_into_argo_cds_configmap(
    helm: Path, release: Release, cluster: LocalCluster
) -> None:
    """argocd.healthChecks.enabled: a hook server-side applies Cadre's keys into argocd-cm
    (Argo CD's own, made here as its install makes it), leaving its other keys alone."""
    cluster.create_namespace("argocd")
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "argocd-cm", "namespace": "argocd"},
                "data": ARGO_CM_DATA,
            }
        ),
    )
    upgrade: dict[str, subprocess.CompletedProcess[str]] = {}
    waiter = threading.Thread(
        target=lambda: upgrade.setdefault(
            "result",
            run_helm(
                helm,
                cluster,
                "upgrade",
                "cadre",
                str(CHART),
                "-n",
                SYSTEM,
                "--reuse-values",
                "--set",
                "argocd.healthChecks.enabled=true",
                check=False,
            ),
        )
    )
    waiter.start()
    installed = play_hook(cluster, "argocd-health", release.workdir)
    waiter.join(timeout=300)
    assert not waiter.is_alive(), "helm upgrade still waits for its hook"
    assert upgrade["result"].returncode == 0, upgrade["result"].stderr
    assert "3 Cadre health check(s)" in installed, installed
    configmap = cluster.api.get(ARGO_CM_PATH)
    for name, text in ARGO_CM_DATA.items():
        assert configmap["data"][name] == text
    for path in sorted(HEALTH_SCRIPTS.glob("*.lua")):
        assert configmap["data"][HEALTH_PREFIX + path.stem.split("_", 1)[1]] == path.read_text()
    owners = {
        e["manager"]
        for e in configmap["metadata"]["managedFields"]
        if any(k.startswith("f:" + HEALTH_PREFIX) for k in e["fieldsV1"].get("f:data", {}))
    }
    assert owners == {"cadre-argocd-health"}
    # The hook's objects went with its success.
    assert not cluster.api.exists(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/argocd/roles/cadre-argocd-health"
    )


def test_helm_uninstall_releases_every_accounting_finalizer(
    helm: Path, release: Release, cluster: LocalCluster, team: str
) -> None:
    tjs = f"{GROUP}/namespaces/{team}/trainingjobs"
    if not cluster.api.exists(f"{RBS}/{team}"):
        cluster.api.create(
            RBS,
            {
                "apiVersion": "cadre.dev/v1alpha1",
                "kind": "ResourceBudget",
                "metadata": {"name": team},
                "spec": {"namespaces": [team], "quota": [{"flavor": "t4", "gpus": 2}]},
            },
        )
    cluster.api.create(tjs, trainingjob("train", "helm", "t4", runtime="1h"))
    eventually(
        "the job's pod runs, held by the accounting finalizer",
        lambda: held_pods(cluster, team),
        timeout=60,
    )
    eventually(
        "the team's spend counts the running pod", lambda: spent(cluster, team) > 0, timeout=60
    )

    # helm uninstall: it deletes the release's objects, then runs the post-delete hook and
    # waits for it.
    uninstall: dict[str, subprocess.CompletedProcess[str]] = {}
    waiter = threading.Thread(
        target=lambda: uninstall.setdefault(
            "result", run_helm(helm, cluster, "uninstall", "cadre", "-n", SYSTEM, check=False)
        )
    )
    waiter.start()
    if cluster.api.exists(ARGO_CM_PATH):  # argocd.healthChecks was enabled by the upgrade
        # pre-delete, before anything of the release goes: Cadre's keys leave argocd-cm.
        removed = play_hook(cluster, "argocd-health", release.workdir)
        assert "health checks removed" in removed, removed
        left = cluster.api.get(ARGO_CM_PATH)["data"]
        assert not any(k.startswith(HEALTH_PREFIX) for k in left), left
        assert left == ARGO_CM_DATA
    eventually(
        "the release's Deployment is gone",
        lambda: (
            not cluster.api.exists(f"/apis/apps/v1/namespaces/{SYSTEM}/deployments/cadre-operator")
        ),
        timeout=120,
    )
    release.operator.stop()  # the kubelet stops the container of a deleted pod (SIGTERM)

    released = play_hook(cluster, "uninstall", release.workdir)
    assert "charged to their teams and released" in released, released
    waiter.join(timeout=300)
    assert not waiter.is_alive(), "helm uninstall still waits for its hook"
    result = uninstall["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert not held_pods(cluster, team)
    # The hook's objects went with its success; the CRDs and the team's work stay.
    assert not cluster.api.exists(f"/apis/batch/v1/namespaces/{SYSTEM}/jobs/cadre-uninstall")
    assert not cluster.api.exists("/apis/rbac.authorization.k8s.io/v1/clusterroles/cadre-uninstall")
    assert cluster.api.exists(f"{tjs}/train")
    assert spent(cluster, team) > 0


def spent(cluster: LocalCluster, team: str) -> Decimal:
    budget = cluster.api.get(f"{RBS}/{team}")
    return Decimal(str(((budget.get("status") or {}).get("spend") or {}).get("spent") or 0))
