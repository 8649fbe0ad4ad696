"""The admission loop of the cluster and its pure parts.

- `store`: the in-memory view of the cluster that handlers feed (pure);
- `snapshot`: store -> the admission core's `Snapshot` (pure);
- `loop`: the one asyncio task that runs passes and applies decisions (I/O).

This `__init__` imports nothing, so the pure modules stay importable without Kopf or
the Kubernetes client.
"""
