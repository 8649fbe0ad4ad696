"""Who may do what with Cadre's resources: real users of the local cluster's RBAC.

manifests/roles.yaml is applied, and the people of a team namespace are bound the way a
platform binds them: alice to the built-in `edit` ClusterRole there (a RoleBinding),
victor to `view`, adam to `admin`; paula to `cadre-platform-admin` (a
ClusterRoleBinding); the team's group to `cadre-budget-viewer` (a ClusterRoleBinding).
Each acts through the admin's credentials with Impersonate-User/-Group headers (what
`kubectl --as=... --as-group=...` sends), so the API server authorizes every request as
that person's.

Here, not in tests/integration: alice gets TrainingJobs through `edit` only once
kube-controller-manager's clusterrole-aggregation controller has folded cadre-edit into
it. The API server does not aggregate, and the integration layer runs no
kube-controller-manager; the whole local cluster does (e2e/localcluster CONTROLLERS).
"""

from __future__ import annotations

import copy
import functools
import http.client
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster import LocalCluster
from localcluster.api import client_tls
from waiting import eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
ROLES = REPO / "manifests" / "roles.yaml"
GROUP = "/apis/cadre.dev/v1alpha1"
RBS = f"{GROUP}/resourcebudgets"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
MERGE = "application/merge-patch+json"
WORKLOADS = ("trainingjobs", "modeldeployments")


def collection(namespace: str, plural: str) -> str:
    return f"{GROUP}/namespaces/{namespace}/{plural}"


def trainingjob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "image": "ghcr.io/acme/train:1.4",
            "command": ["python", "train.py"],
            "resources": {"flavor": "t4", "gpus": 1, "cpu": "4", "memory": "16Gi"},
        },
    }


def modeldeployment(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "modeldeployment-canary.yaml").read_text())
    return {**doc, "metadata": {"name": name}}


def manifest(plural: str, name: str) -> dict[str, Any]:
    return trainingjob(name) if plural == "trainingjobs" else modeldeployment(name)


def budget(name: str, namespace: str, gpus: int = 4) -> dict[str, Any]:
    return {
        "apiVersion": "cadre.dev/v1alpha1",
        "kind": "ResourceBudget",
        "metadata": {"name": name},
        "spec": {"namespaces": [namespace], "quota": [{"flavor": "t4", "gpus": gpus}]},
    }


class Person:
    """Requests to the local API server (127.0.0.1) as `user` in `groups`: the admin's
    client certificate with impersonation headers."""

    def __init__(self, cluster: LocalCluster, user: str, groups: tuple[str, ...] = ()) -> None:
        self.user, self.groups = user, groups
        p = cluster.pki_paths
        self.conn = http.client.HTTPSConnection(
            "127.0.0.1",
            cluster.ports["apiserver"],
            context=client_tls(p.ca_cert, p.client_cert("admin"), p.client_key("admin")),
            timeout=30,
        )

    def __repr__(self) -> str:
        return self.user

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        self.conn.putrequest(method, path)
        self.conn.putheader("Accept", "application/json")
        self.conn.putheader("Impersonate-User", self.user)
        for group in self.groups:
            self.conn.putheader("Impersonate-Group", group)
        payload = b"" if body is None else json.dumps(body).encode()
        if body is not None:
            self.conn.putheader("Content-Type", content_type)
        self.conn.putheader("Content-Length", str(len(payload)))
        self.conn.endheaders(payload)
        resp = self.conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def can(self, verb: str, plural: str, namespace: str = "", group: str = "cadre.dev") -> bool:
        """The API server's decision for this person (a SelfSubjectAccessReview)."""
        resource, _, sub = plural.partition("/")
        attributes = {"verb": verb, "group": group, "resource": resource, "subresource": sub}
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {**attributes, "namespace": namespace}},
        }
        status, data = self.call(
            "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review
        )
        assert status == 201, (status, data)
        return bool(data["status"].get("allowed"))

    def close(self) -> None:
        self.conn.close()


def allowed(result: tuple[int, Any], *codes: int) -> Any:
    status, data = result
    assert status in (codes or (200, 201)), f"expected {codes or (200, 201)}: {status} {data}"
    return data


def forbidden(result: tuple[int, Any]) -> None:
    status, data = result
    assert status == 403, f"expected 403 Forbidden: {status} {data}"


WRITE = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
READ = {"get", "list", "watch"}


def cadre_rules(role: dict[str, Any]) -> dict[str, set[str]]:
    """A ClusterRole's verbs per cadre.dev resource."""
    out: dict[str, set[str]] = {}
    for rule in role.get("rules") or []:
        if "cadre.dev" in (rule.get("apiGroups") or []):
            for resource in rule.get("resources") or []:
                out.setdefault(resource, set()).update(rule.get("verbs") or [])
    return out


def rules_of(cluster: LocalCluster, role: str) -> dict[str, set[str]]:
    return cadre_rules(cluster.api.get(f"{RBAC}/clusterroles/{role}"))


def aggregation_settled(cluster: LocalCluster) -> bool:
    """view, edit and admin each carry exactly the cadre.dev rules of the ClusterRoles
    labelled for them (edit is labelled for admin, view for edit): the controller has
    caught up with every role of roles.yaml, whatever they say."""
    for target in ("view", "edit", "admin"):
        selector = f"rbac.authorization.k8s.io/aggregate-to-{target}%3Dtrue"
        wanted: dict[str, set[str]] = {}
        for source in cluster.api.get(f"{RBAC}/clusterroles?labelSelector={selector}")["items"]:
            for resource, verbs in cadre_rules(source).items():
                wanted.setdefault(resource, set()).update(verbs)
        if not wanted or rules_of(cluster, target) != wanted:
            return False
    return True


@dataclass
class Team:
    namespace: str
    other: str
    """A namespace where nobody of the team is bound."""
    teams_group: str
    alice: Person
    victor: Person
    adam: Person
    paula: Person
    alice_member: Person
    """alice in the teams group, which cadre-budget-viewer is bound to."""


@pytest.fixture(scope="module")
def aggregated(cluster: LocalCluster) -> Iterator[None]:
    """roles.yaml applied, and folded into the built-in roles by the aggregation
    controller; deleted afterwards (the controller takes the rules out again)."""
    cluster.kubectl("apply", "-f", str(ROLES))
    eventually(
        "roles.yaml aggregated into admin, edit and view",
        lambda: aggregation_settled(cluster),
        timeout=60,
    )
    yield
    cluster.kubectl("delete", "-f", str(ROLES), "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def team(cluster: LocalCluster, aggregated: None) -> Iterator[Team]:
    suffix = uuid.uuid4().hex[:6]
    namespace = cluster.create_namespace(f"rbac-team-{suffix}")
    other = cluster.create_namespace(f"rbac-other-{suffix}")
    teams_group = f"cadre-e2e-teams-{suffix}"
    cluster_bindings = [f"rbac-paula-{suffix}", f"rbac-teams-{suffix}"]

    def binding(kind: str, name: str, role: str, subject: dict[str, str]) -> None:
        path, metadata = f"{RBAC}/clusterrolebindings", {"name": name}
        if kind == "RoleBinding":
            path, metadata = (
                f"{RBAC}/namespaces/{namespace}/rolebindings",
                {**metadata, "namespace": namespace},
            )
        cluster.api.create(
            path,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": kind,
                "metadata": metadata,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", **subject}],
            },
        )

    binding("RoleBinding", "alice-edit", "edit", {"kind": "User", "name": "alice"})
    binding("RoleBinding", "victor-view", "view", {"kind": "User", "name": "victor"})
    binding("RoleBinding", "adam-admin", "admin", {"kind": "User", "name": "adam"})
    binding(
        "ClusterRoleBinding",
        cluster_bindings[0],
        "cadre-platform-admin",
        {"kind": "User", "name": "paula"},
    )
    binding(
        "ClusterRoleBinding",
        cluster_bindings[1],
        "cadre-budget-viewer",
        {"kind": "Group", "name": teams_group},
    )
    people = Team(
        namespace,
        other,
        teams_group,
        alice=Person(cluster, "alice"),
        victor=Person(cluster, "victor"),
        adam=Person(cluster, "adam"),
        paula=Person(cluster, "paula"),
        alice_member=Person(cluster, "alice", (teams_group,)),
    )
    # The authorizer sees new roles and bindings through its informers: wait for each.
    for who, verb, plural, ns in (
        (people.alice, "create", "trainingjobs", namespace),
        (people.victor, "list", "trainingjobs", namespace),
        (people.adam, "create", "modeldeployments", namespace),
        (people.paula, "create", "resourcebudgets", ""),
        (people.alice_member, "list", "resourcebudgets", ""),
    ):
        eventually(f"{who} may {verb} {plural}", functools.partial(who.can, verb, plural, ns))
    yield people
    for person in (people.alice, people.victor, people.adam, people.paula, people.alice_member):
        person.close()
    for name in cluster_bindings:
        cluster.api.call("DELETE", f"{RBAC}/clusterrolebindings/{name}", ok=(404,))
    cluster.delete_namespace(namespace)
    cluster.delete_namespace(other)


@pytest.fixture
def a_budget(cluster: LocalCluster, team: Team) -> Iterator[str]:
    """A ResourceBudget of the team, made by the cluster's admin."""
    name = f"rbac-{uuid.uuid4().hex[:6]}"
    cluster.api.create(RBS, budget(name, team.namespace))
    yield name
    cluster.api.call("DELETE", f"{RBS}/{name}", ok=(404,))


def test_the_builtin_roles_carry_cadre_and_admin_no_budget_writes(
    cluster: LocalCluster, aggregated: None
) -> None:
    """What aggregation made of the built-in roles: workloads for editors and admins,
    reading for viewers, budgets read-only for all three (even a ClusterRoleBinding to
    admin writes no budget) and no status subresource for anyone."""
    workloads_write = {p: WRITE for p in WORKLOADS}
    workloads_read = {p: READ for p in WORKLOADS}
    assert rules_of(cluster, "admin") == {**workloads_write, "resourcebudgets": READ}
    assert rules_of(cluster, "edit") == {**workloads_write, "resourcebudgets": READ}
    assert rules_of(cluster, "view") == {**workloads_read, "resourcebudgets": READ}


@pytest.mark.parametrize("plural", WORKLOADS)
def test_an_editor_writes_workloads_in_her_namespace(
    cluster: LocalCluster, team: Team, plural: str
) -> None:
    alice, path = team.alice, collection(team.namespace, plural)
    name = f"alice-{uuid.uuid4().hex[:6]}"
    forged = {**manifest(plural, name), "status": {"phase": "Running"}}
    created = allowed(alice.call("POST", path, forged), 201)
    # A status sent along with the object is dropped: the status subresource is separate.
    assert not (created.get("status") or {}).get("phase"), created.get("status")
    listed = allowed(alice.call("GET", path))
    assert name in [i["metadata"]["name"] for i in listed["items"]]
    allowed(alice.call("GET", f"{path}/{name}"))
    patched = allowed(
        alice.call(
            "PATCH",
            f"{path}/{name}",
            {"metadata": {"labels": {"owner": "alice"}}, "status": {"phase": "Running"}},
            MERGE,
        )
    )
    assert patched["metadata"]["labels"]["owner"] == "alice"
    assert not (patched.get("status") or {}).get("phase"), "a status written via the object"
    # The status subresource is the operator's: no patch, no update.
    forbidden(alice.call("PATCH", f"{path}/{name}/status", {"status": {"phase": "Running"}}, MERGE))
    forbidden(
        alice.call("PUT", f"{path}/{name}/status", {**patched, "status": {"phase": "Running"}})
    )
    allowed(alice.call("DELETE", f"{path}/{name}"))
    eventually(f"{plural} {name} deleted", lambda: alice.call("GET", f"{path}/{name}")[0] == 404)


@pytest.mark.parametrize("plural", WORKLOADS)
def test_an_editor_cannot_touch_another_namespace(
    cluster: LocalCluster, team: Team, plural: str
) -> None:
    elsewhere = collection(team.other, plural)
    forbidden(team.alice.call("POST", elsewhere, manifest(plural, "intruder")))
    forbidden(team.alice.call("GET", elsewhere))
    name = f"theirs-{uuid.uuid4().hex[:6]}"
    cluster.api.create(elsewhere, manifest(plural, name))
    forbidden(
        team.alice.call("PATCH", f"{elsewhere}/{name}", {"metadata": {"labels": {"a": "b"}}}, MERGE)
    )
    forbidden(team.alice.call("DELETE", f"{elsewhere}/{name}"))
    forbidden(team.alice.call("GET", f"{GROUP}/{plural}"))  # across all namespaces
    cluster.api.call("DELETE", f"{elsewhere}/{name}", ok=(404,))


def test_an_editor_applies_with_kubectl(cluster: LocalCluster, team: Team) -> None:
    """The everyday path: kubectl apply, get and delete with the user's own identity."""
    name = f"applied-{uuid.uuid4().hex[:6]}"
    as_alice = ("--as=alice", "--namespace", team.namespace)
    cluster.kubectl(*as_alice, "apply", "-f", "-", input=yaml.safe_dump(trainingjob(name)))
    listed = cluster.kubectl(*as_alice, "get", "trainingjobs", "-o", "name")
    assert f"trainingjob.cadre.dev/{name}" in listed.stdout.split()
    denied = cluster.kubectl(
        "--as=victor", "--namespace", team.namespace, "delete", "tj", name, check=False
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
    cluster.kubectl(*as_alice, "delete", "trainingjob", name)


def test_an_editor_cannot_write_budgets(cluster: LocalCluster, team: Team, a_budget: str) -> None:
    for alice in (team.alice, team.alice_member):  # with or without the budget-viewer group
        forbidden(
            alice.call("POST", RBS, budget(f"mine-{uuid.uuid4().hex[:6]}", team.namespace, 64))
        )
        forbidden(
            alice.call(
                "PATCH",
                f"{RBS}/{a_budget}",
                {"spec": {"quota": [{"flavor": "t4", "gpus": 64}]}},
                MERGE,
            )
        )
        forbidden(alice.call("PATCH", f"{RBS}/{a_budget}/status", {"status": {"spend": {}}}, MERGE))
        forbidden(alice.call("DELETE", f"{RBS}/{a_budget}"))
    # edit, in a RoleBinding, reads no cluster-scoped budget: that takes the viewer role.
    forbidden(team.alice.call("GET", RBS))
    forbidden(team.alice.call("GET", f"{RBS}/{a_budget}"))


def test_a_team_member_reads_budgets_through_the_budget_viewer_role(
    cluster: LocalCluster, team: Team, a_budget: str
) -> None:
    member = team.alice_member
    assert a_budget in [b["metadata"]["name"] for b in allowed(member.call("GET", RBS))["items"]]
    allowed(member.call("GET", f"{RBS}/{a_budget}"))
    forbidden(team.victor.call("GET", RBS))  # view in his namespace, not in the group


def test_a_namespace_admin_cannot_write_budgets_nor_grant_it(
    cluster: LocalCluster, team: Team, a_budget: str
) -> None:
    adam = team.adam
    # admin includes edit: workloads yes.
    name = f"adam-{uuid.uuid4().hex[:6]}"
    path = collection(team.namespace, "trainingjobs")
    allowed(adam.call("POST", path, trainingjob(name)), 201)
    forbidden(
        adam.call("PATCH", f"{path}/{name}/status", {"status": {"phase": "Succeeded"}}, MERGE)
    )
    allowed(adam.call("DELETE", f"{path}/{name}"))
    # Budgets: no.
    forbidden(adam.call("POST", RBS, budget(f"adam-{uuid.uuid4().hex[:6]}", team.namespace, 64)))
    forbidden(
        adam.call(
            "PATCH", f"{RBS}/{a_budget}", {"spec": {"quota": [{"flavor": "t4", "gpus": 64}]}}, MERGE
        )
    )
    forbidden(adam.call("DELETE", f"{RBS}/{a_budget}"))
    # Nor can he bind the platform role to himself, even in his namespace: RBAC lets one
    # bind only what one holds.
    forbidden(
        adam.call(
            "POST",
            f"{RBAC}/namespaces/{team.namespace}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "adam-platform", "namespace": team.namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cadre-platform-admin",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "adam"}
                ],
            },
        )
    )


@pytest.mark.parametrize("plural", WORKLOADS)
def test_a_viewer_reads_but_does_not_write(cluster: LocalCluster, team: Team, plural: str) -> None:
    victor, path = team.victor, collection(team.namespace, plural)
    name = f"shown-{uuid.uuid4().hex[:6]}"
    cluster.api.create(path, manifest(plural, name))
    assert name in [i["metadata"]["name"] for i in allowed(victor.call("GET", path))["items"]]
    shown = allowed(victor.call("GET", f"{path}/{name}"))
    forbidden(victor.call("POST", path, manifest(plural, f"victor-{uuid.uuid4().hex[:6]}")))
    forbidden(victor.call("PATCH", f"{path}/{name}", {"metadata": {"labels": {"a": "b"}}}, MERGE))
    forbidden(victor.call("PUT", f"{path}/{name}", shown))
    forbidden(victor.call("PATCH", f"{path}/{name}/status", {"status": {"phase": "Failed"}}, MERGE))
    forbidden(victor.call("DELETE", f"{path}/{name}"))
    cluster.api.call("DELETE", f"{path}/{name}", ok=(404,))


def test_the_platform_admin_writes_budgets_but_no_status(cluster: LocalCluster, team: Team) -> None:
    paula, name = team.paula, f"paula-{uuid.uuid4().hex[:6]}"
    try:
        allowed(paula.call("POST", RBS, budget(name, team.namespace)), 201)
        patched = allowed(
            paula.call(
                "PATCH", f"{RBS}/{name}", {"spec": {"quota": [{"flavor": "t4", "gpus": 6}]}}, MERGE
            )
        )
        assert patched["spec"]["quota"][0]["gpus"] == 6
        replaced = copy.deepcopy(patched)
        replaced["spec"]["quota"][0]["gpus"] = 8
        assert (
            allowed(paula.call("PUT", f"{RBS}/{name}", replaced))["spec"]["quota"][0]["gpus"] == 8
        )
        assert name in [b["metadata"]["name"] for b in allowed(paula.call("GET", RBS))["items"]]
        # The status (usage, spend, the ledger) is the operator's, even for her.
        forbidden(paula.call("PATCH", f"{RBS}/{name}/status", {"status": {"spend": {}}}, MERGE))
        # Any team's workloads, e.g. to stop a runaway job; not their status either.
        path = collection(team.namespace, "trainingjobs")
        job = f"runaway-{uuid.uuid4().hex[:6]}"
        cluster.api.create(path, trainingjob(job))
        forbidden(
            paula.call("PATCH", f"{path}/{job}/status", {"status": {"phase": "Failed"}}, MERGE)
        )
        allowed(paula.call("PATCH", f"{path}/{job}", {"spec": {"suspend": True}}, MERGE))
        allowed(paula.call("DELETE", f"{path}/{job}"))
        allowed(paula.call("DELETE", f"{RBS}/{name}"))
        eventually(f"budget {name} deleted", lambda: paula.call("GET", f"{RBS}/{name}")[0] == 404)
    finally:
        cluster.api.call("DELETE", f"{RBS}/{name}", ok=(404,))


def test_naming_a_serviceaccount_or_secret_in_a_trainingjob_grants_nothing_new(
    team: Team,
) -> None:
    """Why a TrainingJob may name any ServiceAccount (spec.serviceAccountName) and Secret
    (env valueFrom.secretKeyRef) of its own namespace: whoever may create one there (edit
    or admin) already creates pods and Jobs there, which run as any ServiceAccount of the
    namespace, and reads its Secrets. Nowhere else, and a viewer does neither."""
    ns, other = team.namespace, team.other
    for verb, plural, group in (
        ("create", "pods", ""),
        ("create", "jobs", "batch"),
        ("get", "secrets", ""),
    ):
        assert team.alice.can(verb, plural, ns, group=group), (verb, plural)
        assert team.adam.can(verb, plural, ns, group=group), (verb, plural)
        assert not team.alice.can(verb, plural, other, group=group), (verb, plural)
        assert not team.victor.can(verb, plural, ns, group=group), (verb, plural)
