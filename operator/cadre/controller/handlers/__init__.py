"""Kopf handlers: thin adapters from watch events to the store, the loop and the effects.

Importing this package registers every handler with Kopf's default registry.
"""

from cadre.controller.handlers import cluster, trainingjob

__all__ = ["cluster", "trainingjob"]
