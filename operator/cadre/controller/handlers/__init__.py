"""Kopf handlers: thin adapters from watch events into the cache.

They never write to the API and never fail: each event goes into the store
(`controller/cache.py`), puts the workload it concerns on its reconciler's work queue
and wakes the admission loop when a decision may change. Every replica runs them (a
standby keeps a warm cache); only the leader reconciles and decides. Importing this
package registers every handler with Kopf's default registry.
"""

from cadre.controller.handlers import cluster, modeldeployment, trainingjob

__all__ = ["cluster", "modeldeployment", "trainingjob"]
