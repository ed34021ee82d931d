"""Prometheus metrics: every metric's name, help, labels and buckets, in one place.

Each app gets its own registries (no globals). ``namespace``/``subsystem`` prefix every
name; ``const_labels`` are added to every series once, at collection time, by
:class:`ConstLabels` (prometheus_client has no const labels of its own).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from hector_py import __version__
from hector_py.config.model import MetricsConfig

# Bucket boundaries (seconds). LLM calls follow the OpenTelemetry GenAI semantic conventions
# (gen_ai.client.operation.duration, gen_ai.server.time_to_first_token); HTTP follows
# http.server.request.duration; agent runs span several LLM calls, tools are usually quick.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60)
LLM_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
AGENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
TOOL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def http_method_label(method: str) -> str:
    """The method as a bounded label value (anything unusual becomes ``OTHER``)."""
    return method if method in HTTP_METHODS else "OTHER"


class ConstLabels(Collector):
    """Re-emits another registry's metrics with ``labels`` added to every sample."""

    def __init__(self, inner: CollectorRegistry, labels: Mapping[str, str]) -> None:
        self._inner = inner
        self._labels = dict(labels)

    def collect(self) -> Iterable[Metric]:
        """The inner metrics, relabelled."""
        for family in self._inner.collect():
            relabelled = Metric(family.name, family.documentation, family.type, family.unit)
            relabelled.samples = [
                sample._replace(labels={**self._labels, **sample.labels})
                for sample in family.samples
            ]
            yield relabelled


class Metrics:
    """The hector metric set for one app."""

    def __init__(self, config: MetricsConfig, multiprocess_dir: str | None = None) -> None:
        """``multiprocess_dir``: the shared directory of ``--workers`` mode, where every
        process writes its values and a scrape adds them up."""
        self.config = config
        self.registry = CollectorRegistry(auto_describe=True)
        source = CollectorRegistry(auto_describe=True) if config.const_labels else self.registry
        if config.const_labels:
            self.registry.register(ConstLabels(source, config.const_labels))
        if multiprocess_dir:
            MultiProcessCollector(source, multiprocess_dir)  # type: ignore[no-untyped-call]
        # In multiprocess mode values live in files; the metric objects need no registry.
        owner = None if multiprocess_dir else source
        ns, sub = config.namespace, config.subsystem

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, namespace=ns, subsystem=sub, registry=owner)

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(
                name, doc, labels, namespace=ns, subsystem=sub, registry=owner, buckets=buckets
            )

        def gauge(
            name: str,
            doc: str,
            labels: tuple[str, ...],
            mode: Literal["livesum", "max"] = "livesum",
        ) -> Gauge:
            return Gauge(
                name,
                doc,
                labels,
                namespace=ns,
                subsystem=sub,
                registry=owner,
                multiprocess_mode=mode,
            )

        llm = ("agent", "provider", "model")
        self.requests = counter(
            "requests_total",
            "HTTP requests by route pattern and outcome",
            ("method", "route", "code", "status"),
        )
        self.request_duration = histogram(
            "request_duration_seconds", "HTTP request duration", ("method", "route"), HTTP_BUCKETS
        )
        self.active_requests = gauge("active_requests", "HTTP requests in progress", ())
        self.agent_requests = counter(
            "agent_requests_total", "Protocol requests addressed to an agent", ("agent", "status")
        )
        self.agent_request_duration = histogram(
            "agent_request_duration_seconds", "Agent run duration", ("agent",), AGENT_BUCKETS
        )
        self.agent_invocations = counter(
            "agent_invocations_total", "Agent runs (executions)", ("agent", "status")
        )
        self.active_agent_runs = gauge("active_agent_runs", "Agent runs in progress", ("agent",))
        self.llm_requests = counter("llm_requests_total", "LLM calls", (*llm, "status"))
        self.llm_duration = histogram(
            "llm_request_duration_seconds", "LLM call duration", llm, LLM_BUCKETS
        )
        self.llm_ttft = histogram(
            "llm_time_to_first_token_seconds", "Time to the first streamed token", llm, TTFT_BUCKETS
        )
        self.llm_tokens = counter(
            "llm_tokens_total", "Tokens used, by type (prompt|completion)", (*llm, "type")
        )
        self.llm_retries = counter("llm_retries_total", "LLM call retries", ("provider", "model"))
        self.llm_cost = counter(
            "llm_cost_usd_total", "Estimated LLM cost in US dollars (from llms.*.pricing)", llm
        )
        self.tool_calls = counter("tool_calls_total", "Tool calls", ("agent", "tool", "status"))
        self.tool_duration = histogram(
            "tool_call_duration_seconds", "Tool call duration", ("agent", "tool"), TOOL_BUCKETS
        )
        self.auth_failures = counter(
            "auth_failures_total", "Requests refused for a missing or invalid API key", ("reason",)
        )
        self.errors = counter(
            "errors_total", "Errors by component and type", ("component", "error_type")
        )
        # A gauge rather than an Info metric: Info does not work in multiprocess mode.
        gauge("build_info", "hector-py build", ("version", "python"), mode="max").labels(
            __version__, platform.python_version()
        ).set(1)
        if not multiprocess_dir:  # per-process figures; meaningless summed over workers
            ProcessCollector(registry=source)
            PlatformCollector(registry=source)

    def render(self, accept: str) -> tuple[bytes, str]:
        """The exposition for a scrape: OpenMetrics when asked for, else Prometheus text."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
