"""Nodes as placement sees them: a pod's requests as the scheduler reserves them, taints
against a flavour's tolerations, and the snapshot's nodes with what their pods use."""

from __future__ import annotations

from typing import Any

from cadre.core.api.config import Toleration, parse_config
from cadre.core.cluster.nodes import (
    bound_pod,
    node_capacities,
    node_parts,
    pod_requests,
    tolerated,
)
from cadre.core.cluster.store import node_record
from cadre.core.scheduling import FlavourSelector, Resources, capacity_from_nodes
from cadre_process import EXAMPLE_CONFIG

GI = 1 << 30


def container(**resources: Any) -> dict[str, Any]:
    return {"name": "c", "image": "x", "resources": resources}


def test_requests_sum_containers_and_sidecars_and_take_the_largest_init_step() -> None:
    spec = {
        "initContainers": [
            {**container(requests={"cpu": "2"}), "restartPolicy": "Always"},  # a sidecar
            container(requests={"cpu": "3", "memory": "8Gi"}),  # runs beside the sidecar
        ],
        "containers": [
            container(requests={"cpu": "1", "memory": "1Gi"}),
            container(limits={"nvidia.com/gpu": "4", "memory": "2Gi"}),  # request = limit
        ],
        "overhead": {"cpu": "250m"},
    }
    assert pod_requests(spec) == {
        "cpu": 5000 + 250,  # max(1 + 2 sidecar, 3 + 2 sidecar) + overhead
        "memory": 8 * GI,  # max(1 + 2, 8)
        "nvidia.com/gpu": 4,
    }


def test_only_bound_unfinished_pods_count_with_their_owner() -> None:
    def pod(node: str | None, phase: str, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "metadata": {"namespace": "ns", "labels": labels},
            "spec": {"nodeName": node, "containers": [container(requests={"cpu": "1"})]},
            "status": {"phase": phase},
        }

    assert bound_pod(pod(None, "Pending", {})) is None
    assert bound_pod(pod("n", "Succeeded", {})) is None
    assert bound_pod(pod("n", "Running", {})).owner is None  # type: ignore[union-attr]
    training = bound_pod(pod("n", "Running", {"cadre.dev/trainingjob": "tj"}))
    assert training is not None and training.owner == "ns/tj"
    serving = bound_pod(pod("n", "Pending", {"cadre.dev/modeldeployment": "md"}))
    assert serving is not None and serving.owner == "md:ns/md"


def test_taints_must_all_be_tolerated_but_prefer_no_schedule_is_ignored() -> None:
    gpu = [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    assert tolerated([{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}], gpu)
    assert tolerated([{"key": "spot", "effect": "PreferNoSchedule"}], gpu)
    assert not tolerated([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}], gpu)
    assert not tolerated([{"key": "nvidia.com/gpu", "effect": "NoExecute"}], gpu)
    equal = [Toleration(key="pool", operator="Equal", value="ml")]
    assert tolerated([{"key": "pool", "value": "ml", "effect": "NoExecute"}], equal)
    assert not tolerated([{"key": "pool", "value": "web", "effect": "NoSchedule"}], equal)


def test_nodes_of_a_flavour_with_what_their_pods_use() -> None:
    config = parse_config(EXAMPLE_CONFIG.read_text())

    def node(name: str, flavor: str, **spec: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "labels": {"cadre.dev/flavor": flavor}},
            "spec": spec,
            "status": {"allocatable": {"cpu": "96", "memory": "1152Gi", "nvidia.com/gpu": "8"}},
        }

    records = {
        "a": node_record(node("a", "a100")),
        "b": node_record(node("b", "a100", unschedulable=True)),
        "c": node_record(node("c", "a100", taints=[{"key": "maint", "effect": "NoSchedule"}])),
        "x": node_record(node("x", "none-such")),
    }
    running = {
        "metadata": {"namespace": "ns", "labels": {"cadre.dev/trainingjob": "tj"}},
        "spec": {
            "nodeName": "a",
            "containers": [container(limits={"nvidia.com/gpu": "2"}, requests={"cpu": "4"})],
        },
        "status": {"phase": "Running"},
    }
    pods = [bound_pod(running), bound_pod(running)]
    nodes, bound = node_capacities(records, [p for p in pods if p is not None], config)
    by_name = {n.name: n for n in nodes}
    assert sorted(by_name) == ["a", "b", "c"]  # "x" is of no flavour
    assert by_name["a"].used == Resources(4, 8000, 0)
    assert by_name["a"].allocatable == Resources(8, 96000, 1152 * GI)
    assert [by_name[n].schedulable for n in "abc"] == [True, False, False]
    assert bound == {"ns/tj": (("a", 2),)}

    # With a memo kept between passes, a node is parsed again only once its record is
    # replaced: the memo's answer is the same, and a tainted node stops being schedulable.
    memo: dict[Any, Any] = {}
    assert node_capacities(records, [], config, memo) == node_capacities(records, [], config)
    assert node_capacities(records, [], config, memo) == node_capacities(records, [], config)
    records["a"] = node_record(node("a", "a100", taints=[{"key": "gone", "effect": "NoExecute"}]))
    (first, *_), _ = node_capacities(records, [], config, memo)
    assert (first.name, first.schedulable) == ("a", False)


def test_a_node_is_parsed_once_for_capacity_and_for_placement(monkeypatch: Any) -> None:
    """A node's record is parsed once, and the one parse serves both the flavour's capacity
    and placement, until the record is replaced."""
    config = parse_config(EXAMPLE_CONFIG.read_text())
    a100 = [FlavourSelector("a100", {"cadre.dev/flavor": "a100"})]
    source = {
        "metadata": {"name": "a", "labels": {"cadre.dev/flavor": "a100"}},
        "status": {"allocatable": {"cpu": "96", "memory": "1152Gi", "nvidia.com/gpu": "8"}},
    }
    record = node_record(source)
    memo: dict[Any, Any] = {}
    parts = node_parts("a", record, config.flavors, memo)
    whole = Resources(8, 96000, 1152 * GI)
    assert capacity_from_nodes(a100, [parts.node])[0].capacity == whole

    def parse(value: Any) -> int:
        raise AssertionError(f"{value!r} parsed again")

    monkeypatch.setattr("cadre.core.cluster.nodes.to_millicores", parse)
    monkeypatch.setattr("cadre.core.cluster.nodes.to_bytes", parse)
    assert node_parts("a", record, config.flavors, memo) is parts
    (placed,), _ = node_capacities({"a": record}, [], config, memo)
    assert (placed.allocatable, placed.schedulable) == (whole, True)

    # A replaced record is parsed again (here, cordoned: no capacity, not schedulable).
    monkeypatch.undo()
    cordoned = node_record({**source, "spec": {"unschedulable": True}})
    assert (
        capacity_from_nodes(a100, [node_parts("a", cordoned, config.flavors, memo).node])[
            0
        ].capacity
        == Resources()
    )
    (placed,), _ = node_capacities({"a": cordoned}, [], config, memo)
    assert not placed.schedulable
