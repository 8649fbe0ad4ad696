"""Cadre's ValidatingAdmissionPolicies (manifests/admission-policies.yaml) on a real API
server: each way a team member with the `edit` role could dodge the quota or the bill is
tried, and refused with a message that says what to do instead; what Cadre and
Kubernetes' own controllers must do still passes.

Identities are impersonated by the admin (Impersonate-User): the operator's
ServiceAccount (bound to manifests/rbac.yaml), a team member `alice`, the Job controller
and the garbage collector (kube-controller-manager with --use-service-account-credentials,
as in e2e/localcluster: their bootstrap RBAC roles exist in every API server). No
controller manager runs here, so the aggregated `edit` ClusterRole has no rules yet: alice
is bound, in each of her namespaces, to the two roles `edit` aggregates
(system:aggregate-to-edit and system:aggregate-to-view), which is `edit` in a real cluster.

Policies take effect asynchronously (the API server's informers): the module waits until
each refuses a dry-run probe, and a test that creates a ResourceBudget waits until the GPU
policy refuses a dry run in its namespace, before it asserts anything.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from modeldeployments import MDS, modeldeployment

from cadre.core.api.config import parse_config
from cadre.core.api.trainingjob import FROZEN_WHILE_ADMITTED
from cadre.core.budget.teams import selector_matches
from cadre.core.serving.children import build_serving_children
from cadre.core.training import build_training_job_children
from cadre_process import EXAMPLE_CONFIG, RBAC
from localcluster import LocalCluster, binaries, procs
from localcluster.api import client_tls
from localcluster.testing import in_ci
from trainingjobs import BUDGETS, TJS, running_trainingjob, trainingjob, with_phase
from waiting import eventually

pytestmark = pytest.mark.integration

POLICIES = Path(__file__).resolve().parents[2] / "manifests" / "admission-policies.yaml"
CHILDREN = "cadre-managed-children"
PODS = "cadre-managed-pods"
GPUS = "cadre-gpu-workloads"
OPERATOR_PODS = "cadre-operator-pod-patches"
SHAPE = "cadre-trainingjob-shape"
ALL_POLICIES = (CHILDREN, PODS, GPUS, OPERATOR_PODS, SHAPE)

OPERATOR = "system:serviceaccount:cadre-system:cadre-operator"
JOB_CONTROLLER = "system:serviceaccount:kube-system:job-controller"
GARBAGE_COLLECTOR = "system:serviceaccount:kube-system:generic-garbage-collector"
ALICE = "alice"
ADMIN = "cadre-test-admin"  # bound to cluster-admin (not system:masters) by `policies`

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
ACCOUNTING = "cadre.dev/accounting"
AUDIT_FAILURE = "validation.policy.admission.k8s.io/validation_failure"
VAPS = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
BINDINGS = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
CONFIG = parse_config(EXAMPLE_CONFIG.read_text(encoding="utf-8"))


# ---- requests as someone else -------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class Reply:
    status: int
    body: Any
    warnings: tuple[str, ...]

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else ""

    def denied_by(self, policy: str) -> bool:
        """Refused (403 Forbidden) by this policy's Deny binding."""
        return (
            self.status == 403
            and isinstance(self.body, dict)
            and self.body.get("reason") == "Forbidden"
            and f"ValidatingAdmissionPolicy '{policy}'" in self.message
        )

    def invalid_by(self, policy: str) -> bool:
        """Refused (422 Invalid) by this policy's Deny binding: the input is wrong, not
        the user's rights."""
        return (
            self.status == 422
            and isinstance(self.body, dict)
            and self.body.get("reason") == "Invalid"
            and f"ValidatingAdmissionPolicy '{policy}'" in self.message
        )

    def __repr__(self) -> str:  # what an assertion shows
        return f"{self.status} {self.message or self.body} {self.warnings or ''}"


class As:
    """Requests to the API server as `user`: the admin's certificate, Impersonate-User."""

    def __init__(self, cluster: LocalCluster, user: str) -> None:
        p = cluster.pki_paths
        self.tls = client_tls(p.ca_cert, p.client_cert("admin"), p.client_key("admin"))
        self.port = cluster.ports["apiserver"]
        self.user = user

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        dry_run: bool = False,
    ) -> Reply:
        if dry_run:
            path += ("&" if "?" in path else "?") + "dryRun=All"
        headers = {"Accept": "application/json", "Impersonate-User": self.user}
        payload = None if body is None else json.dumps(body).encode()
        if payload is not None:
            headers["Content-Type"] = content_type
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.tls, timeout=30)
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read().decode(errors="replace")
            warnings = tuple(resp.msg.get_all("Warning") or ())
        finally:
            conn.close()
        try:
            data: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            data = raw
        return Reply(resp.status, data, warnings)

    def create(self, path: str, obj: Mapping[str, Any], *, dry_run: bool = False) -> Reply:
        return self.request("POST", path, obj, dry_run=dry_run)

    def patch(
        self, path: str, patch: Any, content_type: str = MERGE, *, dry_run: bool = False
    ) -> Reply:
        return self.request("PATCH", path, patch, content_type=content_type, dry_run=dry_run)

    def delete(self, path: str, propagation: str | None = None, *, dry_run: bool = False) -> Reply:
        options: dict[str, Any] | None = None
        if propagation is not None:  # a body's options win over the query's: dryRun too
            options = {
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "propagationPolicy": propagation,
            }
            if dry_run:
                options["dryRun"] = ["All"]
        return self.request("DELETE", path, options, dry_run=dry_run)


def pods_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/pods" + (f"/{name}" if name else "")


def jobs_path(ns: str, name: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{ns}/jobs" + (f"/{name}" if name else "")


def services_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/services" + (f"/{name}" if name else "")


def escape(key: str) -> str:
    """A map key as a JSON-pointer segment."""
    return key.replace("~", "~0").replace("/", "~1")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# ---- workloads ----------------------------------------------------------------------------
def container(name: str, gpus: Mapping[str, str] | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": name,
        "image": "registry.invalid/train:1",  # never pulled: no kubelet here
        "resources": {"requests": {"cpu": "1"}},
    }
    if gpus:  # extended resources: limits (requests default to them)
        c["resources"]["limits"] = dict(gpus)
    return c


KINDS = (
    "Pod",
    "Job",
    "CronJob",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "ReplicationController",
)


def workload(
    kind: str, ns: str, name: str, gpus: Mapping[str, str] | None, *, init: bool = False
) -> tuple[str, dict[str, Any]]:
    """(collection path, object) of a `kind` whose pods ask for `gpus` (in an init
    container if `init`)."""
    labels = {"app": name}
    pod: dict[str, Any] = {"containers": [container("main", None if init else gpus)]}
    if init:
        pod["initContainers"] = [container("fetch", gpus)]
    pod["restartPolicy"] = "Never" if kind in ("Pod", "Job", "CronJob") else "Always"
    template = {"metadata": {"labels": labels}, "spec": pod}
    spec: dict[str, Any]
    match kind:
        case "Pod":
            group, plural, spec = "v1", "pods", pod
        case "Job":
            group, plural, spec = "batch/v1", "jobs", {"template": template}
        case "CronJob":
            group, plural = "batch/v1", "cronjobs"
            spec = {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": template}}}
        case "Deployment" | "ReplicaSet" | "StatefulSet":
            group, plural = "apps/v1", f"{kind.lower()}s"
            spec = {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}
            if kind == "StatefulSet":
                spec["serviceName"] = name
        case "DaemonSet":
            group, plural = "apps/v1", "daemonsets"
            spec = {"selector": {"matchLabels": labels}, "template": template}
        case "ReplicationController":
            group, plural = "v1", "replicationcontrollers"
            spec = {"replicas": 1, "selector": labels, "template": template}
        case _:
            raise ValueError(kind)
    prefix = "/api/v1" if group == "v1" else f"/apis/{group}"
    obj = {"apiVersion": group, "kind": kind, "metadata": {"name": name}, "spec": spec}
    return f"{prefix}/namespaces/{ns}/{plural}", obj


def gpu_pod(ns: str, name: str = "", gpus: str = "nvidia.com/gpu") -> tuple[str, dict[str, Any]]:
    return workload("Pod", ns, name or unique("gpu"), {gpus: "1"})


# ---- fixtures -----------------------------------------------------------------------------
def prepare_namespace(cluster: LocalCluster, ns: str) -> None:
    """What a team namespace has in a real cluster: a `default` ServiceAccount (pods need
    it; no controller makes it here) and alice with `edit`."""
    cluster.api.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
        exist_ok=True,
    )
    for role in ("system:aggregate-to-edit", "system:aggregate-to-view"):
        cluster.api.create(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"alice-{role.rsplit('-', 1)[-1]}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": ALICE}
                ],
            },
            exist_ok=True,
        )
    # The authorizer reads RoleBindings from an informer: wait until it has seen both,
    # or alice's first request may be refused by RBAC before any policy is asked.
    eventually(
        f"alice's bindings in {ns} in force",
        lambda: all(
            may(cluster, ALICE, verb, resource, ns, group=group)
            for verb, group, resource in (("create", "apps", "deployments"), ("get", "", "pods"))
        ),
    )


def may(
    cluster: LocalCluster,
    user: str,
    verb: str,
    resource: str,
    namespace: str = "",
    *,
    group: str = "",
    name: str = "",
) -> bool:
    """What the API server's authorizer says `user` may do (a SubjectAccessReview)."""
    review = cluster.api.create(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "name": name,
                    "namespace": namespace,
                },
            },
        },
    )
    return bool(review["status"].get("allowed"))


def allow_trainingjobs(cluster: LocalCluster, ns: str) -> None:
    """The cadre.dev part of `edit` for alice in `ns` (manifests/roles.yaml aggregates it
    in a real cluster; no controller manager aggregates it here)."""
    cluster.api.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "cadre-edit"},
            "rules": [
                {
                    "apiGroups": ["cadre.dev"],
                    "resources": ["trainingjobs"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                }
            ],
        },
    )
    cluster.api.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "alice-cadre-edit"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "cadre-edit",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": ALICE}],
        },
    )
    eventually(
        f"alice's cadre-edit binding in {ns} in force",
        lambda: may(cluster, ALICE, "create", "trainingjobs", ns, group="cadre.dev"),
    )


def probes(cluster: LocalCluster, ns: str) -> dict[str, Callable[[], bool]]:
    """One dry-run request per policy without params that it must refuse once in force."""
    alice, operator, admin = As(cluster, ALICE), As(cluster, OPERATOR), As(cluster, ADMIN)
    labelled = {"cadre.dev/trainingjob": "probe"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "probe", "labels": labelled},
        "spec": {"clusterIP": "None", "selector": labelled},
    }
    _, pod = workload("Pod", ns, "probe", None)
    pod["metadata"]["labels"] = labelled
    return {
        CHILDREN: lambda: alice.create(services_path(ns), service, dry_run=True).denied_by(
            CHILDREN
        ),
        PODS: lambda: alice.create(pods_path(ns), pod, dry_run=True).denied_by(PODS),
        OPERATOR_PODS: lambda: operator.patch(
            pods_path(ns, "plain"), {"metadata": {"labels": {"x": "y"}}}, dry_run=True
        ).denied_by(OPERATOR_PODS),
        SHAPE: lambda: admin.patch(
            f"{TJS.format(ns=ns)}/running", {"spec": {"workers": 3}}, dry_run=True
        ).invalid_by(SHAPE),
    }


@pytest.fixture(scope="module")
def policies(apiserver: LocalCluster) -> Iterator[None]:
    """The operator's RBAC and Cadre's policies, in force for this module (and left in
    force after it if something installed them before it)."""
    apiserver.kubectl("create", "namespace", "cadre-system", check=False)
    apiserver.kubectl("apply", "-f", str(RBAC))
    installed_before = apiserver.api.exists(f"{VAPS}/{CHILDREN}")
    apiserver.kubectl("apply", "-f", str(POLICIES))
    apiserver.kubectl(
        "create",
        "clusterrolebinding",
        ADMIN,
        "--clusterrole=cluster-admin",
        f"--user={ADMIN}",
        check=False,
    )
    ns = apiserver.create_namespace(unique("policy-probes"))
    try:
        prepare_namespace(apiserver, ns)
        path, pod = workload("Pod", ns, "plain", None)
        apiserver.api.create(path, pod)
        running_trainingjob(apiserver, ns, "running")
        for name, probe in probes(apiserver, ns).items():
            eventually(f"policy {name} in force", probe)
        yield
    finally:
        if not installed_before:
            apiserver.kubectl("delete", "--ignore-not-found", "-f", str(POLICIES))
        apiserver.delete_namespace(ns)


class Namespaces:
    """Team namespaces made for one test (alice has `edit` in each), deleted after it."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.made: list[str] = []

    def new(self, labels: Mapping[str, str] | None = None) -> str:
        ns: str = self.cluster.create_namespace(unique("team"), labels=dict(labels or {}))
        self.made.append(ns)
        prepare_namespace(self.cluster, ns)
        return ns

    def labels(self, ns: str) -> dict[str, str]:
        namespace: dict[str, Any] = self.cluster.api.get(f"/api/v1/namespaces/{ns}")
        return dict(namespace["metadata"]["labels"])


@pytest.fixture
def namespaces(apiserver: LocalCluster, policies: None) -> Iterator[Namespaces]:
    made = Namespaces(apiserver)
    yield made
    for ns in made.made:
        apiserver.delete_namespace(ns)


class Budgets:
    """ResourceBudgets made for one test, deleted after it."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.made: list[str] = []

    def new(
        self, namespaces: list[str] | None = None, selector: dict[str, Any] | None = None
    ) -> str:
        name = unique("budget")
        scope: dict[str, Any] = (
            {"namespaces": namespaces}
            if namespaces is not None
            else {"namespaceSelector": selector}
        )
        self.cluster.api.create(
            BUDGETS,
            {
                "apiVersion": "cadre.dev/v1alpha1",
                "kind": "ResourceBudget",
                "metadata": {"name": name},
                "spec": {**scope, "quota": [{"flavor": "t4", "gpus": 4}]},
            },
        )
        self.made.append(name)
        return name


@pytest.fixture
def budgets(apiserver: LocalCluster, policies: None) -> Iterator[Budgets]:
    made = Budgets(apiserver)
    yield made
    for name in made.made:
        apiserver.api.call("DELETE", f"{BUDGETS}/{name}", ok=(404,))


def wait_gpu_policy(cluster: LocalCluster, ns: str) -> None:
    """Until the GPU policy knows the namespace's budget (a dry run, changing nothing)."""
    path, pod = gpu_pod(ns, "probe")
    eventually(
        f"the GPU policy in force in {ns}",
        lambda: As(cluster, ALICE).create(path, pod, dry_run=True).denied_by(GPUS),
    )


@pytest.fixture
def budgeted(namespaces: Namespaces, budgets: Budgets, apiserver: LocalCluster) -> str:
    """A team namespace its ResourceBudget lists, with the GPU policy in force there."""
    ns = namespaces.new()
    budgets.new(namespaces=[ns])
    wait_gpu_policy(apiserver, ns)
    return ns


@dataclass(frozen=True)
class CadreJob:
    namespace: str
    name: str
    trainingjob_uid: str
    built: dict[str, Any]  # the builder's Job, as the operator sends it
    job: dict[str, Any]  # as the API server returned it to the operator

    @property
    def path(self) -> str:
        return jobs_path(self.namespace, self.name)

    @property
    def template(self) -> dict[str, Any]:
        return dict(self.job["spec"]["template"])


def create_cadre_job(cluster: LocalCluster, ns: str, name: str) -> CadreJob:
    """A TrainingJob (made by the admin, as `kubectl apply` would) and its children as
    the operator makes them: the builder's Service and suspended Job, created by the
    operator's ServiceAccount. Both creations must pass."""
    tj = cluster.api.create(TJS.format(ns=ns), trainingjob(name))
    uid = tj["metadata"]["uid"]
    children = build_training_job_children(
        tj, name=name, namespace=ns, uid=uid, team="vision", config=CONFIG
    )
    operator = As(cluster, OPERATOR)
    assert children.service is not None
    created = operator.create(services_path(ns), children.service)
    assert created.status == 201, created
    created = operator.create(jobs_path(ns), children.job)
    assert created.status == 201, created
    return CadreJob(ns, name, uid, children.job, created.body)


def pod_from_template(job: CadreJob, index: int = 0) -> dict[str, Any]:
    """The pod the Job controller makes for completion index `index` of `job`."""
    template = job.template
    uid = job.job["metadata"]["uid"]
    metadata = template["metadata"]
    labels = {
        **metadata["labels"],
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": job.name,
        "batch.kubernetes.io/job-completion-index": str(index),
        "controller-uid": uid,
        "job-name": job.name,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job.name}-{index}-{uuid.uuid4().hex[:5]}",
            "labels": labels,
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
            "finalizers": [*metadata["finalizers"], "batch.kubernetes.io/job-tracking"],
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job.name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {**template["spec"], "hostname": f"{job.name}-{index}"},
    }


@pytest.fixture
def cadre_job(apiserver: LocalCluster, budgeted: str) -> CadreJob:
    return create_cadre_job(apiserver, budgeted, unique("tj"))


@pytest.fixture
def cadre_pod(apiserver: LocalCluster, cadre_job: CadreJob) -> dict[str, Any]:
    """A worker pod of `cadre_job`, made by the Job controller (must pass)."""
    created = As(apiserver, JOB_CONTROLLER).create(
        pods_path(cadre_job.namespace), pod_from_template(cadre_job)
    )
    assert created.status == 201, created
    return dict(created.body)


def pod_path_of(pod: Mapping[str, Any]) -> str:
    return pods_path(pod["metadata"]["namespace"], pod["metadata"]["name"])


# ---- the policies themselves ----------------------------------------------------------------
def test_the_policies_type_check_cleanly(
    apiserver: LocalCluster, policies: None, tmp_path: Path
) -> None:
    """The API server checks every expression against the matched kinds' schemas (and the
    ResourceBudget CRD's, for params) in kube-controller-manager's
    validatingadmissionpolicy-status-controller: none may have a warning (a misspelt field
    would only fail at run time, on the path that reads it)."""
    found = binaries.find(("kube-controller-manager",)).get("kube-controller-manager")
    if found is None:
        reason = "no kube-controller-manager binary (e2e/cluster/build-binaries.sh builds it)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    rec, popen = procs.start(
        "vap-status-controller",
        [
            str(found.path),
            f"--kubeconfig={apiserver.kubeconfig}",
            "--controllers=validatingadmissionpolicy-status-controller",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
        ],
        tmp_path / "kube-controller-manager.log",
        die_with_parent=True,
    )
    try:

        def checked() -> dict[str, Any] | None:
            statuses = {}
            for name in ALL_POLICIES:
                policy = apiserver.api.get(f"{VAPS}/{name}")
                status = policy.get("status") or {}
                if status.get("observedGeneration") != policy["metadata"]["generation"]:
                    return None
                statuses[name] = status
            return statuses

        statuses = eventually("the policies type-checked", checked, timeout=60)
    finally:
        procs.stop(rec, popen)
    for name, status in statuses.items():
        assert not status.get("typeChecking", {}).get("expressionWarnings"), (name, status)


def test_alice_cannot_impersonate_the_identities_the_policies_trust(
    apiserver: LocalCluster, namespaces: Namespaces
) -> None:
    """The policies trust user names; `edit` lets alice impersonate ServiceAccounts, but
    only in her own namespace: not the operator's, not kube-system's controllers."""
    ns = namespaces.new()

    def may_impersonate(resource: str, name: str, namespace: str = "") -> bool:
        return may(apiserver, ALICE, "impersonate", resource, namespace, name=name)

    assert may_impersonate("serviceaccounts", "default", ns)  # what `edit` gives her
    assert not may_impersonate("serviceaccounts", "cadre-operator", "cadre-system")
    assert not may_impersonate("serviceaccounts", "job-controller", "kube-system")
    assert not may_impersonate("serviceaccounts", "generic-garbage-collector", "kube-system")
    assert not may_impersonate("users", "system:kube-controller-manager")
    assert not may_impersonate("groups", "system:masters")


# ---- a) Cadre's Jobs and Services -----------------------------------------------------------
def test_the_operator_creates_a_trainingjobs_job_and_service(
    apiserver: LocalCluster, cadre_job: CadreJob
) -> None:
    service = apiserver.api.get(services_path(cadre_job.namespace, cadre_job.name))
    assert service["metadata"]["labels"]["cadre.dev/trainingjob"] == cadre_job.name
    assert cadre_job.job["spec"]["suspend"] is True
    # ... and changes it: admission is unsuspending (a dry run: nothing else runs here).
    reply = As(apiserver, OPERATOR).patch(
        cadre_job.path, {"spec": {"suspend": False}}, dry_run=True
    )
    assert reply.status == 200, reply


def test_alice_cannot_create_jobs_or_services_labelled_like_cadre(
    apiserver: LocalCluster, cadre_job: CadreJob, namespaces: Namespaces
) -> None:
    """In a namespace outside budgets: inside, the GPU policy refuses the GPU Job too,
    and the API server names only one of the policies that refused."""
    alice = As(apiserver, ALICE)
    ns = namespaces.new()
    copy = {
        **cadre_job.built,
        "metadata": {**cadre_job.built["metadata"], "namespace": ns, "name": unique("mine")},
    }
    reply = alice.create(jobs_path(ns), copy)
    assert reply.denied_by(CHILDREN), reply
    assert "Create a TrainingJob or a ModelDeployment instead" in reply.message

    # A Job of her own whose pod template carries Cadre's labels: its pods would be
    # charged to whichever team it names.
    path, own = workload("Job", ns, unique("own"), None)
    own["spec"]["template"]["metadata"]["labels"]["cadre.dev/team"] = "someone-else"
    reply = alice.create(path, own)
    assert reply.denied_by(CHILDREN), reply

    service = apiserver.api.get(services_path(cadre_job.namespace, cadre_job.name))
    mine = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": unique("mine"), "labels": service["metadata"]["labels"]},
        "spec": {"clusterIP": "None", "selector": service["spec"]["selector"]},
    }
    reply = alice.create(services_path(ns), mine)
    assert reply.denied_by(CHILDREN), reply


JOB_ESCAPES: dict[str, tuple[str, Any]] = {
    "unsuspend": (MERGE, {"spec": {"suspend": False}}),
    "drop the node selector": (MERGE, {"spec": {"template": {"spec": {"nodeSelector": None}}}}),
    "tolerate every taint": (
        MERGE,
        {"spec": {"template": {"spec": {"tolerations": [{"operator": "Exists"}]}}}},
    ),
    "drop the trainingjob label": (
        JSON_PATCH,
        [{"op": "remove", "path": "/metadata/labels/" + escape("cadre.dev/trainingjob")}],
    ),
    "relabel the team": (MERGE, {"metadata": {"labels": {"cadre.dev/team": "someone-else"}}}),
    "relabel the pods": (
        MERGE,
        {"spec": {"template": {"metadata": {"labels": {"cadre.dev/team": "someone-else"}}}}},
    ),
    "change the spec hash": (MERGE, {"metadata": {"annotations": {"cadre.dev/spec-hash": "0"}}}),
    "add a harmless label": (MERGE, {"metadata": {"labels": {"mine": "yes"}}}),
}


@pytest.mark.parametrize("escape_name", list(JOB_ESCAPES))
def test_alice_cannot_change_a_cadre_job(
    apiserver: LocalCluster, cadre_job: CadreJob, escape_name: str
) -> None:
    content_type, patch = JOB_ESCAPES[escape_name]
    reply = As(apiserver, ALICE).patch(cadre_job.path, patch, content_type)
    assert reply.denied_by(CHILDREN), reply
    assert f"(of TrainingJob {cadre_job.name}) is managed by Cadre" in reply.message
    assert "Change the TrainingJob instead" in reply.message
    after = apiserver.api.get(cadre_job.path)
    assert after["metadata"]["resourceVersion"] == cadre_job.job["metadata"]["resourceVersion"]
    assert after["spec"]["suspend"] is True


def test_alice_cannot_change_a_cadre_service(apiserver: LocalCluster, cadre_job: CadreJob) -> None:
    path = services_path(cadre_job.namespace, cadre_job.name)
    reply = As(apiserver, ALICE).patch(path, {"spec": {"selector": {"app": "mine"}}})
    assert reply.denied_by(CHILDREN), reply
    assert "Change the TrainingJob instead" in reply.message


def test_deleting_a_cadre_job_may_not_orphan_its_pods(
    apiserver: LocalCluster, cadre_job: CadreJob
) -> None:
    """Deleting a Cadre Job is allowed (the operator makes it again, suspended), but not
    so that its pods keep running without it: a batch/v1 Job deleted without a
    propagationPolicy orphans them, for backwards compatibility."""
    alice = As(apiserver, ALICE)
    for propagation in ("Orphan", None):
        reply = alice.delete(cadre_job.path, propagation)
        assert reply.denied_by(CHILDREN), (propagation, reply)
        assert "would leave its pods running outside the team quota" in reply.message
    for propagation in ("Foreground", "Background"):
        reply = alice.delete(cadre_job.path, propagation, dry_run=True)
        assert reply.status == 200, (propagation, reply)
    reply = alice.delete(cadre_job.path, "Background")
    assert reply.status == 200, reply


def test_deleting_a_trainingjob_may_not_orphan_its_job(
    apiserver: LocalCluster, cadre_job: CadreJob
) -> None:
    ns = cadre_job.namespace
    allow_trainingjobs(apiserver, ns)
    path = f"{TJS.format(ns=ns)}/{cadre_job.name}"
    alice = As(apiserver, ALICE)
    eventually(  # RBAC takes effect asynchronously too: until the policy, not RBAC, refuses
        "alice's orphaning delete refused by the policy",
        lambda: alice.delete(path, "Orphan", dry_run=True).denied_by(CHILDREN),
    )
    reply = alice.delete(path, "Orphan")
    assert reply.denied_by(CHILDREN), reply
    assert "would leave its Job running outside the team quota" in reply.message
    reply = alice.delete(path, dry_run=True)  # cascading (the default for a TrainingJob)
    assert reply.status == 200, reply


def test_kubernetes_controllers_still_do_their_part_on_cadre_jobs(
    apiserver: LocalCluster, cadre_job: CadreJob
) -> None:
    """The Job controller writes the status subresource, which no policy matches; the
    garbage collector changes ownerReferences (metadata only), not the spec."""
    job = apiserver.api.get(cadre_job.path)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    job["status"] = {
        "conditions": [
            {
                "type": "Suspended",
                "status": "True",
                "reason": "JobSuspended",
                "message": "Job suspended",
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }
        ]
    }
    reply = As(apiserver, JOB_CONTROLLER).request("PUT", cadre_job.path + "/status", job)
    assert reply.status == 200, reply

    gc = As(apiserver, GARBAGE_COLLECTOR)
    reply = gc.patch(cadre_job.path, {"spec": {"suspend": False}})
    assert reply.denied_by(CHILDREN), reply
    reply = gc.patch(
        cadre_job.path, [{"op": "remove", "path": "/metadata/ownerReferences"}], JSON_PATCH
    )
    assert reply.status == 200, reply
    assert not reply.body["metadata"].get("ownerReferences")


# ---- a') a ModelDeployment's children ------------------------------------------------------
DEPLOYMENT_CONTROLLER = "system:serviceaccount:kube-system:deployment-controller"
REPLICASET_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"


@dataclass
class CadreServing:
    namespace: str
    name: str
    deployment: dict[str, Any]
    hpa: dict[str, Any]

    @property
    def path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.name}"


@pytest.fixture
def cadre_serving(apiserver: LocalCluster, budgeted: str) -> CadreServing:
    """A ModelDeployment (made by the admin) and its Deployment and autoscaler as the
    operator makes them (both creations must pass)."""
    name = unique("md")
    md = apiserver.api.create(
        MDS.format(ns=budgeted),
        modeldeployment(name, replicas={"min": 2, "max": 4}, autoscaling={"metric": "cpu"}),
    )
    children = build_serving_children(
        md,
        name=name,
        namespace=budgeted,
        uid=md["metadata"]["uid"],
        team="vision",
        config=CONFIG,
        stable_replicas=2,
        canary_replicas=0,
        hpa_min=2,
        hpa_max=2,
    )
    operator = As(apiserver, OPERATOR)
    made = operator.create(f"/apis/apps/v1/namespaces/{budgeted}/deployments", children.stable)
    assert made.status == 201, made
    assert children.hpa is not None
    hpa = operator.create(
        f"/apis/autoscaling/v2/namespaces/{budgeted}/horizontalpodautoscalers", children.hpa
    )
    assert hpa.status == 201, hpa
    return CadreServing(budgeted, name, made.body, hpa.body)


def test_alice_cannot_scale_or_change_a_cadre_deployment(
    apiserver: LocalCluster, cadre_serving: CadreServing
) -> None:
    alice = As(apiserver, ALICE)
    for patch in (
        {"spec": {"replicas": 10}},
        {"spec": {"template": {"spec": {"nodeSelector": {"cadre.dev/flavor": "a100"}}}}},
        {"metadata": {"labels": {"cadre.dev/team": "other"}}},
    ):
        reply = alice.patch(cadre_serving.path, patch)
        assert reply.denied_by(CHILDREN), reply
        assert f"(of ModelDeployment {cadre_serving.name})" in reply.message
        assert "Change the ModelDeployment instead" in reply.message
    hpa = (
        f"/apis/autoscaling/v2/namespaces/{cadre_serving.namespace}/"
        f"horizontalpodautoscalers/{cadre_serving.name}"
    )
    reply = alice.patch(hpa, {"spec": {"maxReplicas": 50}})
    assert reply.denied_by(CHILDREN), reply


def test_alice_cannot_make_replicasets_or_pods_of_a_model_deployment(
    apiserver: LocalCluster, cadre_serving: CadreServing
) -> None:
    template = cadre_serving.deployment["spec"]["template"]
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": unique("rs"), "labels": template["metadata"]["labels"]},
        "spec": {
            "replicas": 5,
            "selector": cadre_serving.deployment["spec"]["selector"],
            "template": template,
        },
    }
    path = f"/apis/apps/v1/namespaces/{cadre_serving.namespace}/replicasets"
    reply = As(apiserver, ALICE).create(path, replicaset, dry_run=True)
    assert reply.denied_by(CHILDREN) or reply.denied_by(GPUS), reply  # whichever answers first
    # The Deployment controller makes them: allowed.
    reply = As(apiserver, DEPLOYMENT_CONTROLLER).create(path, replicaset, dry_run=True)
    assert reply.status == 201, reply
    # A pod of a ReplicaSet comes from the ReplicaSet controller, never from alice.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": unique("pod"),
            "labels": template["metadata"]["labels"],
            "finalizers": template["metadata"]["finalizers"],
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "whatever",
                    "uid": str(uuid.uuid4()),
                    "controller": True,
                }
            ],
        },
        "spec": template["spec"],
    }
    reply = As(apiserver, ALICE).create(pods_path(cadre_serving.namespace), pod, dry_run=True)
    assert reply.denied_by(PODS) or reply.denied_by(GPUS), reply
    reply = As(apiserver, REPLICASET_CONTROLLER).create(
        pods_path(cadre_serving.namespace), pod, dry_run=True
    )
    assert reply.status == 201, reply


def test_the_deployment_controller_may_record_its_revision(
    apiserver: LocalCluster, cadre_serving: CadreServing
) -> None:
    """It updates the Deployment (its RBAC role has update, not patch) to record the
    revision in an annotation; it may not change the spec."""
    controller = As(apiserver, DEPLOYMENT_CONTROLLER)
    current = apiserver.api.get(cadre_serving.path)
    current["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    reply = controller.request("PUT", cadre_serving.path, current)
    assert reply.status == 200, reply
    changed = reply.body
    changed["spec"]["replicas"] = 9
    reply = controller.request("PUT", cadre_serving.path, changed)
    assert reply.denied_by(CHILDREN), reply


# ---- b) Cadre's pods --------------------------------------------------------------------------
def test_the_job_controller_makes_a_cadre_jobs_gpu_pods(
    apiserver: LocalCluster, cadre_job: CadreJob
) -> None:
    """In a namespace of a budget too: the pods carry Cadre's labels, from the template."""
    pod = pod_from_template(cadre_job)
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    reply = As(apiserver, JOB_CONTROLLER).create(pods_path(cadre_job.namespace), pod)
    assert reply.status == 201, reply


def gpu_policy_checks(cluster: LocalCluster) -> float:
    """How often the API server has evaluated the GPU policy (its own metric, all
    outcomes): once per ResourceBudget for each request the policy matches."""
    status, text = cluster.api.request("GET", "/metrics")
    assert status == 200
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in str(text).splitlines()
        if line.startswith("apiserver_validating_admission_policy_check_total{")
        and f'policy="{GPUS}"' in line
    )


def test_cadres_own_children_never_reach_the_gpu_policy(
    apiserver: LocalCluster, budgeted: str, budgets: Budgets
) -> None:
    """The GPU policy runs once per ResourceBudget, the object converted for CEL each
    time: at 1,000 budgets, running it on the operator's Jobs took 60% of the API server's
    CPU (S2). Cadre's children are left out by a label selector, before any CEL; the
    cadre-managed policies are what keeps others from making objects with those labels."""
    budgets.new(namespaces=[unique("elsewhere")])  # two budgets: two evaluations a request
    before = gpu_policy_checks(apiserver)
    job = create_cadre_job(apiserver, budgeted, unique("tj"))
    reply = As(apiserver, JOB_CONTROLLER).create(pods_path(budgeted), pod_from_template(job))
    assert reply.status == 201, reply
    assert gpu_policy_checks(apiserver) == before
    # Anyone else's GPU pod is still checked, against every budget.
    path, pod = gpu_pod(budgeted)
    assert As(apiserver, ALICE).create(path, pod, dry_run=True).denied_by(GPUS)
    assert gpu_policy_checks(apiserver) > before


def test_alice_cannot_create_pods_labelled_like_cadre(
    apiserver: LocalCluster, cadre_job: CadreJob, namespaces: Namespaces
) -> None:
    """Outside budgets (see test_alice_cannot_create_jobs_or_services_labelled_like_cadre);
    in the Cadre Job's own namespace either policy may be the one named."""
    alice = As(apiserver, ALICE)
    reply = alice.create(pods_path(cadre_job.namespace), pod_from_template(cadre_job))
    assert reply.denied_by(PODS) or reply.denied_by(GPUS), reply
    ns = namespaces.new()
    reply = alice.create(pods_path(ns), pod_from_template(cadre_job))
    assert reply.denied_by(PODS), reply
    assert "create a TrainingJob or ModelDeployment instead" in reply.message
    # Not even CPU-only, with just a team label: it would be charged to that team.
    path, pod = workload("Pod", ns, unique("mine"), None)
    pod["metadata"]["labels"] = {"cadre.dev/team": "someone-else"}
    reply = alice.create(path, pod)
    assert reply.denied_by(PODS), reply


def test_only_a_jobs_pods_may_carry_cadre_labels(
    apiserver: LocalCluster, cadre_job: CadreJob, namespaces: Namespaces
) -> None:
    """The Job controller's pods have their Job as controller: a Cadre-labelled pod that
    claims another owner (a ReplicaSet's, or none) is refused even from a controller, for
    kube-controller-manager without SA credentials gives all its controllers one name."""
    ns = namespaces.new()
    pod = pod_from_template(cadre_job)
    owner = pod["metadata"]["ownerReferences"][0]
    pod["metadata"]["ownerReferences"] = [
        {**owner, "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "look-alike"}
    ]
    reply = As(apiserver, JOB_CONTROLLER).create(pods_path(ns), pod)
    assert reply.denied_by(PODS), reply
    del pod["metadata"]["ownerReferences"]
    reply = As(apiserver, JOB_CONTROLLER).create(pods_path(ns), pod)
    assert reply.denied_by(PODS), reply


POD_RELABELS: dict[str, tuple[str, Any]] = {
    "charge another team": (MERGE, {"metadata": {"labels": {"cadre.dev/team": "someone-else"}}}),
    "leave the trainingjob": (
        JSON_PATCH,
        [{"op": "remove", "path": "/metadata/labels/" + escape("cadre.dev/trainingjob")}],
    ),
    "join another trainingjob": (MERGE, {"metadata": {"labels": {"cadre.dev/trainingjob": "x"}}}),
    "add a cadre label": (MERGE, {"metadata": {"labels": {"cadre.dev/extra": "x"}}}),
}


@pytest.mark.parametrize("relabel", list(POD_RELABELS))
def test_alice_cannot_relabel_a_cadre_pod(
    apiserver: LocalCluster, cadre_pod: dict[str, Any], relabel: str
) -> None:
    content_type, patch = POD_RELABELS[relabel]
    reply = As(apiserver, ALICE).patch(pod_path_of(cadre_pod), patch, content_type)
    assert reply.denied_by(PODS), reply
    assert "only Cadre sets them" in reply.message
    after = apiserver.api.get(pod_path_of(cadre_pod))
    assert after["metadata"]["labels"] == cadre_pod["metadata"]["labels"]


def test_alice_may_change_a_cadre_pods_other_labels(
    apiserver: LocalCluster, cadre_pod: dict[str, Any]
) -> None:
    reply = As(apiserver, ALICE).patch(pod_path_of(cadre_pod), {"metadata": {"labels": {"m": "y"}}})
    assert reply.status == 200, reply


def test_alice_cannot_make_her_pod_look_like_cadres(
    apiserver: LocalCluster, namespaces: Namespaces
) -> None:
    ns = namespaces.new()
    path, pod = workload("Pod", ns, unique("mine"), None)
    alice = As(apiserver, ALICE)
    created = alice.create(path, pod)
    assert created.status == 201, created
    reply = alice.patch(
        pod_path_of(created.body), {"metadata": {"labels": {"cadre.dev/trainingjob": "x"}}}
    )
    assert reply.denied_by(PODS), reply


def test_only_cadre_removes_the_accounting_finalizer(
    apiserver: LocalCluster, cadre_pod: dict[str, Any]
) -> None:
    path = pod_path_of(cadre_pod)
    finalizers = cadre_pod["metadata"]["finalizers"]
    index = finalizers.index(ACCOUNTING)
    remove = [
        {"op": "test", "path": f"/metadata/finalizers/{index}", "value": ACCOUNTING},
        {"op": "remove", "path": f"/metadata/finalizers/{index}"},
    ]
    reply = As(apiserver, ALICE).patch(path, remove, JSON_PATCH)
    assert reply.denied_by(PODS), reply
    assert "cadre.dev/accounting finalizer keeps the pod" in reply.message
    reply = As(apiserver, ALICE).patch(
        path, {"metadata": {"finalizers": ["batch.kubernetes.io/job-tracking"]}}
    )
    assert reply.denied_by(PODS), reply

    # The Job controller takes its own finalizer off (its own patch, verbatim).
    reply = As(apiserver, JOB_CONTROLLER).patch(
        path,
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["batch.kubernetes.io/job-tracking"]}},
        STRATEGIC,
    )
    assert reply.status == 200, reply
    assert reply.body["metadata"]["finalizers"] == [ACCOUNTING]


# ---- d) the operator's patches of pods -------------------------------------------------------
def test_the_operator_may_only_remove_its_finalizer_from_pods(
    apiserver: LocalCluster, cadre_pod: dict[str, Any]
) -> None:
    operator = As(apiserver, OPERATOR)
    path = pod_path_of(cadre_pod)
    finalizers = cadre_pod["metadata"]["finalizers"]
    index = finalizers.index(ACCOUNTING)
    remove = [  # what budget_writer.py sends
        {"op": "test", "path": f"/metadata/finalizers/{index}", "value": ACCOUNTING},
        {"op": "remove", "path": f"/metadata/finalizers/{index}"},
    ]
    label = {"op": "add", "path": "/metadata/labels/" + escape("cadre.dev/team"), "value": "x"}
    denied: list[tuple[str, Any]] = [
        (MERGE, {"metadata": {"labels": {"cadre.dev/team": "someone-else"}}}),
        (MERGE, {"metadata": {"labels": {"harmless": "yes"}}}),
        (MERGE, {"metadata": {"annotations": {"note": "x"}}}),
        (MERGE, {"spec": {"activeDeadlineSeconds": 1}}),
        (MERGE, {"metadata": {"finalizers": [*finalizers, "example.com/keep"]}}),
        (MERGE, {"metadata": {"finalizers": []}}),  # the Job controller's is not Cadre's
        (JSON_PATCH, [*remove, label]),  # the finalizer, and something else
    ]
    for content_type, patch in denied:
        reply = operator.patch(path, patch, content_type)
        assert reply.denied_by(OPERATOR_PODS), (patch, reply)
        assert "may only remove its cadre.dev/accounting finalizer" in reply.message

    reply = operator.patch(path, remove, JSON_PATCH)
    assert reply.status == 200, reply
    assert reply.body["metadata"]["finalizers"] == [f for f in finalizers if f != ACCOUNTING]


def test_the_operator_cannot_label_other_pods(
    apiserver: LocalCluster, namespaces: Namespaces
) -> None:
    ns = namespaces.new()
    path, pod = workload("Pod", ns, unique("plain"), None)
    apiserver.api.create(path, pod)
    reply = As(apiserver, OPERATOR).patch(
        pods_path(ns, pod["metadata"]["name"]), {"metadata": {"labels": {"x": "y"}}}
    )
    assert reply.denied_by(OPERATOR_PODS), reply


# ---- c) GPUs in a budget's namespaces come through Cadre -------------------------------------
GPU_CASES = {
    "Pod nvidia.com/gpu": ("Pod", "nvidia.com/gpu", False),
    "Pod amd.com/gpu": ("Pod", "amd.com/gpu", False),
    "Pod MIG slice": ("Pod", "nvidia.com/mig-1g.5gb", False),
    "Pod init container": ("Pod", "nvidia.com/gpu", True),
    **{kind: (kind, "nvidia.com/gpu", False) for kind in KINDS if kind != "Pod"},
}


@pytest.mark.parametrize("case", list(GPU_CASES))
def test_gpu_workloads_in_a_listed_namespace_are_refused(
    apiserver: LocalCluster, namespaces: Namespaces, budgets: Budgets, case: str
) -> None:
    kind, gpus, init = GPU_CASES[case]
    ns = namespaces.new()
    budget = budgets.new(namespaces=[ns])
    wait_gpu_policy(apiserver, ns)
    path, obj = workload(kind, ns, unique("gpu"), {gpus: "1"}, init=init)
    reply = As(apiserver, ALICE).create(path, obj)
    assert reply.denied_by(GPUS), reply
    assert f"namespace {ns} belongs to ResourceBudget {budget}" in reply.message
    assert f"this {kind} asks for GPUs directly. Create a TrainingJob instead" in reply.message


@pytest.mark.parametrize("kind", KINDS)
def test_gpu_workloads_outside_budgets_are_allowed(
    apiserver: LocalCluster, namespaces: Namespaces, budgeted: str, kind: str
) -> None:
    """A namespace no budget covers is not Cadre's to police (while the policy is in
    force next door: `budgeted`)."""
    ns = namespaces.new()
    path, obj = workload(kind, ns, unique("gpu"), {"nvidia.com/gpu": "1"})
    reply = As(apiserver, ALICE).create(path, obj)
    assert reply.status == 201, reply


@pytest.mark.parametrize("kind", ["Pod", "Job", "Deployment"])
def test_cpu_workloads_in_a_budget_are_allowed(
    apiserver: LocalCluster, budgeted: str, kind: str
) -> None:
    path, obj = workload(kind, budgeted, unique("cpu"), None)
    reply = As(apiserver, ALICE).create(path, obj)
    assert reply.status == 201, reply


def test_a_budgets_namespace_selector_is_read_as_kubernetes_does(
    apiserver: LocalCluster, namespaces: Namespaces, budgets: Budgets
) -> None:
    """Every operator of a label selector, against namespaces that each miss one
    requirement; the policy's verdict must be cadre.core.budget.teams.selector_matches's
    (the operator's own reading of which namespaces a budget covers)."""
    key = f"sel-{uuid.uuid4().hex[:6]}.example.com"
    selector = {
        "matchLabels": {f"{key}/tier": "gpu"},
        "matchExpressions": [
            {"key": f"{key}/team", "operator": "In", "values": ["vision", "nlp"]},
            {"key": f"{key}/stage", "operator": "NotIn", "values": ["sandbox"]},
            {"key": f"{key}/cost-center", "operator": "Exists"},
            {"key": f"{key}/opt-out", "operator": "DoesNotExist"},
        ],
    }
    matching = {f"{key}/tier": "gpu", f"{key}/team": "vision", f"{key}/cost-center": "42"}
    cases = {
        "matches (no stage: NotIn holds)": matching,
        "matches (stage prod)": {**matching, f"{key}/stage": "prod"},
        "tier cpu": {**matching, f"{key}/tier": "cpu"},
        "team not In": {**matching, f"{key}/team": "ads"},
        "no team": {k: v for k, v in matching.items() if k != f"{key}/team"},
        "stage sandbox": {**matching, f"{key}/stage": "sandbox"},
        "no cost-center": {k: v for k, v in matching.items() if k != f"{key}/cost-center"},
        "opted out": {**matching, f"{key}/opt-out": "yes"},
    }
    made = {case: namespaces.new(labels) for case, labels in cases.items()}
    budgets.new(selector=selector)
    wait_gpu_policy(apiserver, made["matches (no stage: NotIn holds)"])
    alice = As(apiserver, ALICE)
    for case, ns in made.items():
        expected = selector_matches(selector, namespaces.labels(ns))
        path, pod = gpu_pod(ns)
        reply = alice.create(path, pod, dry_run=True)
        assert reply.denied_by(GPUS) == expected, (case, reply)
        assert reply.status == (403 if expected else 201), (case, reply)
    assert sum(selector_matches(selector, namespaces.labels(ns)) for ns in made.values()) == 2


@pytest.mark.parametrize("kind", ["Pod", "Job", "Deployment"])
def test_gpu_workloads_in_a_selected_namespace_are_refused(
    apiserver: LocalCluster, namespaces: Namespaces, budgets: Budgets, kind: str
) -> None:
    key = f"sel-{uuid.uuid4().hex[:6]}.example.com/team"
    ns = namespaces.new({key: "vision"})
    budget = budgets.new(selector={"matchLabels": {key: "vision"}})
    wait_gpu_policy(apiserver, ns)
    path, obj = workload(kind, ns, unique("gpu"), {"nvidia.com/gpu": "1"})
    reply = As(apiserver, ALICE).create(path, obj)
    assert reply.denied_by(GPUS), reply
    assert f"namespace {ns} belongs to ResourceBudget {budget}" in reply.message


def test_an_empty_selector_covers_every_namespace(
    apiserver: LocalCluster, namespaces: Namespaces, budgets: Budgets
) -> None:
    ns = namespaces.new()
    budget = budgets.new(selector={})
    wait_gpu_policy(apiserver, ns)
    assert selector_matches({}, namespaces.labels(ns))
    # It covers every namespace of the cluster: gone before the next test runs.
    apiserver.api.call("DELETE", f"{BUDGETS}/{budget}")
    path, pod = gpu_pod(ns)
    eventually(
        "the budget forgotten by the GPU policy",
        lambda: As(apiserver, ALICE).create(path, pod, dry_run=True).status == 201,
    )


def test_no_more_gpus_for_workloads_already_there(apiserver: LocalCluster, budgeted: str) -> None:
    """A workload may not be given GPUs (or more of them) after its creation; one that
    asked for GPUs before its namespace joined a budget (here: made by the admin) keeps
    what it has and may be relabelled, but gets no more."""
    alice = As(apiserver, ALICE)
    path, cpu = workload("Deployment", budgeted, unique("cpu"), None)
    assert alice.create(path, cpu).status == 201
    more = {
        "spec": {
            "template": {
                "spec": {"containers": [container("main", {"nvidia.com/gpu": "1"})]},
            }
        }
    }
    reply = alice.patch(f"{path}/{cpu['metadata']['name']}", more)
    assert reply.denied_by(GPUS), reply

    path, old = workload("Deployment", budgeted, unique("old"), {"nvidia.com/gpu": "1"})
    apiserver.api.create(path, old)
    at = f"{path}/{old['metadata']['name']}"
    reply = alice.patch(at, {"metadata": {"labels": {"owner": "alice"}}})
    assert reply.status == 200, reply
    reply = alice.patch(at, {"spec": {"replicas": 0}})
    assert reply.status == 200, reply
    twice = {
        "spec": {
            "template": {
                "spec": {"containers": [container("main", {"nvidia.com/gpu": "2"})]},
            }
        }
    }
    reply = alice.patch(at, twice)
    assert reply.denied_by(GPUS), reply


def test_controllers_may_not_make_gpu_pods_that_are_not_cadres(
    apiserver: LocalCluster, budgeted: str
) -> None:
    """The Job controller runs every Job, not only Cadre's: a GPU pod of a Job that is
    not Cadre's (made before the namespace joined a budget) is refused too."""
    path, pod = gpu_pod(budgeted)
    for user in (JOB_CONTROLLER, "system:serviceaccount:kube-system:replicaset-controller"):
        reply = As(apiserver, user).create(path, pod)
        assert reply.denied_by(GPUS), (user, reply)


def test_the_binding_can_warn_and_audit_instead_of_denying(
    apiserver: LocalCluster, budgeted: str
) -> None:
    """validationActions is the binding's: [Warn, Audit] lets the request through with a
    warning for the client and an annotation in the audit log (a gradual roll-out)."""
    binding = f"{BINDINGS}/{GPUS}"
    alice = As(apiserver, ALICE)
    path, pod = gpu_pod(budgeted)

    def set_actions(actions: list[str]) -> None:
        apiserver.api.patch(binding, {"spec": {"validationActions": actions}})

    set_actions(["Warn", "Audit"])
    try:

        def warns() -> Reply | None:
            reply = alice.create(path, pod, dry_run=True)
            return reply if reply.status == 201 and reply.warnings else None

        eventually("the GPU policy only warns", warns)
        reply = alice.create(path, pod)
        assert reply.status == 201, reply
        (warning,) = [w for w in reply.warnings if GPUS in w]
        assert "belongs to ResourceBudget" in warning
        assert "Create a TrainingJob instead" in warning
        (event,) = apiserver.wait_audit_events(
            verbs=("create",),
            resource="pods",
            namespace=budgeted,
            where=lambda e: "dryRun" not in e.request_uri,
        )
        assert event.code == 201
        annotations = event.raw.get("annotations") or {}
        assert GPUS in annotations.get(AUDIT_FAILURE, ""), event.raw
    finally:
        set_actions(["Deny"])
    wait_gpu_policy(apiserver, budgeted)


# ---- the manifest ------------------------------------------------------------------------------
def test_the_manifest_is_what_these_tests_assume() -> None:
    """The identities and names the tests use are the manifest's (a rename fails here
    first, not in an escape test that then passes for the wrong reason)."""
    docs = [d for d in yaml.safe_load_all(POLICIES.read_text(encoding="utf-8")) if d]
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"}
    bindings = {
        d["spec"]["policyName"]: d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"
    }
    assert set(policies) == set(ALL_POLICIES) == set(bindings)
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings.values())
    text = POLICIES.read_text(encoding="utf-8")
    for identity in (OPERATOR, JOB_CONTROLLER, GARBAGE_COLLECTOR):
        assert identity in text
    # The GPU policy fails open on errors (its parameters are a CRD the API server cannot
    # resolve for a moment after it starts); the four on Cadre's own objects fail closed.
    assert {name: p["spec"]["failurePolicy"] for name, p in policies.items()} == {
        "cadre-managed-children": "Fail",
        "cadre-managed-pods": "Fail",
        "cadre-gpu-workloads": "Ignore",
        "cadre-operator-pod-patches": "Fail",
        "cadre-trainingjob-shape": "Fail",
    }
    for name, policy in policies.items():
        for validation in policy["spec"]["validations"]:
            # Who may not (403), but for a running job's shape: a wrong input (422).
            assert validation["reason"] == ("Invalid" if name == SHAPE else "Forbidden")
            assert validation["message"] and validation["messageExpression"]
    (shape,) = policies[SHAPE]["spec"]["validations"]
    for field in FROZEN_WHILE_ADMITTED:
        assert f"object.spec.?{field} == oldObject.spec.?{field}" in shape["expression"]


# ---- a running TrainingJob's shape (cadre-trainingjob-shape) -----------------------------
@pytest.mark.parametrize("user", [ALICE, ADMIN])
def test_a_running_trainingjobs_shape_cannot_change(
    apiserver: LocalCluster, namespaces: Namespaces, user: str
) -> None:
    """Its image, command, args, workers, resources and distribution stay as admitted
    while it is admitted or running, for a team member and a cluster admin alike (it is
    what the fields mean); before, suspend, and its status writes are not touched."""
    ns = namespaces.new()
    allow_trainingjobs(apiserver, ns)
    editor = As(apiserver, user)
    apiserver.api.create(TJS.format(ns=ns), trainingjob("frozen"))
    path = f"{TJS.format(ns=ns)}/frozen"
    eventually(  # RBAC takes effect asynchronously: a job not admitted may still change
        "a change before admission accepted",
        lambda: editor.patch(path, {"spec": {"image": "train:2"}}).status == 200,
    )
    with_phase(apiserver, path, "Running")
    for change in (
        {"image": "train:3"},
        {"command": ["python", "other.py"]},
        {"args": ["--lr", "1"]},
        {"workers": 4},
        {"resources": {"gpus": 2}},
        {"distribution": "None"},
    ):
        reply = editor.patch(path, {"spec": change})
        assert reply.invalid_by(SHAPE), (change, reply)
        assert "cannot change while the job is admitted or running" in reply.message
        assert f"TrainingJob {ns}/frozen is Running" in reply.message
    # The operator's status writes are not matched (trainingjobs/status): no refusal.
    with_phase(apiserver, path, "Admitted")
    assert editor.patch(path, {"spec": {"suspend": True}}).status == 200, (
        "suspend is how it is stopped first"
    )
