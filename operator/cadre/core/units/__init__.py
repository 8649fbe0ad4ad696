"""Exact units of the Kubernetes API: quantities ("200Gi", "500m") and Go durations
("48h"), as Decimal, never float."""
