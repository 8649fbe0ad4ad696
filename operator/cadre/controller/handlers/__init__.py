"""Kopf handlers: thin adapters from watch events into the cache.

They never write to the API and never fail: each event goes into the store
(`controller/cache.py`), puts the workload it concerns on its reconciler's work queue
and wakes the admission loop when a decision may change. Every replica runs them (a
standby keeps a warm cache); only the leader reconciles and decides. Importing this
package registers every handler with Kopf's default registry.

The busiest kinds do not come through Kopf: TrainingJobs, their Jobs and the pods of
Cadre's workloads have Cadre's own list-and-watch (`controller/watches.py`), whose events
go straight into the cache. None of them uses Kopf's create/update handlers either: those
would write a finalizer and a last-handled-configuration annotation on every object
(extra writes on the user's object, and drift that Argo CD sees). Deletion needs no
finalizer: the DELETED event frees the quota; the garbage collector removes the children
(owner references); pods keep Cadre's accounting finalizer until their cost is recorded
(`budget_writer.py`).
"""

from cadre.controller.handlers import cluster, modeldeployment

__all__ = ["cluster", "modeldeployment"]
