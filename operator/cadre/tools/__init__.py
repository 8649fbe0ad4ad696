"""The `cadre` command and what it needs beyond the operator: CRD generation from the API
models, offline validation of manifests."""
