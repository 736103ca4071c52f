"""Grafana dashboards as code; ``python -m twin.dashboards`` writes ``dashboards/*.json``."""
