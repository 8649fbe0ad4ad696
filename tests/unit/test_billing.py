"""Who pays for a pod (cadre.core.cluster.billing): never the pod's own labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cadre.core.api.config import parse_config
from cadre.core.cluster.billing import payer_of
from cadre.core.cluster.store import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG = parse_config((EXAMPLES / "operator-config.yaml").read_text())


def store() -> Store:
    s = Store()
    for doc in yaml.safe_load_all((EXAMPLES / "budgets.yaml").read_text()):
        if doc["kind"] == "ResourceBudget":
            s.upsert_budget(doc)
        else:
            s.upsert_namespace(doc)
    for flavour in ("a100", "t4"):
        s.upsert_node(
            {"metadata": {"name": f"{flavour}-0", "labels": {"cadre.dev/flavor": flavour}}}
        )
    s.upsert_trainingjob(
        {
            "metadata": {"name": "resnet", "namespace": "vision-research", "uid": "tj"},
            "spec": {"resources": {"flavor": "t4", "gpus": 1}},
            "status": {"admission": {"jobUID": "j", "flavor": "a100", "gpus": 8}},
        }
    )
    return s


def pod(node: str | None = None, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "resnet-0",
            "namespace": "vision-research",
            "labels": {"cadre.dev/trainingjob": "resnet", **labels},
        },
        "spec": {"nodeName": node} if node else {},
    }


def test_labels_on_the_pod_never_decide_team_or_price() -> None:
    s = store()
    forged = pod("a100-0", **{"cadre.dev/team": "nlp", "cadre.dev/flavor": "t4"})
    assert payer_of(forged, s, CONFIG) == ("vision", "a100")
    # A team that does not exist: still the namespace's budget.
    assert payer_of(pod("a100-0", **{"cadre.dev/team": "ghost"}), s, CONFIG)[0] == "vision"


def test_the_node_it_ran_on_decides_the_flavour_then_the_admission() -> None:
    s = store()
    # Scheduled on a T4 node (its nodeSelector was switched): priced as what it used.
    assert payer_of(pod("t4-0"), s, CONFIG) == ("vision", "t4")
    # Not scheduled yet, or its node is gone: the admission's flavour, not the spec's.
    assert payer_of(pod(), s, CONFIG) == ("vision", "a100")
    assert payer_of(pod("gone-node"), s, CONFIG) == ("vision", "a100")


def test_a_namespace_without_a_budget_charges_no_team() -> None:
    s = store()
    stray = pod("a100-0")
    stray["metadata"]["namespace"] = "sandbox"
    assert payer_of(stray, s, CONFIG)[0] is None
