"""The scope objects ``Telemetry`` yields, payload capture, and the span error helpers."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from hector_py.observability.light import LightSpan
from hector_py.observability.payloads import (
    clean_value,
    dumps,
    input_attributes,
    output_attributes,
)
from hector_py.observability.redact import Redactor

SUCCESS, ERROR, CANCELED = "success", "error", "canceled"
STOPPED = (asyncio.CancelledError, GeneratorExit)
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def failure_type(exc: BaseException) -> str:
    """The low-cardinality ``error.type`` of an exception that ended a scope: ``canceled``
    when stopped, the error's own ``error_type`` (an LLM call's HTTP status, ``timeout``,
    ``connection_error``), ``timeout``, else the exception's class name."""
    if isinstance(exc, STOPPED):
        return CANCELED
    error_type = getattr(exc, "error_type", None)
    if isinstance(error_type, str):
        return error_type
    return "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__


def outcome(error_type: str | None) -> str:
    if error_type is None:
        return SUCCESS
    return CANCELED if error_type == CANCELED else ERROR


class Current:
    """``with``: ``span`` is the current span inside; an exception (not a stop) marks it
    failed; it ends on the way out. What ``start_as_current_span`` does, without its two
    generator context managers (measurable at four spans per request)."""

    __slots__ = ("_redact", "_token", "span")

    def __init__(self, span: Span, redact: Redactor) -> None:
        self.span, self._redact = span, redact

    def __enter__(self) -> Span:
        self._token = otel_context.attach(set_span_in_context(self.span))
        return self.span

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        try:
            if exc is not None and not isinstance(exc, STOPPED):
                mark_error(self.span, failure_type(exc), exc, self._redact)
        finally:
            otel_context.detach(self._token)
            self.span.end()


@dataclass
class HttpScope:
    """One HTTP request; the middleware sets ``code`` before the scope ends."""

    code: int = 500


@dataclass
class LLMScope:
    """One LLM call: mark the first token, report usage and finish reasons, or fail."""

    span: Span | None
    capture: Capture | None
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    finish_reasons: tuple[str, ...] = ()
    response_model: str | None = None
    response_id: str | None = None
    error_type: str | None = None

    def cache(self, hit: bool) -> None:
        """Whether the response cache answered (``gen_ai.cache.hit``)."""
        if self.span is not None:
            self.span.set_attribute("gen_ai.cache.hit", hit)

    def first_token(self) -> None:
        """Call when the first chunk of a stream arrives (later calls are ignored)."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def answer(self, model: str | None, id: str | None, finish_reason: str | None) -> None:
        """What the provider's answer names: its model, id and finish reason."""
        self.response_model, self.response_id = model, id
        if finish_reason:
            self.finish_reasons = (finish_reason,)

    def usage(self, prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> None:
        """The call's token usage (streams report it at the end, or when cut); ``cached``
        prompt and ``reasoning`` completion tokens where the provider reports them."""
        self.prompt_tokens, self.completion_tokens = prompt, completion
        self.cached_tokens, self.reasoning_tokens = cached, reasoning

    def prompt(self, messages: Sequence[Any]) -> None:
        """Record the system instructions and input messages when payload capture is on."""
        if self.capture and self.span:
            self.span.set_attributes(input_attributes(messages, self.capture.clean))

    def completion(self, text: str, calls: Sequence[Any] = ()) -> None:
        """Record the output message (text and tool calls) when payload capture is on."""
        if self.capture and self.span:
            finish = (*self.finish_reasons, "tool_calls" if calls else "stop")[0]
            self.span.set_attributes(output_attributes(text, calls, finish, self.capture.clean))


@dataclass
class ToolScope:
    """One tool call; set ``error_type`` when it fails."""

    span: Span | None
    capture: Capture | None
    error_type: str | None = None

    def payload(self, arguments: Mapping[str, Any], result: str) -> None:
        """Record the tool's arguments (JSON) and result when payload capture is on."""
        if self.capture and self.span:
            clean = self.capture.clean
            self.span.set_attributes(
                {
                    "gen_ai.tool.call.arguments": dumps(clean_value(arguments, clean)),
                    "gen_ai.tool.call.result": clean(result),
                }
            )


@dataclass
class RunScope:
    """One agent run; set ``error_type`` for a failure that did not raise."""

    span: Span | None
    error_type: str | None = None

    def span_ids(self) -> str | None:
        """``trace_id-span_id`` (hex) of the run's span, for a later run to link to."""
        context = self.span.get_span_context() if self.span is not None else None
        if context is None or not context.is_valid:
            return None
        return f"{context.trace_id:032x}-{context.span_id:016x}"


@dataclass
class GuardrailScope:
    """One guardrail check; report each violation with the action taken."""

    span: Span | None
    count: Callable[[str], None] | None
    violations: int = 0

    def violation(self, check: str, action: str) -> None:
        """Count a violation of ``check`` handled by ``action`` (block|redact|warn)."""
        self.violations += 1
        if self.count is not None:
            self.count(action)
        if self.span is not None:
            self.span.add_event(
                "guardrail.violation", {"guardrail.check": check, "guardrail.action": action}
            )


@dataclass
class TriggerScope:
    """One trigger firing; set ``status`` (``success``, ``error`` or ``rejected``)."""

    span: Span | None
    status: str = ERROR


@dataclass(frozen=True)
class Capture:
    """Payload capture: redaction, then truncation."""

    max_chars: int
    redact: Redactor

    def clean(self, text: str) -> str:
        """``text`` without secrets or the configured PII, cut to ``max_chars``."""
        text = self.redact(text)
        return text if len(text) <= self.max_chars else text[: self.max_chars] + "…[truncated]"


def mark_error(
    span: Span, error_type: str, exc: BaseException | None = None, redact: Redactor | None = None
) -> None:
    """Status ERROR, ``error.type`` and (for an exception) an exception event, redacted."""
    clean = redact or Redactor()
    span.set_status(Status(StatusCode.ERROR, clean(str(exc)) if exc else error_type))
    span.set_attribute("error.type", error_type)
    if exc is not None:
        stack = "".join(traceback.format_exception(exc))
        span.record_exception(
            exc,
            attributes={"exception.message": clean(str(exc)), "exception.stacktrace": clean(stack)},
        )


def mark_failed_run(span: Span, request: Span, error_type: str, raised: bool) -> None:
    """A failed run is an error on its span and on the server span of the request that
    ran it, although a protocol answers a failed task with HTTP 200."""
    if not raised:  # a raised error is marked by ``_span``, with its exception event
        mark_error(span, error_type)
    if getattr(request, "kind", None) is SpanKind.SERVER and request.is_recording():
        mark_error(request, error_type)


def observe(histogram: Any, value: float, span: Span | None) -> None:
    """Observe ``value`` in a histogram series; its exemplar names ``span``'s trace when
    that trace is exported: at once when it is head-sampled, and under the flight recorder
    (a light span) only once the recorder keeps the trace, never a dropped one."""
    if span is None:  # before the isinstance check: an ABC's costs more than the rest
        histogram.observe(value)
        return
    if isinstance(span, LightSpan):
        histogram.observe(value)
        span.held.append((histogram, value))
        return
    exemplar = None
    context = span.get_span_context()
    if context.trace_flags.sampled:
        exemplar = {"trace_id": format(context.trace_id, "032x")}
    histogram.observe(value, exemplar)
