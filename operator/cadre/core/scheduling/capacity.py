"""Capacity per flavour from node records (pure; the adapter lists the nodes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cadre.core.scheduling.types import Flavour, FlavourSelector, Node, Resources

__all__ = ["capacity_from_nodes"]


def capacity_from_nodes(
    flavours: Sequence[FlavourSelector], nodes: Iterable[Node]
) -> tuple[Flavour, ...]:
    """Sum the allocatable resources of schedulable nodes into their flavour.

    A node belongs to the first flavour (in the given order) whose labels it all carries, so
    overlapping selectors never count a node twice. Cordoned (unschedulable) nodes and nodes
    of no flavour count nowhere. Every flavour is returned, with zero capacity if no node
    matches.
    """
    sums = [[0, 0, 0] for _ in flavours]
    selectors = [tuple(f.node_labels.items()) for f in flavours]
    for node in nodes:
        if node.unschedulable:
            continue
        labels = node.labels
        for i, selector in enumerate(selectors):
            if all(labels.get(k) == v for k, v in selector):
                acc = sums[i]
                acc[0] += node.allocatable.gpus
                acc[1] += node.allocatable.cpu
                acc[2] += node.allocatable.memory
                break
    return tuple(
        Flavour(f.name, Resources(s[0], s[1], s[2])) for f, s in zip(flavours, sums, strict=True)
    )
