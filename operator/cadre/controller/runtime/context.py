"""What every handler gets as Kopf's `memo`: the config, the API client, the store and
the admission loop and the budget writer of this operator process (no module-level globals)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from cadre.controller.admission_loop import AdmissionLoop
from cadre.controller.budget_writer import BudgetKeeper
from cadre.controller.client import Kube
from cadre.core.api.config import OperatorConfig
from cadre.core.cluster.store import Store


@dataclass
class Runtime:
    config: OperatorConfig
    kube: Kube
    store: Store
    loop: AdmissionLoop
    budgets: BudgetKeeper
    ttl_timers: dict[str, tuple[float, asyncio.Task[None]]] = field(default_factory=dict)
    """TrainingJob key -> (when, task) of its deletion after spec.ttlAfterFinished."""

    @classmethod
    def create(cls, config: OperatorConfig, kube: Kube) -> Runtime:
        store = Store()
        loop = AdmissionLoop(store, config, kube)
        budgets = BudgetKeeper(kube, store, config, loop.notify)
        loop.observers.append(budgets.after_pass)
        return cls(config=config, kube=kube, store=store, loop=loop, budgets=budgets)
