"""Cadre's local Kubernetes for tests, demos and benchmarks (see docs/local-cluster.md).

CLI: ``PYTHONPATH=e2e python -m localcluster up|down|status``.
"""

from .api import Api, ApiError
from .audit import AuditEvent
from .binaries import MissingBinariesError
from .cluster import ClusterError, LocalCluster, default_state_dir

__all__ = [
    "Api",
    "ApiError",
    "AuditEvent",
    "ClusterError",
    "LocalCluster",
    "MissingBinariesError",
    "default_state_dir",
]
