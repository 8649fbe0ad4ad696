"""The declarative pool of fake GPU nodes (e2e/cluster/nodepool.yaml) and its creation."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .api import Api, ApiError

DEFAULT_NODEPOOL = Path(__file__).resolve().parent.parent / "cluster" / "nodepool.yaml"
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
FLAVOR_LABEL = "cadre.dev/flavor"


@dataclass(frozen=True)
class Pool:
    name: str
    count: int
    flavor: str
    instance_type: str
    cpu: str
    memory: str
    pods: int
    zones: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    gpu: dict[str, Any] | None = None
    taints: list[dict[str, str]] = field(default_factory=list)


def load(path: Path = DEFAULT_NODEPOOL) -> list[Pool]:
    doc = yaml.safe_load(path.read_text())
    defaults = doc.get("defaults", {})
    pools = []
    for p in doc["pools"]:
        pools.append(
            Pool(
                name=p["name"],
                count=int(p["count"]),
                flavor=p["flavor"],
                instance_type=p["instanceType"],
                cpu=str(p["cpu"]),
                memory=str(p["memory"]),
                pods=int(p.get("pods", defaults.get("pods", 110))),
                zones=list(p.get("zones", defaults.get("zones", ["fake-zone-a"]))),
                labels={**defaults.get("labels", {}), **p.get("labels", {})},
                gpu=p.get("gpu"),
                taints=list(p.get("taints", [])),
            )
        )
    return pools


def node_manifests(pools: list[Pool], scale: int = 1) -> list[dict[str, Any]]:
    """Node objects with status (allowed on create), so no second write is needed."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, not {scale}")
    nodes = []
    for pool in pools:
        for i in range(pool.count * scale):
            name = f"kwok-{pool.name}-{i}"
            labels = {
                **pool.labels,
                "kubernetes.io/hostname": name,
                "node.kubernetes.io/instance-type": pool.instance_type,
                "topology.kubernetes.io/zone": pool.zones[i % len(pool.zones)],
                FLAVOR_LABEL: pool.flavor,
            }
            capacity = {"cpu": pool.cpu, "memory": pool.memory, "pods": str(pool.pods)}
            if pool.gpu:
                resource = pool.gpu.get("resource", "nvidia.com/gpu")
                capacity[resource] = str(pool.gpu["count"])
                labels.update(
                    {
                        "nvidia.com/gpu.present": "true",
                        "nvidia.com/gpu.product": pool.gpu["product"],
                        "nvidia.com/gpu.count": str(pool.gpu["count"]),
                        "nvidia.com/gpu.family": pool.gpu.get("family", ""),
                        "nvidia.com/gpu.memory": str(pool.gpu.get("memoryMiB", "")),
                    }
                )
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {k: v for k, v in labels.items() if v != ""},
                        "annotations": {
                            FAKE_NODE_ANNOTATION[0]: FAKE_NODE_ANNOTATION[1],
                            "node.alpha.kubernetes.io/ttl": "0",
                        },
                    },
                    "spec": {"taints": pool.taints} if pool.taints else {},
                    "status": {
                        "capacity": capacity,
                        "allocatable": dict(capacity),
                        "addresses": [
                            {"type": "InternalIP", "address": "127.0.0.1"},
                            {"type": "Hostname", "address": name},
                        ],
                        "nodeInfo": {
                            "architecture": "amd64",
                            "operatingSystem": "linux",
                            "osImage": "KWOK fake node",
                        },
                    },
                }
            )
    return nodes


def create_nodes(api: Api, nodes: list[dict[str, Any]], workers: int = 8) -> float:
    """Creates the nodes over `workers` keep-alive connections; returns the seconds taken.

    A node that already exists is left as it is (a re-run is harmless).
    """
    t0 = time.monotonic()

    def one(node: dict[str, Any]) -> None:
        for attempt in range(5):
            try:
                api.create("/api/v1/nodes", node, exist_ok=True)
                return
            except ApiError as exc:
                if exc.status != 429 or attempt == 4:  # throttled by priority & fairness
                    raise
                time.sleep(0.2 * (attempt + 1))

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(nodes)))) as pool:
        for _ in pool.map(one, nodes):
            pass
    return time.monotonic() - t0
