"""Observability: structured logs now; metrics and tracing build on the same package."""
