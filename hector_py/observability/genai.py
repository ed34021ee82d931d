"""GenAI semantic conventions for one model call: the chat span's attributes and the
``hector_llm_*`` metrics it records when it ends."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import suppress
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from hector_py.config.model import Pricing
from hector_py.observability.light import note_usage
from hector_py.observability.metrics import Metrics
from hector_py.observability.scopes import LLMScope, observe, outcome


def chat_attributes(provider: str, model: str, stream: bool, server: str | None) -> dict[str, Any]:
    """The ``chat {model}`` span's attributes known before the call."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.request.stream": stream,
    }
    if server:
        _, _, host_port = server.partition("://")
        host, _, port = host_port.split("/", 1)[0].rpartition(":")
        attributes["server.address"] = host or port
        if host and port.isdigit():
            attributes["server.port"] = int(port)
    return attributes


def server_attributes(
    headers: Mapping[str, str], scheme: str, client: str | None
) -> dict[str, Any]:
    """An HTTP server span's ``url.scheme``, ``server.address``/``port`` (from ``Host``),
    ``client.address`` and ``user_agent.original``."""
    attributes: dict[str, Any] = {"url.scheme": scheme}
    host = headers.get("Host")
    if host:
        attributes.update(_host_attributes(host))
    if client:
        attributes["client.address"] = client
    agent = headers.get("User-Agent")
    if agent:
        attributes["user_agent.original"] = agent
    if headers.get("X-Hector-Trace", "").strip().lower() == "keep":  # the flight recorder
        attributes["hector.trace.keep"] = True
    return attributes


@lru_cache(maxsize=256)
def _host_attributes(host: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of a ``Host`` header (few distinct ones)."""
    attributes: dict[str, Any] = {}
    parts = urlsplit(f"//{host}")
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    with suppress(ValueError):
        if parts.port is not None:
            attributes["server.port"] = parts.port
    return attributes


def request_attributes(temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
    """The chat span's configured request parameters."""
    attributes: dict[str, Any] = {}
    if temperature is not None:
        attributes["gen_ai.request.temperature"] = temperature
    if max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    return attributes


def finish_span(scope: LLMScope, provider: str, model: str) -> None:
    """Set what the answer told on the chat span (one call: the SDK locks per call). A
    failed call has no response model or id, and token counts only if some were used."""
    span = scope.span
    if span is None:
        return
    attributes: dict[str, Any] = {}
    if scope.error_type is None or scope.prompt_tokens or scope.completion_tokens:
        attributes["gen_ai.usage.input_tokens"] = scope.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = scope.completion_tokens
        note_usage(span, provider, model, scope.prompt_tokens, scope.completion_tokens)
    if scope.cached_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = scope.cached_tokens
    if scope.reasoning_tokens:
        attributes["gen_ai.usage.reasoning.output_tokens"] = scope.reasoning_tokens
    if scope.error_type is None:
        if scope.response_model:
            attributes["gen_ai.response.model"] = scope.response_model
        if scope.response_id:
            attributes["gen_ai.response.id"] = scope.response_id
    if scope.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = scope.finish_reasons
    if scope.first_token_at is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = scope.first_token_at - scope.started
    span.set_attributes(attributes)


def record_llm_metrics(
    metrics: Metrics,
    labels: tuple[str, str, str],
    scope: LLMScope,
    price: Pricing | None,
) -> None:
    """Duration, time to first token, tokens, cost and outcome of one call, as the
    ``hector_llm_*`` metrics and the OTel GenAI client metrics (durations with the call's
    trace as exemplar when it is exported)."""
    elapsed, span = time.perf_counter() - scope.started, scope.span
    agent, provider, model = labels  # label values spelt out: no tuples built per call
    error, response = scope.error_type, scope.response_model or ""
    prompt, completion = scope.prompt_tokens, scope.completion_tokens
    observe(metrics.llm_duration.labels(agent, provider, model), elapsed, span)
    genai_duration = metrics.genai_duration.labels("chat", provider, model, response, error or "")
    observe(genai_duration, elapsed, span)
    if error is None or prompt or completion:
        metrics.genai_tokens.labels("chat", provider, model, response, "input").observe(prompt)
        metrics.genai_tokens.labels("chat", provider, model, response, "output").observe(completion)
    if scope.first_token_at is not None:
        ttft = scope.first_token_at - scope.started
        observe(metrics.llm_ttft.labels(agent, provider, model), ttft, span)
    if prompt:
        metrics.llm_tokens.labels(agent, provider, model, "prompt").inc(prompt)
    if completion:
        metrics.llm_tokens.labels(agent, provider, model, "completion").inc(completion)
    if scope.cached_tokens:
        metrics.llm_token_details.labels(agent, provider, model, "cached").inc(scope.cached_tokens)
    if scope.reasoning_tokens:
        details = metrics.llm_token_details.labels(agent, provider, model, "reasoning")
        details.inc(scope.reasoning_tokens)
    if price is not None and (prompt or completion):
        metrics.llm_cost.labels(agent, provider, model).inc(price.cost(prompt, completion))
    metrics.llm_requests.labels(agent, provider, model, outcome(error)).inc()
