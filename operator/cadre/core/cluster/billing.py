"""Who pays for a pod, and at which flavour's prices. Pure.

Never from the pod's labels, which anyone who may edit pods in the namespace can change:
- the team is the ResourceBudget that covers the pod's namespace (a pod cannot move
  between namespaces; budgets are the platform team's);
- the flavour is the one of the node the pod runs on (nodes are the platform's: where it
  ran is what it used), else the one its TrainingJob's or ModelDeployment's admission
  holds (the status, which only Cadre writes), else the one its spec asks for (a pod never
  scheduled runs nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cadre.core.api.config import OperatorConfig
from cadre.core.api.names import LABEL_MODELDEPLOYMENT, LABEL_TRAININGJOB
from cadre.core.cluster.nodes import flavour_of
from cadre.core.cluster.store import Store

__all__ = ["Payer", "payer_of"]

Payer = tuple[str | None, str | None]
"""(team, flavour) of a pod; None where there is none."""


def _flavour_of_node(store: Store, config: OperatorConfig, node_name: str) -> str | None:
    node = store.nodes.get(node_name)
    flavour = flavour_of(node, config.flavors) if node is not None else None
    return flavour.name if flavour is not None else None


def _flavour_of_workload(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    admission = (obj.get("status") or {}).get("admission")
    if isinstance(admission, Mapping) and admission.get("flavor"):
        return str(admission["flavor"])
    flavour = ((obj.get("spec") or {}).get("resources") or {}).get("flavor")
    return str(flavour) if flavour else None


def payer_of(pod: Mapping[str, Any], store: Store, config: OperatorConfig) -> Payer:
    """The team and flavour a pod of a Cadre workload is charged to."""
    metadata = pod.get("metadata") or {}
    namespace = str(metadata.get("namespace", ""))
    team = store.team_of(namespace)
    node_name = (pod.get("spec") or {}).get("nodeName")
    flavour = _flavour_of_node(store, config, str(node_name)) if node_name else None
    if flavour is None:
        labels = metadata.get("labels") or {}
        served = labels.get(LABEL_MODELDEPLOYMENT)
        if served:
            owner = store.modeldeployments.get(f"{namespace}/{served}")
        else:
            owner = store.trainingjobs.get(f"{namespace}/{labels.get(LABEL_TRAININGJOB)}")
        flavour = _flavour_of_workload(owner)
    return team, flavour
