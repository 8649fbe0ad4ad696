"""Faults of the controller layer on the whole local cluster: two replicas and a leader
killed in a burst, a leader partitioned (paused) past its lease, the API server restarted,
objects deleted while the operator's watches were cut.

Each runs the operator as in production: under the ServiceAccount and RBAC of
manifests/rbac.yaml, with its own team (namespace and ResourceBudget) so that spend is
this test's alone. Leases are short here (6 s, renew deadline 4 s, retry 1 s) so that a
takeover takes seconds, not the default 15.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from burst import (
    CAPACITY,
    PER_GPU_SECOND,
    RBS,
    AdmissionSampler,
    all_succeeded,
    pods_per_job,
    trainingjob,
)
from cadre_process import OperatorProcess
from localcluster import LocalCluster, nodepool
from waiting import eventually

pytestmark = pytest.mark.e2e


def tjs(namespace: str) -> str:
    return f"/apis/cadre.dev/v1alpha1/namespaces/{namespace}/trainingjobs"


def phase_in(cluster: LocalCluster, namespace: str, name: str, *phases: str) -> Callable[[], bool]:
    """A check for eventually(): the TrainingJob's phase is one of `phases`."""

    def check() -> bool:
        obj = cluster.api.get(f"{tjs(namespace)}/{name}")
        return (obj.get("status") or {}).get("phase") in phases

    return check


def admission_times(op: OperatorProcess) -> list[datetime]:
    """When the operator's log says it admitted a job (its own clock, UTC)."""
    return [
        datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        for r in op.log_records()
        if r.get("event") == "admitted"
    ]


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def spend_of_pods(cluster: LocalCluster, namespace: str) -> Decimal:
    """The team's spend by hand: each pod's container running time times its GPU price."""
    total = Decimal(0)
    pods = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    for pod in pods:
        flavor = pod["metadata"]["labels"]["cadre.dev/flavor"]
        gpus = int(pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        for status in pod["status"].get("containerStatuses") or []:
            term = status["state"].get("terminated")
            if term is None:
                continue
            start = datetime.fromisoformat(term["startedAt"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(term["finishedAt"].replace("Z", "+00:00"))
            total += Decimal((end - start).total_seconds()) * gpus * PER_GPU_SECOND[flavor]
    return total


def budget_spent(cluster: LocalCluster, name: str) -> Decimal | None:
    spent = ((cluster.api.get(f"{RBS}/{name}").get("status") or {}).get("spend") or {}).get("spent")
    return None if spent is None else Decimal(spent)


def test_leader_killed_in_a_burst_the_standby_finishes_it_with_quota_held(
    cluster: LocalCluster, tmp_path: Path, team: str, kubeconfig: Path, config: Callable[..., Path]
) -> None:
    count = 300
    run = uuid.uuid4().hex[:6]
    flavors = {f"burst-{run}-{i:03d}": ("t4", "a100")[i % 2] for i in range(count)}
    path = config()
    a = OperatorProcess(kubeconfig, tmp_path / "a", path, identity="replica-a")
    b = OperatorProcess(kubeconfig, tmp_path / "b", path, identity="replica-b")
    with AdmissionSampler(cluster, team, flavors) as sampler:
        try:
            a.start()
            eventually("replica-a leads", a.leading)
            b.start()
            assert not b.leading()
            killed = False
            t0 = time.monotonic()
            for name, flavor in flavors.items():
                cluster.api.create(tjs(team), trainingjob(name, run, flavor))
                if not killed and len(sampler.started) >= count // 3:
                    a.kill()
                    killed = True
            if not killed:
                eventually("a third admitted", lambda: len(sampler.started) >= count // 3, 60)
                a.kill()
            killed_with = len(sampler.started)
            eventually("replica-b leads", b.leading, timeout=30)
            eventually(
                "every job Succeeded",
                lambda: all_succeeded(cluster, team, run, count),
                timeout=180,
                interval=0.2,
            )
            elapsed = time.monotonic() - t0
            assert pods_per_job(cluster, team, run) == dict.fromkeys(flavors, 1)
            # The budget's spend equals the sum over the pods, to the cent.
            by_hand = cents(spend_of_pods(cluster, team))
            eventually("the budget's spend", lambda: budget_spent(cluster, team) == by_hand, 30)
        finally:
            a.stop()
            b.stop()
    old, new = admission_times(a), admission_times(b)
    assert old and new
    gap = (min(new) - max(old)).total_seconds()
    print(
        f"\n{count} jobs; replica-a killed with {killed_with} admitted; all Succeeded "
        f"{elapsed:.1f}s after the first create; failover gap (last admission of a -> first "
        f"of b): {gap:.1f}s; spend {by_hand} by hand and in the budget; most GPUs at once "
        f"{sampler.peak()} of {CAPACITY}; {len(sampler.samples)} samples"
    )
    assert gap > 0  # a admitted nothing after b began
    sampler.assert_sampled_often()
    over = sampler.over(CAPACITY)
    assert not over, over[:3]


def test_a_paused_leader_never_writes_after_the_new_leaders_first_write(
    cluster: LocalCluster, tmp_path: Path, team: str, kubeconfig: Path, config: Callable[..., Path]
) -> None:
    """SIGSTOP the leader past its lease (a partition: it answers nothing, renews nothing);
    the standby takes over and writes; the old leader, resumed, must not write again: the
    API server's audit log says who wrote when."""
    path = config()
    a = OperatorProcess(kubeconfig, tmp_path / "a", path, identity="replica-a")
    b = OperatorProcess(kubeconfig, tmp_path / "b", path, identity="replica-b")
    try:
        a.start()
        eventually("replica-a leads", a.leading)
        b.start()
        cluster.api.create(tjs(team), trainingjob("before", "p", "t4", runtime="10m"))
        eventually(
            "a admits 'before'",
            phase_in(cluster, team, "before", "Admitted", "Running"),
        )
        paused_at = datetime.now(UTC)
        a.pause()
        # Work that a, once resumed, will see in its watch and want to act on.
        eventually("replica-b leads", b.leading, timeout=30)
        cluster.api.create(tjs(team), trainingjob("after", "p", "t4", runtime="10m"))
        eventually(
            "b admits 'after'",
            phase_in(cluster, team, "after", "Admitted", "Running"),
        )
        b_writes = cluster.audit_events(
            paused_at,
            user_agent_prefix="cadre-operator/",
            where=lambda e: "replica-b" in e.user_agent,
        )
        assert b_writes, "replica-b wrote nothing"
        first_b = min(e.request_received for e in b_writes)
        a.resume()
        assert a.wait_exit(timeout=30) == 1  # it lost the lease: it exits, to be restarted
        # Writes that took effect: a conditional Lease update the old leader had in flight
        # can still reach the API server and be refused (409) or time out (504); it changes
        # nothing (CI once saw a 504 Lease update from replica-a after b's first write).
        a_writes = cluster.audit_events(
            first_b, where=lambda e: "replica-a" in e.user_agent and e.ok
        )
        assert not a_writes, [e.what for e in a_writes]
        logged = [r.get("event") for r in a.log_records()]
        assert "lost the leader lease: stopping (the process exits, a standby takes over)" in (
            logged
        )
        print(
            f"\nreplica-a paused at {paused_at:%H:%M:%S.%f}; replica-b's first write "
            f"{first_b:%H:%M:%S.%f}; replica-a's writes after it: 0; it exited 1"
        )
    finally:
        if a.alive():
            a.resume()
        a.stop()
        b.stop()


def test_apiserver_restart_loses_no_transition_and_metrics_keep_serving(
    cluster: LocalCluster, tmp_path: Path, team: str, kubeconfig: Path, config: Callable[..., Path]
) -> None:
    # The lease outlives the restart. With the short leases of the other tests (renew deadline
    # 4 s) a restart that takes longer makes the only replica rightly step down and exit, as
    # client-go's elector does; this test is about a leader riding out an outage, the
    # standby taking over is tested above.
    lease = {"leaseDurationSeconds": 90, "renewDeadlineSeconds": 60, "retryPeriodSeconds": 2}
    op = OperatorProcess(kubeconfig, tmp_path / "op", config(leaderElection=lease)).start()
    try:
        eventually("leading", op.leading)
        names = [f"through-{i}" for i in range(3)]
        for name in names:
            cluster.api.create(tjs(team), trainingjob(name, "r", "a100", runtime="12s"))
        for name in names:
            eventually(f"{name} Running", phase_in(cluster, team, name, "Running"))
        cluster.stop_apiserver()
        # The API server is down: the operator still answers for its metrics.
        assert "cadre_api_requests_total" in op.metrics()
        cluster.start_apiserver()
        cluster.wait_components_reconnected(timeout=120)
        names.append("after-restart")
        cluster.api.create(tjs(team), trainingjob("after-restart", "r", "a100", runtime="2s"))
        for name in names:
            eventually(f"{name} Succeeded", phase_in(cluster, team, name, "Succeeded"), timeout=120)

            def reasons(name: str = name) -> set[str]:
                events = cluster.api.get(
                    f"/api/v1/namespaces/{team}/events?fieldSelector=involvedObject.name%3D{name}"
                )["items"]
                return {e["reason"] for e in events}

            # The Event of a transition follows its status write: wait for it, a moment later.
            eventually(
                f"{name}'s transition Events",
                lambda: {"Admitted", "Running", "Succeeded"} <= reasons(),
                timeout=30,
            )
        assert op.alive()
    finally:
        op.stop()


def test_objects_deleted_while_watches_were_cut_free_their_quota_after_the_resync(
    cluster: LocalCluster, tmp_path: Path, team: str, kubeconfig: Path, config: Callable[..., Path]
) -> None:
    """The operator is paused; meanwhile the API server restarts with an etcd compaction
    every second (so its watches come back to "410 Gone" and Kopf relists, which sends no
    DELETED events), and a running TrainingJob (with its Job) and a node are deleted.
    Without a resync the deleted job would hold its quota for good and the node would add
    capacity that does not exist; after it, both are free."""
    # A lease that outlives the pause (the partition test covers losing it).
    path = config(
        controller={"resyncSeconds": 15},
        leaderElection={
            "leaseDurationSeconds": 120,
            "renewDeadlineSeconds": 90,
            "retryPeriodSeconds": 2,
        },
    )
    op = OperatorProcess(kubeconfig, tmp_path / "op", path).start()
    node = "kwok-cpu-1"
    try:
        eventually("leading", op.leading)
        # 8 t4 GPUs: the whole t4 quota of the team.
        hog = trainingjob("hog", "g", "t4", runtime="10m")
        hog["spec"]["workers"] = 2
        hog["spec"]["resources"]["gpus"] = 4
        cluster.api.create(tjs(team), hog)
        eventually(
            "hog Running",
            phase_in(cluster, team, "hog", "Running"),
        )
        rv = cluster.api.get(f"{tjs(team)}/hog")["metadata"]["resourceVersion"]
        op.pause()
        cluster.restart_apiserver(extra_args=["--etcd-compaction-interval=1s"])
        cluster.api.call("DELETE", f"{tjs(team)}/hog")
        cluster.api.call("DELETE", f"/api/v1/nodes/{node}")

        def compacted() -> bool:
            # Every write moves etcd on; the compactor (every second) then drops what the
            # paused operator saw last, and a watch from there is refused: 410 Gone.
            cluster.api.patch(
                "/api/v1/namespaces/default",
                {"metadata": {"annotations": {"cadre.dev/tick": str(time.monotonic())}}},
            )
            _, body = cluster.api.request(
                "GET", f"{tjs(team)}?watch=true&resourceVersion={rv}&timeoutSeconds=1"
            )
            return "410" in str(body)

        eventually("the operator's last resourceVersion compacted away", compacted)
        op.resume()
        # The quota hog held is free: a job needing all of it is admitted.
        cluster.api.create(tjs(team), {**hog, "metadata": {"name": "next", "labels": {}}})
        eventually(
            "next admitted",
            phase_in(cluster, team, "next", "Admitted", "Running"),
            timeout=60,
        )
        nodes = len(cluster.api.get("/api/v1/nodes")["items"])
        eventually("the cache's nodes", lambda: op.readiness()["cache"]["nodes"] == nodes)
        dropped = {
            line.split('kind="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in op.metrics().splitlines()
            if line.startswith("cadre_resync_dropped_total{")
        }
        print(f"\nobjects a resync found gone (their DELETED events never came): {dropped}")
        # Only a relist can tell a node is gone: Kopf's relist after the 410 did not.
        assert dropped.get("node", 0) >= 1
    finally:
        if op.alive():
            op.resume()
        op.stop()
        if not cluster.api.exists(f"/api/v1/nodes/{node}"):
            pools = nodepool.load(cluster.nodepool_file)
            again = [
                n
                for n in nodepool.node_manifests(pools, cluster.scale)
                if n["metadata"]["name"] == node
            ]
            nodepool.create_nodes(cluster.api, again)
