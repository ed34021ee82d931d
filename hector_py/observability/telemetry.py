"""``Telemetry``: one object per app; each scope is one call, three signals.

A scope opens the span (GenAI semantic-convention names and attributes), observes the
duration histogram (with a ``trace_id`` exemplar when exported), counts the outcome and
``errors_total``, and its span makes every log line inside carry ``trace_id``/``span_id``.
Product code never touches prometheus_client or the OpenTelemetry API directly. With
metrics and tracing off the scopes are no-ops that cost next to nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Tracer

from hector_py import __version__
from hector_py.config.model import ObservabilityConfig, Pricing
from hector_py.observability import MULTIPROC_ENV
from hector_py.observability.console import CONSOLE_ROUTES
from hector_py.observability.counters import Counters
from hector_py.observability.exporters import disabled_reason
from hector_py.observability.genai import (
    chat_attributes,
    finish_span,
    record_llm_metrics,
    request_attributes,
    server_attributes,
)
from hector_py.observability.light import LightTracer
from hector_py.observability.metrics import Metrics, http_method_label
from hector_py.observability.otlp_metrics import otlp_metrics
from hector_py.observability.redact import Redactor
from hector_py.observability.scopes import (
    CANCELED,
    CAPTURE_ENV,
    ERROR,
    SUCCESS,
    Capture,
    Current,
    GuardrailScope,
    HttpScope,
    LLMScope,
    RunScope,
    ToolScope,
    TriggerScope,
    failure_type,
    mark_error,
    mark_failed_run,
    observe,
    outcome,
)
from hector_py.observability.tracing import (
    Tracing,
    build_tracing,
    in_unsampled_trace,
    inject_traceparent,
    links_to,
)

log = logging.getLogger("hector.telemetry")
NO_SPAN: AbstractContextManager[None] = nullcontext()
"""The scope of a span not made (tracing off, or inside an unsampled trace)."""

__all__ = [
    "Capture",
    "GuardrailScope",
    "HttpScope",
    "LLMScope",
    "RunScope",
    "Telemetry",
    "ToolScope",
    "TriggerScope",
]


class Telemetry(Counters):
    """Metrics and tracing for one app, built once from ``observability:``."""

    def __init__(
        self,
        config: ObservabilityConfig,
        redactor: Redactor | None = None,
        pricing: Mapping[tuple[str, str], Pricing] | None = None,
        environ: Mapping[str, str] | None = None,
        tenants: Iterable[str] = (),
    ) -> None:
        """``tenants``: the configured ones, which label usage; any other is ``other``."""
        environ = os.environ if environ is None else environ
        self.tenants = frozenset(tenants)
        self.config = config
        self.pricing = dict(pricing or {})  # (provider, model) -> prices
        self.redact = redactor or Redactor()
        self.metrics: Metrics | None = None
        if config.metrics.enabled:
            self.metrics = Metrics(config.metrics, environ.get(MULTIPROC_ENV))
        # Probes, scrapes and console polls are counted, not traced: they drown real traces.
        self._untraced_routes = frozenset(
            {"/health", "/health/live", "/health/ready", config.metrics.endpoint, *CONSOLE_ROUTES}
        )
        self.tracing: Tracing | None = None
        self.tracer: Tracer | LightTracer | None = None
        self.capture: Capture | None = None
        tracing = config.tracing
        self.otlp_metrics = otlp_metrics(config, environ)
        off = disabled_reason(tracing, environ) if tracing.enabled else None
        if off is not None:
            log.info("tracing off: %s", off)
        elif tracing.enabled:
            self.tracing = build_tracing(tracing, environ)
            self.tracer = self.tracing.provider.get_tracer("hector_py", __version__)
            if self.tracing.keeper is not None:  # light spans, made SDK spans if kept
                self.tracer = LightTracer(self.tracing.keeper)
                self.tracing.keeper.on_decision = self.trace_decision
                self.tracing.keeper.cost = self.cost
            if tracing.capture_payloads or environ.get(CAPTURE_ENV, "").lower() == "true":
                self.capture = Capture(tracing.payload_max_chars, self.redact)

    # --- spans -------------------------------------------------------------------------

    def _span(
        self,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        context: Any = None,
        *,
        record: bool = True,
        links: Sequence[Link] = (),
    ) -> AbstractContextManager[Span | None]:
        tracer = self.tracer
        if tracer is None or not record:
            return NO_SPAN
        if type(tracer) is LightTracer:  # it says itself when there is no span to make
            span = tracer.start_span(name, context, kind, attributes, links)
        elif context is None and in_unsampled_trace():
            return NO_SPAN
        else:  # the scopes mark errors themselves (``Current``), redacted
            off = {"record_exception": False, "set_status_on_exception": False}
            span = tracer.start_span(name, context, kind, attributes, links, **off)
        return NO_SPAN if span is None else Current(span, self.redact)

    # --- scopes ------------------------------------------------------------------------

    @contextmanager
    def http_request(
        self,
        method: str,
        route: str,
        path: str,
        headers: Mapping[str, str],
        *,
        scheme: str = "http",
        client: str | None = None,
    ) -> Iterator[HttpScope]:
        """One HTTP request: server span (parent from ``traceparent``), metrics by route."""
        scope = HttpScope()
        metrics, method_label = self.metrics, http_method_label(method)
        if metrics is None and self.tracer is None:
            yield scope
            return
        traced = self.tracer is not None and route not in self._untraced_routes
        parent = propagate.extract(headers) if traced else None
        attributes: dict[str, Any] = {
            "http.request.method": method_label,
            "http.route": route,
            "url.path": path,
        }
        if traced:
            attributes.update(server_attributes(headers, scheme, client))
        started = time.perf_counter()
        if metrics is not None:
            metrics.active_requests.inc()
        name = f"{method_label} {route}"
        with self._span(name, SpanKind.SERVER, attributes, parent, record=traced) as span:
            try:
                yield scope
            finally:
                if span is not None:
                    span.set_attribute("http.response.status_code", scope.code)
                    if scope.code >= 500:
                        mark_error(span, str(scope.code))
                if metrics is not None:
                    metrics.active_requests.dec()
                    status = ERROR if scope.code >= 500 else SUCCESS
                    metrics.requests.labels(method_label, route, str(scope.code), status).inc()
                    duration = metrics.request_duration.labels(method_label, route)
                    observe(duration, time.perf_counter() - started, span)

    @contextmanager
    def agent_run(
        self,
        agent: str,
        session_id: str | None,
        provider: str,
        model: str,
        resumed_from: str | None = None,
    ) -> Iterator[RunScope]:
        """One agent run: ``invoke_agent {agent}`` span (linked to the paused run it resumes,
        ``RunScope.span_ids``), run metrics."""
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        if session_id:
            attributes["gen_ai.conversation.id"] = session_id
        metrics = self.metrics
        started = time.perf_counter()
        if metrics is not None:
            metrics.active_agent_runs.labels(agent).inc()
        request = trace.get_current_span()  # the protocol request's server span, if any
        links = links_to(resumed_from)
        with self._span(
            f"invoke_agent {agent}", SpanKind.INTERNAL, attributes, links=links
        ) as span:
            scope, raised = RunScope(span), False
            try:
                yield scope
            except BaseException as exc:
                scope.error_type, raised = failure_type(exc), True
                raise
            finally:
                if span is not None and scope.error_type not in (None, CANCELED):
                    mark_failed_run(span, request, str(scope.error_type), raised)
                if metrics is not None:
                    metrics.active_agent_runs.labels(agent).dec()
                    duration = metrics.agent_request_duration.labels(agent)
                    observe(duration, time.perf_counter() - started, span)
                    metrics.agent_invocations.labels(agent, outcome(scope.error_type)).inc()
                self._count_error("agent", scope.error_type)

    @contextmanager
    def llm_call(
        self,
        agent: str,
        provider: str,
        model: str,
        *,
        stream: bool,
        server: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Iterator[LLMScope]:
        """One LLM call: ``chat {model}`` client span; tokens count even if it fails."""
        attributes = chat_attributes(provider, model, stream, server)
        if self.tracer is not None:
            attributes.update(request_attributes(temperature, max_tokens))
        with self._span(f"chat {model}", SpanKind.CLIENT, attributes) as span:
            scope = LLMScope(span, self.capture)
            try:
                yield scope
            except BaseException as exc:
                scope.error_type = failure_type(exc)
                raise
            finally:
                self._record_llm(agent, provider, model, scope)

    def _record_llm(self, agent: str, provider: str, model: str, scope: LLMScope) -> None:
        finish_span(scope, provider, model)
        if self.otlp_metrics is not None:
            elapsed = time.perf_counter() - scope.started
            self.otlp_metrics.record(provider, model, scope, elapsed)
        if self.metrics is not None:
            price = self.pricing.get((provider, model))
            record_llm_metrics(self.metrics, (agent, provider, model), scope, price)
        self._count_error("llm", scope.error_type)

    @contextmanager
    def tool_call(
        self,
        agent: str,
        tool: str,
        call_id: str,
        tool_type: str | None = None,
        mcp_server: str | None = None,
    ) -> Iterator[ToolScope]:
        """One tool call: ``execute_tool {tool}`` span; set ``error_type`` on failure.
        ``tool_type`` is the tool's kind; ``mcp_server`` the MCP toolset's key."""
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": call_id,
            **({"gen_ai.tool.type": tool_type} if tool_type else {}),
            **({"mcp.server.name": mcp_server} if mcp_server else {}),
        }
        metrics = self.metrics
        started = time.perf_counter()
        with self._span(f"execute_tool {tool}", SpanKind.INTERNAL, attributes) as span:
            scope = ToolScope(span, self.capture)
            try:
                yield scope
            except BaseException as exc:
                scope.error_type = failure_type(exc)
                raise
            finally:
                if span is not None and scope.error_type not in (None, CANCELED):
                    mark_error(span, str(scope.error_type))
                if metrics is not None:
                    duration = metrics.tool_duration.labels(agent, tool)
                    observe(duration, time.perf_counter() - started, span)
                    metrics.tool_calls.labels(agent, tool, outcome(scope.error_type)).inc()
                self._count_error("tool", scope.error_type)

    @contextmanager
    def guardrail_check(self, agent: str, guardrail: str, stage: str) -> Iterator[GuardrailScope]:
        """One guardrail's checks at ``stage`` (input|output|tool): ``guardrail.check`` span;
        each violation counts in ``guardrail_violations_total``."""
        attributes = {
            "gen_ai.agent.name": agent,
            "guardrail.name": guardrail,
            "guardrail.stage": stage,
        }
        metrics = self.metrics
        count = (
            None
            if metrics is None
            else lambda action: metrics.guardrail_violations.labels(
                agent, guardrail, stage, action
            ).inc()
        )
        with self._span("guardrail.check", SpanKind.INTERNAL, attributes) as span:
            scope = GuardrailScope(span, count)
            yield scope
            if span is not None:
                span.set_attribute("guardrail.violations", scope.violations)

    @contextmanager
    def trigger(self, agent: str, kind: str, *, root: bool = False) -> Iterator[TriggerScope]:
        """One schedule or webhook firing: ``trigger {kind} {agent}`` span (a new trace when
        ``root``), counted in ``scheduler_triggers_total`` with the scope's ``status``."""
        attributes = {"gen_ai.agent.name": agent, "hector.trigger.type": kind}
        context = Context() if root else None
        with self._span(f"trigger {kind} {agent}", SpanKind.INTERNAL, attributes, context) as span:
            scope = TriggerScope(span)
            try:
                yield scope
            finally:
                if span is not None:
                    span.set_attribute("hector.trigger.status", scope.status)
                if self.metrics is not None:
                    self.metrics.scheduler_triggers.labels(agent, kind, scope.status).inc()

    @contextmanager
    def store_op(self, operation: str, table: str, system: str) -> Iterator[None]:
        """One store operation as a ``db`` client span."""
        attributes = {
            "db.system.name": system,
            "db.operation.name": operation,
            "db.collection.name": table,
        }
        with self._span(f"{operation} {table}", SpanKind.CLIENT, attributes):
            yield

    # --- plumbing ----------------------------------------------------------------------

    def client_middlewares(self) -> tuple[aiohttp.ClientMiddlewareType, ...]:
        """Client middleware that puts ``traceparent`` on every outgoing request (tracing
        on). A middleware, not a ``TraceConfig``: that would fire a dozen signals per
        request."""
        return () if self.tracer is None else (inject_traceparent,)

    def inject_headers(self) -> Callable[[dict[str, str]], None] | None:
        """What model clients call to put ``traceparent`` on each attempt themselves
        (tracing on), instead of the session's middleware: a call, not a chain of
        coroutines per request."""
        return None if self.tracer is None else propagate.inject

    def health(self) -> dict[str, dict[str, Any]]:
        """``/health`` components: tracing is ``degraded`` (never down) while exports fail."""
        return {} if self.tracing is None else {"tracing": self.tracing.health()}

    async def scrape(self, request: web.Request) -> web.Response:
        """The ``/metrics`` handler."""
        assert self.metrics is not None
        body, content_type = await self.metrics.scrape(request.headers.get("Accept", ""))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def shutdown(self, timeout: float) -> None:
        """Flush spans and metrics, waiting at most ``timeout`` seconds for each (a dead
        collector never hangs)."""
        if self.otlp_metrics is not None:
            await self.otlp_metrics.shutdown(timeout)
        if self.tracing is not None:
            await self.tracing.shutdown(timeout)
