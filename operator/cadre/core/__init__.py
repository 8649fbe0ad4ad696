"""The pure core of Cadre: API models, units, scheduling, accounting, the TrainingJob's
lifecycle and children, budget status and teams, the cluster view of the admission pass.

No kopf, no kubernetes client, no aiohttp, no clock reads and no I/O: values in, values
out. The controller layer (`cadre.controller`) observes the cluster, calls into here and
carries out the decisions. An import-linter contract (pyproject.toml) keeps it so.
"""
