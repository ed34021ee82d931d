"""Prometheus metrics: every metric's name, help, labels and buckets, in one place.

Each app gets its own registry (no globals). ``namespace``/``subsystem`` prefix every
name; ``const_labels`` are added to every series by the exposition (prometheus_client has
no const labels of its own), which writes what prometheus_client's encoders would, faster.
"""

from __future__ import annotations

import asyncio
import platform
import re
from collections.abc import Iterable, Mapping
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

from hector_py import __version__
from hector_py.config.loader import ConfigError, Problem
from hector_py.config.model import MetricsConfig
from hector_py.observability.buckets import (
    AGENT_BUCKETS,
    HTTP_BUCKETS,
    LLM_BUCKETS,
    RESULT_BUCKETS,
    SEARCH_BUCKETS,
    TOKEN_BUCKETS,
    TOOL_BUCKETS,
    TTFT_BUCKETS,
)
from hector_py.observability.exposition import (
    CachedCounter,
    CachedGauge,
    CachedHistogram,
    Exposition,
    content_format,
)

GENAI_CALL = (
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def http_method_label(method: str) -> str:
    """The method as a bounded label value (anything unusual becomes ``OTHER``)."""
    return method if method in HTTP_METHODS else "OTHER"


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def const_label_problems(const_labels: Mapping[str, str], used: Iterable[str]) -> list[Problem]:
    """Why ``const_labels`` cannot be added to every series: a name that is not a label
    name, is reserved (``le``, ``quantile``, ``__*``; any of these breaks the whole scrape),
    or is already a label of some metric in ``used`` (it would vanish from those series)."""
    taken = set(used)
    problems = []
    for name in const_labels:
        if not _LABEL_NAME.match(name):
            why = "not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        elif name.startswith("__") or name in ("le", "quantile"):
            why = "a reserved Prometheus label name"
        elif name in taken:
            why = "already a label of hector's metrics"
        else:
            continue
        problems.append(Problem(f"observability.metrics.const_labels.{name}", why, "config"))
    return problems


class Metrics:
    """The hector metric set for one app."""

    def __init__(self, config: MetricsConfig, multiprocess_dir: str | None = None) -> None:
        """``multiprocess_dir``: the shared directory of ``--workers`` mode, where every
        process writes its values and a scrape adds them up."""
        self.config = config
        # Exposition writes no ``_created`` series, so prometheus_client must not either.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self._expositions: dict[tuple[bool, str], Exposition] = {}
        self._pending: dict[Exposition, asyncio.Future[bytes]] = {}
        if multiprocess_dir:
            MultiProcessCollector(self.registry, multiprocess_dir)  # type: ignore[no-untyped-call]
        # In multiprocess mode values live in files; the metric objects need no registry.
        owner = None if multiprocess_dir else self.registry
        ns, sub = config.namespace, config.subsystem

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return CachedCounter(name, doc, labels, namespace=ns, subsystem=sub, registry=owner)

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            return CachedHistogram(
                name, doc, labels, namespace=ns, subsystem=sub, registry=owner, buckets=buckets
            )

        def gauge(
            name: str,
            doc: str,
            labels: tuple[str, ...],
            mode: Literal["livesum", "max", "mostrecent"] = "livesum",
        ) -> Gauge:
            return CachedGauge(
                name,
                doc,
                labels,
                namespace=ns,
                subsystem=sub,
                registry=owner,
                multiprocess_mode=mode,
            )

        llm = ("agent", "provider", "model")
        # The OTel GenAI client metrics in Prometheus form: their own names (no namespace).
        self.genai_tokens = CachedHistogram(
            "gen_ai_client_token_usage",
            "Tokens per model call by gen_ai_token_type (OTel gen_ai.client.token.usage)",
            (*GENAI_CALL, "gen_ai_token_type"),
            registry=owner,
            buckets=TOKEN_BUCKETS,
        )
        self.genai_duration = CachedHistogram(
            "gen_ai_client_operation_duration_seconds",
            "Model call duration (OTel gen_ai.client.operation.duration); error_type on failure",
            (*GENAI_CALL, "error_type"),
            registry=owner,
            buckets=LLM_BUCKETS,
        )
        self.requests = counter(
            "requests_total",
            "HTTP requests by route pattern and outcome",
            ("method", "route", "code", "status"),
        )
        self.request_duration = histogram(
            "request_duration_seconds", "HTTP request duration", ("method", "route"), HTTP_BUCKETS
        )
        self.active_requests = gauge("active_requests", "HTTP requests in progress", ())
        self.connections_refused = counter(
            "connections_refused_total",
            "Connections refused at a cap (server_limit|client_limit)",
            ("reason",),
        )
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
        self.llm_token_details = counter(
            "llm_token_details_total",
            "Parts of the counted tokens where the provider reports them: cached (prompt "
            "tokens read from its cache) and reasoning (completion tokens spent thinking)",
            (*llm, "type"),
        )
        self.tenant_tokens = counter(
            "tenant_tokens_total",
            "Tokens used by a tenant's runs, by type; tenants not configured are 'other'",
            ("tenant", "type"),
        )
        self.tenant_cost = counter(
            "tenant_cost_usd_total",
            "Estimated cost of a tenant's runs in US dollars (from llms.*.pricing); tenants"
            " not configured are 'other'",
            ("tenant",),
        )
        self.llm_circuit = gauge(
            "llm_circuit_state",
            "A model's circuit breaker: 0 ok, 1 degraded (failures, or a trial call), 2 open",
            ("provider", "model"),
            "max",  # the worst worker's
        )
        self.llm_retries = counter(
            "llm_retries_total",
            "LLM call retries by reason (HTTP status, timeout, connection_error)",
            ("provider", "model", "reason"),
        )
        self.llm_cost = counter(
            "llm_cost_usd_total", "Estimated LLM cost in US dollars (from llms.*.pricing)", llm
        )
        self.upstream_headroom = gauge(
            "llm_ratelimit_remaining",
            "What the provider's own rate-limit headers say is left (x-ratelimit-remaining-*,"
            " anthropic-ratelimit-*-remaining), by kind: requests or tokens",
            ("provider", "model", "kind"),
            "mostrecent",
        )
        self.traces_kept = counter(
            "traces_kept_total",
            "Traces the flight recorder kept, by reason: error, flagged, slow, costly, caller,"
            " sampled, rate",
            ("reason",),
        )
        self.traces_dropped = counter(
            "traces_dropped_total", "Traces the flight recorder dropped before export", ()
        )
        self.rate_limited = counter(
            "rate_limited_total",
            "Requests refused by a tenant's rate limit (rate_limits:), by the limit's kind",
            ("kind",),
        )
        self.cache_hits = counter(
            "llm_cache_hits_total",
            "LLM calls answered by the response cache",
            ("provider", "model"),
        )
        self.cache_misses = counter(
            "llm_cache_misses_total",
            "Cacheable LLM calls the response cache could not answer",
            ("provider", "model"),
        )
        self.approvals = counter(
            "tool_approvals_total",
            "Decisions on tool calls that need a person's approval",
            ("agent", "tool", "decision"),
        )
        self.delegations = counter(
            "agent_delegations_total",
            "Runs an agent delegated to another agent (agent:NAME tools)",
            ("agent", "target", "status"),
        )
        self.tool_calls = counter("tool_calls_total", "Tool calls", ("agent", "tool", "status"))
        self.tool_duration = histogram(
            "tool_call_duration_seconds", "Tool call duration", ("agent", "tool"), TOOL_BUCKETS
        )
        self.mcp_requests = counter(
            "mcp_requests_total",
            "Requests to MCP servers (server: the tools: key) by method and outcome",
            ("server", "method", "status"),
        )
        self.mcp_session_up = gauge(
            "mcp_session_up", "1 while the MCP server's session is up, else 0", ("server",), "max"
        )
        self.auth_failures = counter(
            "auth_failures_total", "Requests refused for a missing or invalid API key", ("reason",)
        )
        self.errors = counter(
            "errors_total", "Errors by component and type", ("component", "error_type")
        )
        self.guardrail_violations = counter(
            "guardrail_violations_total",
            "Guardrail violations by stage (input|output|tool) and action (block|redact|warn)",
            ("agent", "guardrail", "stage", "action"),
        )
        self.notifications = counter(
            "notifications_total",
            "Outbound notification deliveries (after retries) by event and outcome",
            ("agent", "event", "status"),
        )
        self.scheduler_triggers = counter(
            "scheduler_triggers_total",
            "Agent runs triggered by a schedule or a webhook, by outcome",
            ("agent", "type", "status"),
        )
        # Every worker reads the same stored usage: the value set last is the freshest.
        self.budget_remaining = gauge(
            "token_budget_remaining",
            "Tokens left in a tenant's budget for the current period (daily|monthly)",
            ("tenant", "period"),
            mode="mostrecent",
        )
        self.budget_limit = gauge(
            "token_budget_limit",
            "A tenant's configured token budget for the period (daily|monthly)",
            ("tenant", "period"),
            mode="max",
        )
        self.budget_used = counter(
            "token_budget_used_total",
            "Tokens charged to a tenant's budget, by period (daily|monthly)",
            ("tenant", "period"),
        )
        self.vectorstore_searches = counter(
            "vectorstore_searches_total", "Document store searches", ("store", "status")
        )
        self.vectorstore_search_duration = histogram(
            "vectorstore_search_duration_seconds",
            "Document store search duration",
            ("store",),
            SEARCH_BUCKETS,
        )
        self.vectorstore_search_results = histogram(
            "vectorstore_search_results",
            "Results per document store search",
            ("store",),
            RESULT_BUCKETS,
        )
        # Every worker indexes the same file: the count set last is the current one (a
        # stopped worker's larger count must not stick, as it would with max).
        self.knowledge_documents = gauge(
            "knowledge_documents", "Documents in a store's index", ("store",), mode="mostrecent"
        )
        self.knowledge_chunks = gauge(
            "knowledge_chunks", "Chunks in a store's index", ("store",), mode="mostrecent"
        )
        self.knowledge_index_errors = counter(
            "knowledge_index_errors_total",
            "Files a store skipped (unreadable, binary, encoding, too_large, parse)"
            " and failed refreshes (refresh)",
            ("store", "reason"),
        )
        self.embedding_tokens = counter(
            "embedding_tokens_total", "Tokens sent to a store's embedder", ("store", "model")
        )
        self.embedding_cost = counter(
            "embedding_cost_usd_total",
            "Estimated embedding cost in US dollars (from embedder.cost_per_million_tokens)",
            ("store", "model"),
        )
        # A gauge rather than an Info metric: Info does not work in multiprocess mode.
        gauge("build_info", "hector-py build", ("version", "python"), mode="max").labels(
            __version__, platform.python_version()
        ).set(1)
        if not multiprocess_dir:  # per-process figures; meaningless summed over workers
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        used = {"version", "python"}  # build_info's
        for metric in vars(self).values():
            if isinstance(metric, MetricWrapperBase):
                used.update(metric._labelnames)
        problems = const_label_problems(config.const_labels, used)
        if problems:
            raise ConfigError(problems)

    def _exposition(self, accept: str) -> tuple[Exposition, str]:
        """The exposition for a scrape's ``Accept`` header (prometheus_client's choice: the
        Prometheus text format unless OpenMetrics is asked for), and its content type."""
        encoder, content_type = choose_encoder(accept)
        key = content_format(content_type)
        exposition = self._expositions.get(key)
        if exposition is None:
            exposition = Exposition(encoder, key[0], self.config.const_labels)
            self._expositions[key] = exposition
        return exposition, content_type

    def _render(self, exposition: Exposition) -> bytes:
        """Every collector of the registry, in ``exposition``'s format."""
        with self.registry._lock:
            collectors = list(self.registry._collector_to_names)
        return exposition.render(collectors)

    async def scrape(self, accept: str) -> tuple[bytes, str]:
        """The body and content type for a scrape, rendered on a worker thread (not on the
        event loop); scrapes that arrive during a render of their format share it."""
        exposition, content_type = self._exposition(accept)
        pending = self._pending.get(exposition)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(None, self._render, exposition)
            self._pending[exposition] = pending
            pending.add_done_callback(lambda _: self._pending.pop(exposition))
        return await asyncio.shield(pending), content_type
