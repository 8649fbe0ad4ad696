"""The local cluster is a real one: fake GPU nodes Ready, the real scheduler places GPU
pods, the real Job controller completes and fails Jobs as KWOK's stages script them, and
`down` leaves no process behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster import LocalCluster, nodepool
from localcluster.procs import is_alive

pytestmark = pytest.mark.e2e

GPU = "nvidia.com/gpu"


def gpu_job(name: str, namespace: str, annotations: dict[str, str]) -> dict[str, Any]:
    """An Indexed Job of 2 pods, 1 GPU each, for the a100 flavour (selector + toleration)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {nodepool.FLAVOR_LABEL: "a100"},
                    "tolerations": [
                        {
                            "key": GPU,
                            "operator": "Equal",
                            "value": "present",
                            "effect": "NoSchedule",
                        }
                    ],
                    "containers": [
                        {
                            "name": "train",
                            "image": "ghcr.io/acme/train:1.4",
                            "resources": {"limits": {GPU: "1"}, "requests": {"cpu": "1"}},
                        }
                    ],
                },
            },
        },
    }


def pods_of(cluster: LocalCluster, namespace: str, job: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"job-name={job}", "-o", "json")
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def test_fake_gpu_nodes_are_ready_with_their_gpus(cluster: LocalCluster) -> None:
    out = cluster.kubectl("get", "nodes", "-o", "json")
    nodes = {n["metadata"]["name"]: n for n in json.loads(out.stdout)["items"]}
    scale = cluster.scale
    pools = nodepool.load(cluster.nodepool_file)
    assert len(nodes) == sum(p.count for p in pools) * scale
    for pool in pools:
        members = [
            n
            for n in nodes.values()
            if n["metadata"]["labels"].get(nodepool.FLAVOR_LABEL) == pool.flavor
        ]
        assert len(members) == pool.count * scale, pool.name
        for node in members:
            meta, status = node["metadata"], node["status"]
            assert meta["annotations"]["kwok.x-k8s.io/node"] == "fake"
            ready = {c["type"]: c["status"] for c in status["conditions"]}["Ready"]
            assert ready == "True", meta["name"]
            assert {a["address"] for a in status["addresses"] if a["type"] == "InternalIP"} == {
                "127.0.0.1"
            }
            assert meta["labels"]["node.kubernetes.io/instance-type"] == pool.instance_type
            taints = node["spec"].get("taints", [])
            if pool.gpu:
                assert status["capacity"][GPU] == str(pool.gpu["count"])
                assert status["allocatable"][GPU] == str(pool.gpu["count"])
                assert meta["labels"]["nvidia.com/gpu.product"] == pool.gpu["product"]
                assert meta["labels"]["nvidia.com/gpu.present"] == "true"
                assert {"key": GPU, "value": "present", "effect": "NoSchedule"} in taints
            else:
                assert GPU not in status["capacity"]
                assert taints == []
    # What a user sees: kubectl's table lists them Ready.
    table = cluster.kubectl("get", "nodes", "--no-headers").stdout.splitlines()
    assert len(table) == len(nodes)
    assert all(line.split()[1] == "Ready" for line in table)


def test_indexed_gpu_job_is_scheduled_on_gpu_nodes_and_completes(
    cluster: LocalCluster, namespace: str
) -> None:
    job = gpu_job("train-ok", namespace, {"pod-complete.stage.kwok.x-k8s.io/delay": "2s"})
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Complete", "job/train-ok", "--timeout=90s"
    )
    status = json.loads(
        cluster.kubectl("get", "job", "train-ok", "-n", namespace, "-o", "json").stdout
    )["status"]
    assert status["succeeded"] == 2
    assert status.get("completedIndexes") == "0,1"
    pods = pods_of(cluster, namespace, "train-ok")
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"].startswith("kwok-a100-")
        assert pod["spec"]["schedulerName"] == "default-scheduler"
        assert pod["status"]["phase"] == "Succeeded"
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 0
    # Placed by the real scheduler: its Scheduled events name the GPU nodes.
    events = json.loads(
        cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", "reason=Scheduled", "-o", "json"
        ).stdout
    )["items"]
    scheduled = [e for e in events if e["involvedObject"]["name"].startswith("train-ok-")]
    assert len(scheduled) == 2
    assert all("kwok-a100-" in e["message"] for e in scheduled)
    assert all(
        (e.get("reportingComponent") or e["source"].get("component")) == "default-scheduler"
        for e in scheduled
    )


def test_job_scripted_to_fail_fails_with_its_exit_code(
    cluster: LocalCluster, namespace: str
) -> None:
    job = gpu_job(
        "train-bad",
        namespace,
        {"pod-complete.stage.kwok.x-k8s.io/delay": "1s", "kwok.cadre.dev/exit-code": "3"},
    )
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Failed", "job/train-bad", "--timeout=90s"
    )
    pods = pods_of(cluster, namespace, "train-bad")
    assert pods
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_down_leaves_no_process_and_a_failed_start_neither(tmp_path: Path) -> None:
    """A second cluster next to the session's (own ports); then a start that fails late."""
    second = LocalCluster(tmp_path / "second", die_with_parent=True, build=False)
    try:
        second.up()
    except Exception as exc:
        second.down()
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"second cluster could not start: {exc}", pytrace=False)
        pytest.skip(f"second cluster could not start: {exc}")
    records = list(second.records)
    data_dir = second.etcd_data_dir
    assert {r.name for r in records} == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }
    assert all(is_alive(r) for r in records)
    second.down()
    for rec in records:
        assert not is_alive(rec), f"{rec.name} pid {rec.pid} still alive"
        assert not Path(f"/proc/{rec.pid}").exists() or not is_alive(rec)
    assert data_dir is not None and not data_dir.exists()
    assert not second.state_file.exists()

    # A node pool that cannot be read fails the start after every process is running:
    # up() must stop them all before raising.
    bad_pool = tmp_path / "bad-nodepool.yaml"
    bad_pool.write_text("pools: [{name: broken}]\n")
    third = LocalCluster(
        tmp_path / "third", nodepool_file=bad_pool, die_with_parent=True, build=False
    )
    with pytest.raises(KeyError):
        third.up()
    assert len(third.records) == 5
    for rec in third.records:
        assert not is_alive(rec), f"{rec.name} pid {rec.pid} survived a failed start"
