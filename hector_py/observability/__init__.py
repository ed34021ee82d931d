"""Observability: logs, metrics and tracing, built once per app by ``Telemetry``."""

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set by ``--workers`` (before prometheus_client loads) to the directory workers share."""
