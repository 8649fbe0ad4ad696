"""The local cluster's fault-injection tools, which the operator's fault tests build on:
restarting kube-apiserver over a running etcd, freezing a process (SIGSTOP), and reading
the audit log to learn which client wrote what, and when.

Most tests use the session's `apiserver` (etcd + kube-apiserver); a test that stops it
starts it again even when it fails. Two need a cluster of their own: the controllers,
scheduler and kwok must be seen to reconnect (cluster mode), and the audit log must be
seen to rotate (a 1 MB limit instead of 500 MB).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from localcluster import LocalCluster, procs
from localcluster.api import wait_for
from localcluster.audit import log_files, read_events
from localcluster.testing import fresh_namespace, start_cluster

pytestmark = pytest.mark.integration

REPLICA_A = "cadre-operator/0.1.0 (replica-a)"
REPLICA_B = "cadre-operator/0.1.0 (replica-b)"


def configmap(name: str, data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def state_letter(pid: int) -> str:
    """Field 3 of /proc/<pid>/stat, after the command name (which may hold spaces)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()[0]


@pytest.fixture
def restartable(apiserver: LocalCluster) -> Iterator[LocalCluster]:
    """The session's apiserver, running again after the test whatever it did to it
    (request it after `namespace`, so it is torn down first)."""
    yield apiserver
    if not apiserver.alive()["kube-apiserver"]:
        apiserver.start_apiserver()


# ---- restarting the API server -----------------------------------------------------
def test_restart_keeps_the_data_and_serves_new_requests(
    namespace: str, restartable: LocalCluster
) -> None:
    cluster = restartable
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    before = cluster.api.create(cms, configmap("before", {"k": "v"}))
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    crd_names = {c["metadata"]["name"] for c in cluster.api.get(crds)["items"]}
    old_pid, etcd_pid = cluster.pids()["kube-apiserver"], cluster.pids()["etcd"]

    took = cluster.restart_apiserver()
    print(f"\nkube-apiserver restart (SIGTERM, start, /readyz): {took:.2f}s")

    pids = cluster.pids()
    assert pids["kube-apiserver"] != old_pid
    assert pids["etcd"] == etcd_pid
    assert all(cluster.alive().values()), cluster.status()
    recorded = json.loads(cluster.state_file.read_text())["processes"]
    assert {r["name"]: r["pid"] for r in recorded} == pids
    assert LocalCluster.attach(cluster.state_dir).alive() == cluster.alive()
    kept = cluster.api.get(f"{cms}/before")
    assert kept["metadata"]["uid"] == before["metadata"]["uid"]
    assert kept["data"] == {"k": "v"}
    assert {c["metadata"]["name"] for c in cluster.api.get(crds)["items"]} == crd_names
    after = cluster.api.create(cms, configmap("after"))
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])


@pytest.mark.parametrize("grace", [10, 0], ids=["sigterm", "sigkill"])
def test_a_stopped_apiserver_refuses_connections_until_started(
    namespace: str, restartable: LocalCluster, grace: float
) -> None:
    cluster = restartable
    port = cluster.ports["apiserver"]
    cluster.stop_apiserver(grace=grace)

    alive = cluster.alive()
    assert not alive["kube-apiserver"]
    assert alive["etcd"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with pytest.raises(OSError):
        cluster.api.get(f"/api/v1/namespaces/{namespace}")

    cluster.start_apiserver()
    assert cluster.ports["apiserver"] == port
    assert cluster.api.get(f"/api/v1/namespaces/{namespace}")["metadata"]["name"] == namespace


# ---- pausing a process -------------------------------------------------------------
def test_pause_and_resume_a_process(tmp_path: Path) -> None:
    rec, popen = procs.start("sleeper", ["sleep", "60"], tmp_path / "sleeper.log")
    try:
        procs.pause(rec)
        assert state_letter(rec.pid) == "T"
        assert procs.is_paused(rec)
        assert procs.is_alive(rec)  # frozen, not dead

        procs.resume(rec)
        assert state_letter(rec.pid) != "T"
        assert not procs.is_paused(rec)

        # Stopping a paused process continues it, so it gets to handle the SIGTERM.
        procs.pause(rec)
        procs.stop(rec, popen)
        assert popen.returncode == -signal.SIGTERM
        assert procs.state(rec) is None
        with pytest.raises(ProcessLookupError):
            procs.pause(rec)
    finally:
        procs.kill(rec, popen)


def test_pause_a_process_group(tmp_path: Path) -> None:
    """group=True freezes the children too (a replica started through a wrapper)."""
    pid_file = tmp_path / "child.pid"
    rec, popen = procs.start(
        "wrapper", ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], tmp_path / "w.log"
    )
    try:
        wait_for("the child's pid", lambda: pid_file.read_text().strip().isdigit(), 10)
        child = int(pid_file.read_text())
        procs.pause(rec, group=True)
        wait_for("the child stopped", lambda: state_letter(child) == "T", 10)
        assert state_letter(rec.pid) == "T"
        procs.resume(rec, group=True)
        wait_for("the child running", lambda: state_letter(child) != "T", 10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(rec.pid, signal.SIGKILL)  # its own group: the shell and its sleep
        procs.kill(rec, popen)


# ---- the audit log -----------------------------------------------------------------
def test_audit_log_tells_which_client_patched_and_when(
    apiserver: LocalCluster, namespace: str
) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    apiserver.api.create(cms, configmap("shared", {"owner": "nobody"}))
    replica_a, replica_b = apiserver.admin_api(REPLICA_A), apiserver.admin_api(REPLICA_B)

    start = datetime.now(UTC)
    replica_a.patch(f"{cms}/shared", {"data": {"owner": "a"}})
    replica_b.patch(f"{cms}/shared", {"data": {"owner": "b"}})
    end = datetime.now(UTC)
    replica_a.patch(f"{cms}/shared", {"data": {"owner": "a-again"}})  # after the window

    (patch,) = apiserver.wait_audit_events(
        1, since=start, until=end, user_agent_prefix=REPLICA_A, namespace=namespace
    )
    assert (patch.verb, patch.resource, patch.subresource) == ("patch", "configmaps", None)
    assert (patch.namespace, patch.name, patch.code) == (namespace, "shared", 200)
    assert patch.user_agent == REPLICA_A
    assert patch.username == "cadre-admin"
    assert patch.stage == "ResponseComplete"
    assert start <= patch.request_received <= patch.stage_timestamp <= end
    assert patch.request_received.tzinfo is not None

    in_window = apiserver.audit_events(start, end, namespace=namespace)
    assert [e.user_agent for e in in_window] == [REPLICA_A, REPLICA_B], [e.what for e in in_window]
    everything = apiserver.wait_audit_events(
        4, since=start - timedelta(minutes=1), namespace=namespace, name="shared"
    )
    assert [e.verb for e in everything] == ["create", "patch", "patch", "patch"]
    assert everything[0].user_agent.startswith("cadre-localcluster")  # the harness's own
    assert apiserver.audit_events(start, end, user="someone-else") == []


def test_audit_policy_logs_leases_and_status_writes_but_not_reads(
    apiserver: LocalCluster, namespace: str
) -> None:
    """A replica's lease renewals and status writes are what fault tests look for."""
    replica = apiserver.admin_api(REPLICA_A)
    start = datetime.now(UTC)
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "cadre-leader"},
        "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15},
    }
    replica.get(leases)  # reads are not logged
    created = replica.create(leases, lease)
    created["spec"]["holderIdentity"] = "replica-a"
    created["spec"]["renewTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    replica.call("PUT", f"{leases}/cadre-leader", created)
    replica.patch(f"{leases}/cadre-leader", {"spec": {"holderIdentity": "replica-b"}})
    node = f"fault-{namespace}"[:63]
    replica.create(
        "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}
    )
    try:
        replica.patch(
            f"/api/v1/nodes/{node}/status",
            {"status": {"capacity": {"cpu": "1"}, "allocatable": {"cpu": "1"}}},
        )
    finally:
        replica.call("DELETE", f"/api/v1/nodes/{node}")
    replica.call("DELETE", f"{leases}/cadre-leader")

    events = apiserver.wait_audit_events(
        7, since=start, user_agent_prefix=REPLICA_A, verbs=None, where=lambda e: e.ok
    )
    seen = [(e.verb, e.api_group, e.resource, e.subresource) for e in events]
    assert seen == [
        ("create", "coordination.k8s.io", "leases", None),
        ("update", "coordination.k8s.io", "leases", None),
        ("patch", "coordination.k8s.io", "leases", None),
        ("create", "", "nodes", None),
        ("patch", "", "nodes", "status"),
        ("delete", "", "nodes", None),
        ("delete", "coordination.k8s.io", "leases", None),
    ], [e.what for e in events]
    statuses = apiserver.audit_events(start, user_agent_prefix=REPLICA_A, subresource="status")
    assert [e.name for e in statuses] == [node]
    assert all(e.raw["level"] == "Metadata" for e in events)
    assert all("requestObject" not in e.raw for e in events)


def _entry(when: datetime, verb: str, name: str, agent: str = REPLICA_A) -> str:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": name,
            "stage": "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/ns/configmaps/{name}",
            "verb": verb,
            "user": {"username": "cadre-admin", "groups": ["system:masters"]},
            "userAgent": agent,
            "objectRef": {"resource": "configmaps", "namespace": "ns", "name": name},
            "responseStatus": {"code": 200},
            "requestReceivedTimestamp": stamp,
            "stageTimestamp": stamp,
        }
    )


def test_reader_reads_backups_oldest_first_and_skips_a_partial_line(tmp_path: Path) -> None:
    """The file names and order lumberjack (the API server's log rotation) uses."""
    t0 = datetime(2026, 11, 29, 20, 0, 0, 123456, tzinfo=UTC)
    at = [t0 + timedelta(seconds=i) for i in range(5)]
    (tmp_path / "audit-2026-11-29T19-59-00.000.log.gz").write_bytes(
        gzip.compress((_entry(at[0], "create", "zero") + "\n").encode())
    )
    (tmp_path / "audit-2026-11-29T20-00-01.500.log").write_text(
        _entry(at[1], "patch", "one") + "\n" + _entry(at[2], "get", "two") + "\n"
    )
    current = tmp_path / "audit.log"
    current.write_text(
        _entry(at[3], "delete", "three", agent="kube-controller-manager/v1.36.3")
        + "\n"
        + _entry(at[4], "patch", "four")[:40]  # still being written
    )
    (tmp_path / "audit-policy.yaml").write_text("not a log")

    assert [p.name for p in log_files(current)] == [
        "audit-2026-11-29T19-59-00.000.log.gz",
        "audit-2026-11-29T20-00-01.500.log",
        "audit.log",
    ]
    assert [e.name for e in read_events(current)] == ["zero", "one", "three"]
    assert [e.name for e in read_events(current, verbs=None)] == ["zero", "one", "two", "three"]
    assert [e.name for e in read_events(current, since=at[1], until=at[3])] == ["one"]
    assert [e.name for e in read_events(current, user_agent_prefix="kube-")] == ["three"]
    assert read_events(current)[0].request_received == at[0]
    with pytest.raises(ValueError, match="aware"):
        read_events(current, since=datetime(2026, 11, 29))


# ---- a cluster of its own ----------------------------------------------------------
@pytest.fixture(scope="module")
def full_cluster(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """Cluster mode (controllers, scheduler, kwok, nodes), audit log rotated at 1 MB."""
    cluster = start_cluster(
        pytestconfig, tmp_path_factory, "cluster", install_crds=False, audit_log_maxsize_mb=1
    )
    yield cluster
    cluster.down()


@pytest.fixture
def full_namespace(full_cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from fresh_namespace(full_cluster, request)


def test_controllers_scheduler_and_kwok_reconnect_after_a_restart(
    full_cluster: LocalCluster,
) -> None:
    took = full_cluster.restart_apiserver()
    print(f"\nkube-apiserver restart with controllers connected: {took:.2f}s")
    assert all(full_cluster.alive().values()), full_cluster.status()

    # A namespace made after the restart gets its `default` ServiceAccount from the
    # controller-manager (create_namespace waits for it); the pod gets a node from the
    # scheduler and is reported Running by kwok.
    ns = full_cluster.create_namespace()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "after-restart"},
        "spec": {
            "nodeSelector": {"cadre.dev/flavor": "cpu-only"},
            "containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}
            ],
        },
    }
    path = f"/api/v1/namespaces/{ns}/pods"
    full_cluster.api.create(path, pod)

    def running() -> bool:
        got = full_cluster.api.get(f"{path}/after-restart")
        return bool(got["spec"].get("nodeName")) and got["status"].get("phase") == "Running"

    wait_for("the pod scheduled and Running", running, 60)
    full_cluster.delete_namespace(ns)

    # The same check as a helper, after a crash this time.
    full_cluster.restart_apiserver(grace=0)
    took = full_cluster.wait_components_reconnected()
    print(f"controllers, scheduler and kwok caught up {took:.2f}s after a second restart")


def test_reader_follows_the_log_across_a_rotation(
    full_cluster: LocalCluster, full_namespace: str
) -> None:
    """Writes until the API server rotates audit.log (1 MB here), then finds every one
    of them in the backup and the new file together."""
    agent = "rotation-probe/1"
    client = full_cluster.admin_api(agent)
    path = f"/api/v1/namespaces/{full_namespace}/configmaps"
    client.create(path, configmap("rotating", {"n": "0"}))
    start_backups = len(log_files(full_cluster.audit_log)) - 1
    sent = 1
    while len(log_files(full_cluster.audit_log)) - 1 == start_backups:
        assert sent < 5000, "no rotation after 5000 writes"
        client.patch(f"{path}/rotating", {"data": {"n": str(sent)}})
        sent += 1
    for _ in range(10):  # a few more, into the new file
        client.patch(f"{path}/rotating", {"data": {"n": str(sent)}})
        sent += 1

    found = full_cluster.wait_audit_events(sent, user_agent_prefix=agent)
    assert len(found) == sent
    assert [e.verb for e in found[:2]] == ["create", "patch"]
    backup, current = log_files(full_cluster.audit_log)[-2:]
    assert current == full_cluster.audit_log
    per_file = [
        sum(agent in line for line in f.read_text().splitlines()) for f in (backup, current)
    ]
    assert per_file[0] > 0
    assert per_file[1] >= 10
    assert sum(per_file) == sent
