"""Admission knows the nodes (issue #14 item 1), on the whole local cluster.

The issue's scenario as a new user would try it: four 1-worker jobs of 2 a100 GPUs each,
which kube-scheduler spreads over the four 8-GPU a100 nodes, then `big`, 3 workers x 8
GPUs. 24 GPUs are free in sum, but no node has 8: `big` stays Queued, its reason naming
the nodes, and none of its workers is ever created; once the small jobs finish it is
admitted and all three workers run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from burst import trainingjob
from cadre_process import OperatorProcess
from localcluster import LocalCluster
from waiting import eventually

pytestmark = pytest.mark.e2e

GROUP = "/apis/cadre.dev/v1alpha1"
SMALL_SECONDS = 25  # the small jobs' run: long enough to see `big` wait behind them


@pytest.fixture
def operator(
    kubeconfig: Path, tmp_path: Path, config: Callable[..., Path]
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kubeconfig, tmp_path, config())
    try:
        yield op.start()
    finally:
        op.stop()


def training(name: str, workers: int, gpus: int, seconds: int) -> dict[str, Any]:
    return trainingjob(
        name, "placement", "a100", f"{seconds}s", workers=workers, gpus=gpus, cpu="4", memory="16Gi"
    )


def test_a_gang_that_fits_only_in_sum_waits_for_nodes_then_runs_whole(
    operator: OperatorProcess, cluster: LocalCluster, team: str
) -> None:
    tjs = f"{GROUP}/namespaces/{team}/trainingjobs"
    pods = f"/api/v1/namespaces/{team}/pods"

    def status(name: str) -> dict[str, Any]:
        return dict(cluster.api.get(f"{tjs}/{name}").get("status") or {})

    def nodes_of(name: str) -> list[str]:
        selector = f"cadre.dev%2Ftrainingjob%3D{name}"
        items = cluster.api.get(f"{pods}?labelSelector={selector}")["items"]
        return [p["spec"].get("nodeName") for p in items if p["spec"].get("nodeName")]

    small = [f"small-{i}" for i in range(4)]
    for name in small:
        cluster.api.create(tjs, training(name, 1, 2, SMALL_SECONDS))
    for name in small:
        eventually(f"{name} Running", lambda n=name: status(n).get("phase") == "Running")
    used = {node for name in small for node in nodes_of(name)}
    print(f"\nsmall jobs on {sorted(used)}")
    assert len(used) >= 2, "the scenario needs the small jobs on at least two nodes"

    cluster.api.create(tjs, training("big", 3, 8, 600))
    waiting = eventually(
        "big Queued with the reason",
        lambda: status("big") if (status("big").get("queue") or {}).get("reason") else None,
    )
    admitted = next(c for c in waiting["conditions"] if c["type"] == "Admitted")
    print(f"big waits: {admitted['message']}")
    assert waiting["phase"] == "Queued", waiting
    assert admitted["reason"] == "NodesFragmented", admitted
    assert "3 workers (8 a100 GPUs each) must start together" in admitted["message"]
    assert "24 a100 GPUs are free in all" in admitted["message"]
    assert nodes_of("big") == []
    # A waiting job has no Job: Cadre creates it at admission.
    assert cluster.api.request("GET", f"/apis/batch/v1/namespaces/{team}/jobs/big")[0] == 404

    # The small jobs finish: `big` is admitted and every worker runs.
    while_queued: list[int] = []

    def running() -> bool:
        state = status("big")
        if state.get("phase") in (None, "Pending", "Queued"):
            while_queued.append(len(nodes_of("big")))
        return state.get("phase") == "Running"

    eventually("big Running once the small jobs finish", running, timeout=SMALL_SECONDS + 60)
    assert set(while_queued) <= {0}, "no worker of big was bound while it was queued"
    assert len(nodes_of("big")) == 3
    for name in small:  # (its status may be written a moment after its pods are gone)
        eventually(f"{name} Succeeded", lambda n=name: status(n).get("phase") == "Succeeded")
