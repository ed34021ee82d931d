"""``Telemetry``: one object per app; each scope records duration, outcome and errors.

Product code calls these scopes and never prometheus_client directly. With metrics off
the scopes are no-ops that cost next to nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import disable_created_metrics

from hector_py.config.model import ObservabilityConfig
from hector_py.observability.metrics import Metrics, http_method_label

SUCCESS, ERROR, CANCELED = "success", "error", "canceled"
_STOPPED = (asyncio.CancelledError, GeneratorExit)


def _failure(exc: BaseException) -> str:
    """The ``error_type`` of an exception that ended a scope (``canceled`` when stopped)."""
    return CANCELED if isinstance(exc, _STOPPED) else type(exc).__name__


def _status(error_type: str | None) -> str:
    if error_type is None:
        return SUCCESS
    return CANCELED if error_type == CANCELED else ERROR


@dataclass
class HttpScope:
    """One HTTP request; the middleware sets ``code`` before the scope ends."""

    code: int = 500


@dataclass
class LLMScope:
    """One LLM call: mark the first token, report usage, or fail."""

    started: float
    first_token_at: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_type: str | None = None

    def first_token(self) -> None:
        """Call when the first chunk of a stream arrives (later calls are ignored)."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def usage(self, prompt: int, completion: int) -> None:
        """The call's token usage (streams report it at the end, or when cut)."""
        self.prompt_tokens, self.completion_tokens = prompt, completion


@dataclass
class ToolScope:
    """One tool call; set ``error_type`` when it fails."""

    error_type: str | None = None


@dataclass
class RunScope:
    """One agent run; set ``error_type`` for a failure that did not raise."""

    error_type: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


class Telemetry:
    """Metrics for one app, built once from ``observability:``."""

    def __init__(self, config: ObservabilityConfig) -> None:
        self.config = config
        self.metrics: Metrics | None = None
        if config.metrics.enabled:
            disable_created_metrics()  # type: ignore[no-untyped-call]
            self.metrics = Metrics(config.metrics)

    @contextmanager
    def http_request(self, method: str, route: str) -> Iterator[HttpScope]:
        """Time one HTTP request and count it by route pattern and code."""
        scope = HttpScope()
        metrics = self.metrics
        if metrics is None:
            yield scope
            return
        method = http_method_label(method)
        started = time.perf_counter()
        metrics.active_requests.inc()
        try:
            yield scope
        finally:
            metrics.active_requests.dec()
            status = ERROR if scope.code >= 500 else SUCCESS
            metrics.requests.labels(method, route, str(scope.code), status).inc()
            metrics.request_duration.labels(method, route).observe(time.perf_counter() - started)

    def agent_request(self, agent: str, ok: bool) -> None:
        """Count one protocol request addressed to ``agent``."""
        if self.metrics is not None:
            self.metrics.agent_requests.labels(agent, SUCCESS if ok else ERROR).inc()

    @contextmanager
    def agent_run(self, agent: str) -> Iterator[RunScope]:
        """Time one agent run; an exception (other than cancellation) counts as an error."""
        scope = RunScope()
        metrics = self.metrics
        if metrics is None:
            yield scope
            return
        started = time.perf_counter()
        metrics.active_agent_runs.labels(agent).inc()
        try:
            yield scope
        except BaseException as exc:
            scope.error_type = _failure(exc)
            raise
        finally:
            metrics.active_agent_runs.labels(agent).dec()
            metrics.agent_request_duration.labels(agent).observe(time.perf_counter() - started)
            metrics.agent_invocations.labels(agent, _status(scope.error_type)).inc()
            self._count_error("agent", scope.error_type)

    @contextmanager
    def llm_call(self, agent: str, provider: str, model: str) -> Iterator[LLMScope]:
        """Time one LLM call; tokens are counted even when it fails part-way."""
        scope = LLMScope(started=time.perf_counter())
        try:
            yield scope
        except BaseException as exc:
            scope.error_type = _failure(exc)
            raise
        finally:
            self._record_llm(agent, provider, model, scope)

    def _record_llm(self, agent: str, provider: str, model: str, scope: LLMScope) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        labels = (agent, provider, model)
        metrics.llm_duration.labels(*labels).observe(time.perf_counter() - scope.started)
        if scope.first_token_at is not None:
            metrics.llm_ttft.labels(*labels).observe(scope.first_token_at - scope.started)
        if scope.prompt_tokens:
            metrics.llm_tokens.labels(*labels, "prompt").inc(scope.prompt_tokens)
        if scope.completion_tokens:
            metrics.llm_tokens.labels(*labels, "completion").inc(scope.completion_tokens)
        metrics.llm_requests.labels(*labels, _status(scope.error_type)).inc()
        self._count_error("llm", scope.error_type)

    def llm_retry(self, provider: str, model: str) -> None:
        """Count one retried LLM call."""
        if self.metrics is not None:
            self.metrics.llm_retries.labels(provider, model).inc()

    @contextmanager
    def tool_call(self, agent: str, tool: str) -> Iterator[ToolScope]:
        """Time one tool call; set ``error_type`` on the scope when it fails."""
        scope = ToolScope()
        metrics = self.metrics
        if metrics is None:
            yield scope
            return
        started = time.perf_counter()
        try:
            yield scope
        except BaseException as exc:
            scope.error_type = _failure(exc)
            raise
        finally:
            metrics.tool_duration.labels(agent, tool).observe(time.perf_counter() - started)
            metrics.tool_calls.labels(agent, tool, _status(scope.error_type)).inc()
            self._count_error("tool", scope.error_type)

    def error(self, component: str, error_type: str) -> None:
        """Count one error of ``component``."""
        if self.metrics is not None:
            self.metrics.errors.labels(component, error_type).inc()

    def _count_error(self, component: str, error_type: str | None) -> None:
        if error_type is not None and error_type != CANCELED:
            self.error(component, error_type)

    async def scrape(self, request: web.Request) -> web.Response:
        """The ``/metrics`` handler."""
        assert self.metrics is not None
        body, content_type = self.metrics.render(request.headers.get("Accept", ""))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response
