"""What Prometheus and Grafana get from Cadre besides the metrics, generated and committed:
the Grafana dashboards (`dashboards`) and the alert rules' copies (`alerts`). Each module
runs as `python -m cadre.tools.monitoring.<module>`, with `--check` for drift."""
