"""The operator's own permissions, as the API server evaluates them.

What the ServiceAccount of manifests/rbac.yaml may do, asked with its own token (the
credentials `cadre run` has), must equal the table below: in a team namespace and in
cadre-system (a SelfSubjectRulesReview: what `kubectl auth can-i --list` shows), and at
cluster scope (a rules review needs a namespace, so there every verb of every resource
the server serves is asked one by one: a SelfSubjectAccessReview per verb, as for a real
request). A rule added to rbac.yaml fails this test until the table says why it is
needed; one wrongly removed fails the e2e tests, which run the operator under it.

Here, not in e2e: the operator's roles are plain (no aggregation), so the bare API server
of this layer answers as a whole cluster would. The roles of people
(manifests/roles.yaml) are aggregated by kube-controller-manager, which this layer does
not run: e2e/test_rbac_e2e.py tests them.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cadre_process import operator_kubeconfig
from localcluster import LocalCluster

pytestmark = pytest.mark.integration

SYSTEM = "cadre-system"
SA_USER = f"system:serviceaccount:{SYSTEM}:cadre-operator"
SA_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{SYSTEM}")
REVIEWS = "/apis/authorization.k8s.io/v1"

Table = dict[tuple[str, str], frozenset[str]]
"""(API group, resource or resource/subresource) -> verbs."""


def _verbs(*verbs: str) -> frozenset[str]:
    return frozenset(verbs)


# What every authenticated identity may do (bootstrap role system:basic-user): ask what
# it may do.
BASELINE: Table = {
    ("authorization.k8s.io", "selfsubjectaccessreviews"): _verbs("create"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"): _verbs("create"),
    ("authentication.k8s.io", "selfsubjectreviews"): _verbs("create"),
}

# The ClusterRole cadre-operator, each verb with what uses it (in operator/cadre/controller/).
OPERATOR: Table = {
    # list: cache.py (fill, resync); watch: cache.py (its own pod watch); get:
    # trainingjobs.py _ensure_children, status_writer.py after a 409; delete:
    # trainingjobs.py _expire (ttlAfterFinished). No update/patch: a user's spec is theirs.
    ("cadre.dev", "trainingjobs"): _verbs("get", "list", "watch", "delete"),
    ("cadre.dev", "trainingjobs/status"): _verbs("update"),  # status_writer.py
    # list: cache.py, trainingjobs.py _team_of; watch: handlers/cluster.py; get:
    # budget_writer.py _write, the re-read after a 409 on the status. No writes.
    ("cadre.dev", "resourcebudgets"): _verbs("get", "list", "watch"),
    ("cadre.dev", "resourcebudgets/status"): _verbs("patch"),  # budget_writer.py
    # create, and get (client.create reads back on a 409), delete: trainingjobs.py; patch:
    # status_writer.py set_job_suspend; list: cache.py; watch: handlers (Kopf).
    ("batch", "jobs"): _verbs("get", "list", "watch", "create", "patch", "delete"),
    # create, get (409 read back), delete: trainingjobs.py; patch: modeldeployments.py
    # _update_service (a new port).
    ("", "services"): _verbs("get", "create", "patch", "delete"),
    # list: cache.py; watch: handlers/modeldeployment.py; get: status_writer.py after a
    # 409. No spec writes.
    ("cadre.dev", "modeldeployments"): _verbs("get", "list", "watch"),
    ("cadre.dev", "modeldeployments/status"): _verbs("update"),  # status_writer.py
    # modeldeployments.py creates, patches (template, replicas, bounds) and deletes (a
    # canary no longer wanted, the autoscaler without admission); cache.py lists; the
    # handlers watch; get: client.create reads back on a 409.
    ("apps", "deployments"): _verbs("get", "list", "watch", "create", "patch", "delete"),
    ("autoscaling", "horizontalpodautoscalers"): _verbs(
        "get", "list", "watch", "create", "patch", "delete"
    ),
    # trainingjobs.py _ensure_pod_group: created, read back on a 409, an earlier Job's
    # deleted (native gang scheduling; the integration API server serves PodGroups).
    ("scheduling.k8s.io", "podgroups"): _verbs("get", "create", "delete"),
    # modeldeployments.py _ensure_route: created, read back on a 409, weights patched.
    ("gateway.networking.k8s.io", "httproutes"): _verbs("get", "create", "patch"),
    # list: cache.py, trainingjobs.py _refresh_pods; watch: handlers (Kopf); patch and
    # get: budget_writer.py _release (the accounting finalizer). No create, no exec.
    ("", "pods"): _verbs("get", "list", "watch", "patch"),
    ("", "nodes"): _verbs("list", "watch"),  # cache.py, handlers/cluster.py
    # get: trainingjobs.py _team_of (a namespace the cache does not know yet).
    ("", "namespaces"): _verbs("get", "list", "watch"),
    ("", "events"): _verbs("create"),  # status_writer.py post_event (generateName: no 409)
}

# The Role cadre-operator-leader-election, in cadre-system only: leader.py reads its
# Lease, creates it, and renews, takes over and releases it by update (PUT).
LEADER: Table = {("coordination.k8s.io", "leases"): _verbs("get", "create", "update")}


def merged(*tables: Table) -> Table:
    out: Table = {}
    for table in tables:
        for key, verbs in table.items():
            out[key] = out.get(key, frozenset()) | verbs
    return out


def diff(got: Table, want: Table) -> str:
    lines = []
    for key in sorted(set(got) | set(want)):
        extra = sorted(got.get(key, frozenset()) - want.get(key, frozenset()))
        missing = sorted(want.get(key, frozenset()) - got.get(key, frozenset()))
        if extra:
            lines.append(f"  {key}: granted, not in the table: {extra}")
        if missing:
            lines.append(f"  {key}: in the table, not granted: {missing}")
    return "\n".join(lines)


class AsOperator:
    """Reviews sent with the operator's ServiceAccount token (from the kubeconfig that
    tests/cadre_process.py writes for `cadre run`), to the local API server on 127.0.0.1."""

    def __init__(self, cluster: LocalCluster, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        self.token = str(config["users"][0]["user"]["token"])
        tls = ssl.create_default_context(cafile=str(cluster.pki_paths.ca_cert))
        self.conn = http.client.HTTPSConnection(
            "127.0.0.1", cluster.ports["apiserver"], context=tls, timeout=30
        )

    def review(self, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec}
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        self.conn.request("POST", f"{REVIEWS}/{kind.lower()}s", json.dumps(body), headers)
        resp = self.conn.getresponse()
        data = resp.read()
        assert resp.status == 201, (resp.status, data[:500])
        status: dict[str, Any] = json.loads(data)["status"]
        return status

    def rules(self, namespace: str) -> dict[str, Any]:
        """Every rule that applies to the operator in `namespace` (its
        ClusterRoleBindings', and its RoleBindings' there)."""
        return self.review("SelfSubjectRulesReview", {"namespace": namespace})

    def allowed(self, verb: str, group: str, resource: str, namespace: str = "") -> bool:
        """One request's decision; namespace "" is cluster scope (or all namespaces)."""
        sub = ""
        if "/" in resource:
            resource, sub = resource.split("/", 1)
        attributes = {"verb": verb, "group": group, "resource": resource, "namespace": namespace}
        if sub:
            attributes["subresource"] = sub
        status = self.review("SelfSubjectAccessReview", {"resourceAttributes": attributes})
        return bool(status.get("allowed"))

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def operator_sa(
    apiserver: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AsOperator]:
    kubeconfig = operator_kubeconfig(apiserver, tmp_path_factory.mktemp("rbac") / "kubeconfig")
    sa = AsOperator(apiserver, kubeconfig)
    yield sa
    sa.close()


def table_of(status: dict[str, Any]) -> Table:
    table: Table = {}
    for rule in status.get("resourceRules") or []:
        assert not rule.get("resourceNames"), f"a rule about objects by name: {rule}"
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                key = (group, resource)
                table[key] = table.get(key, frozenset()) | frozenset(rule.get("verbs") or [])
    return table


def assert_least_privilege(table: Table) -> None:
    """What the table implies, said outright (and checked even if the table were wrong)."""
    for (group, resource), verbs in table.items():
        assert "*" not in (group, resource) and "*" not in verbs, (group, resource, verbs)
        assert resource not in ("secrets", "configmaps", "serviceaccounts/token"), resource
        assert resource not in ("pods/exec", "pods/attach", "pods/portforward", "pods/log")
        assert group != "rbac.authorization.k8s.io", (group, resource)
        assert not verbs & {"escalate", "bind", "impersonate", "approve", "sign"}, verbs


@pytest.mark.parametrize("scope", ["team", "cadre-system"])
def test_operator_permissions_in_a_namespace_equal_the_table(
    operator_sa: AsOperator, namespace: str, scope: str
) -> None:
    ns = namespace if scope == "team" else SYSTEM
    status = operator_sa.rules(ns)
    assert not status.get("incomplete"), status.get("evaluationError")
    table = table_of(status)
    want = merged(BASELINE, OPERATOR, LEADER if scope == "cadre-system" else {})
    assert table == want, f"the operator's permissions in {ns}:\n{diff(table, want)}"
    assert_least_privilege(table)
    # Leases only in its own namespace.
    assert (("coordination.k8s.io", "leases") in table) == (scope == "cadre-system")
    # Non-resource URLs (discovery, health, version, OIDC discovery): read-only.
    for rule in status.get("nonResourceRules") or []:
        assert set(rule["verbs"]) <= {"get"}, rule


def served_resources(cluster: LocalCluster) -> dict[tuple[str, str], list[str]]:
    """Every resource and subresource the API server serves (discovery, every version:
    PodGroups are served only in scheduling.k8s.io/v1alpha2, not the preferred v1), with
    the verbs it serves them with."""
    versions = ["/api/v1"]
    for group in cluster.api.get("/apis")["groups"]:
        versions += [f"/apis/{v['groupVersion']}" for v in group["versions"]]
    served: dict[tuple[str, str], list[str]] = {}
    for path in versions:
        group = path.split("/")[2] if path.startswith("/apis/") else ""
        for resource in cluster.api.get(path)["resources"]:
            if resource.get("verbs"):
                verbs = served.setdefault((group, resource["name"]), [])
                verbs += [v for v in resource["verbs"] if v not in verbs]
    return served


def test_operator_permissions_at_cluster_scope_equal_the_table(
    apiserver: LocalCluster, operator_sa: AsOperator, httproute_crd: None
) -> None:
    """Every served verb of every served resource, asked at cluster scope: what the
    operator may do on cluster-scoped objects and in all namespaces at once."""
    served = served_resources(apiserver)
    assert ("cadre.dev", "trainingjobs/status") in served  # the CRDs are installed
    table: Table = {}
    for (group, resource), verbs in served.items():
        allowed = frozenset(v for v in verbs if operator_sa.allowed(v, group, resource))
        if allowed:
            table[(group, resource)] = allowed
    want = merged(BASELINE, OPERATOR)
    assert table == want, f"the operator's permissions at cluster scope:\n{diff(table, want)}"
    assert_least_privilege(table)
    assert not operator_sa.allowed("*", "*", "*"), "cluster-admin"


# Single decisions, one request each, for the record (the tables above imply them):
# (verb, group, resource, where: "team", "cadre-system" or "" for cluster scope, allowed).
SPOT_CHECKS = [
    ("get", "", "secrets", "team", False),
    ("list", "", "secrets", "", False),
    ("get", "", "secrets", SYSTEM, False),
    ("create", "", "pods", "team", False),
    ("create", "", "pods/exec", "team", False),
    ("get", "", "pods/log", "team", False),
    ("create", "", "serviceaccounts/token", SYSTEM, False),
    ("impersonate", "", "users", "", False),
    ("impersonate", "", "serviceaccounts", "team", False),
    ("create", "rbac.authorization.k8s.io", "rolebindings", "team", False),
    ("*", "*", "*", "team", False),
    ("update", "cadre.dev", "trainingjobs", "team", False),
    ("create", "cadre.dev", "resourcebudgets", "", False),
    ("update", "coordination.k8s.io", "leases", "team", False),
    ("update", "coordination.k8s.io", "leases", SYSTEM, True),
    ("update", "cadre.dev", "trainingjobs/status", "team", True),
    ("patch", "cadre.dev", "trainingjobs/status", "team", False),
    ("create", "batch", "jobs", "team", True),
]


def test_operator_spot_checks(operator_sa: AsOperator, namespace: str) -> None:
    wrong = []
    for verb, group, resource, where, allowed in SPOT_CHECKS:
        ns = namespace if where == "team" else where
        if operator_sa.allowed(verb, group, resource, ns) != allowed:
            wrong.append(f"{verb} {group}/{resource} in {ns or 'the cluster'}: not {allowed}")
    assert not wrong, "\n".join(wrong)


def test_only_the_operator_roles_are_bound_to_it(
    apiserver: LocalCluster, operator_sa: AsOperator
) -> None:
    """Who grants the ServiceAccount anything: its two bindings, and the bootstrap ones of
    every authenticated identity; none of them cluster-admin."""

    def names_it(subject: dict[str, str]) -> bool:
        if subject.get("kind") == "ServiceAccount":
            return (subject.get("namespace"), subject.get("name")) == (SYSTEM, "cadre-operator")
        if subject.get("kind") == "User":
            return subject.get("name") == SA_USER
        return subject.get("kind") == "Group" and subject.get("name") in SA_GROUPS

    bound = set()
    for path in (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "/apis/rbac.authorization.k8s.io/v1/rolebindings",
    ):
        for binding in apiserver.api.get(path)["items"]:
            if any(names_it(s) for s in binding.get("subjects") or []):
                ref = binding["roleRef"]
                bound.add((binding["metadata"].get("namespace", ""), ref["kind"], ref["name"]))
    assert ("", "ClusterRole", "cluster-admin") not in bound
    assert {b for b in bound if not b[2].startswith("system:")} == {
        ("", "ClusterRole", "cadre-operator"),
        (SYSTEM, "Role", "cadre-operator-leader-election"),
    }
