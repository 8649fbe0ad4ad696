"""Cadre: a Kubernetes operator for ML teams (training, serving, quotas and budgets)."""

__version__ = "0.1.0"
