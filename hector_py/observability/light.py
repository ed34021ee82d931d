"""Light spans for the flight recorder: while a trace runs its spans are plain objects
(the OpenTelemetry API's ``Span``, so context, ``traceparent``, log correlation and every
scope work unchanged); only a trace the recorder keeps becomes SDK ``ReadableSpan``s,
handed to the SDK's own batch processor and exporter. A dropped trace never touches the
SDK: no span objects with locks and limits, no processors, no encoding.

What a kept trace exports is what the SDK would have exported: the same names, ids,
parents, kinds, attributes (``None`` values dropped, as the SDK does), events, links,
status and times, with the tracer's resource and instrumentation scope."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from random import getrandbits
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
UNSET = Status(StatusCode.UNSET)
"""A new span's status (immutable, so shared)."""


class Family(list["LightSpan"]):
    """The ended spans of one local trace, shared by its light spans, and what the
    recorder's decision needs of them, noted as they go: whether one failed, and the
    model calls' usage (provider, model, prompt and completion tokens)."""

    __slots__ = ("calls", "failed", "logs", "open")

    def __init__(self) -> None:
        super().__init__()
        self.failed = False
        self.calls: list[tuple[str, str, int, int]] = []
        self.logs: list[Any] = []
        """The run console's log records of the trace, until the recorder has decided."""
        self.open = True
        """Until the recorder has decided: spans that end later are not held."""

    def hold(self, record: Any, most: int) -> None:
        """Hold a log record of the trace (the last ``most``) until it is decided."""
        if self.open:
            self.logs.append(record)
            if len(self.logs) > most:
                del self.logs[0]

    def close(self) -> None:
        """The trace is decided: let its spans go. They refer to their family, so a family
        still holding them would be a reference cycle, each trace's garbage left for the
        cyclic GC to find (a tenth of a request's CPU at c=32) instead of freed at once."""
        self.open = False
        self.clear()
        self.logs = []


class LightSpan(trace.Span):
    """A span being recorded: plain fields until the recorder decides."""

    __slots__ = (
        "_sink",
        "attributes",
        "context",
        "end_time",
        "events",
        "family",
        "held",
        "kind",
        "links",
        "name",
        "parent",
        "start_time",
        "status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: list[Link],
        sink: Callable[[LightSpan], None],
        family: Family,
    ) -> None:
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = attributes
        self.links = links
        self.events: list[Event] = []
        self.status = UNSET
        self.start_time = time.time_ns()
        self.end_time: int | None = None
        self.held: list[tuple[Any, float]] = []
        """Histogram observations made under this span: they get the trace as their
        exemplar if the recorder keeps it (``metrics.mark_exemplar``)."""
        self._sink = sink
        self.family = family
        """The spans of this span's local trace that have ended, shared by all of them: the
        recorder holds them there, with no lookup per span."""

    def get_span_context(self) -> SpanContext:
        """The span's ids."""
        return self.context

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        """Set several attributes (``None`` values are left out)."""
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        """Set one attribute (``None`` is left out)."""
        if value is not None and self.end_time is None:
            self.attributes[key] = value

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        """Record an event now (or at ``timestamp``)."""
        self.events.append(Event(name, attributes, timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        """Link another span."""
        self.links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        """Rename the span."""
        self.name = name

    def is_recording(self) -> bool:
        """Until it ends."""
        return self.end_time is None

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status (an OK status is final, as in the SDK)."""
        if self.status.status_code is StatusCode.OK:
            return
        self.status = status if isinstance(status, Status) else Status(status, description)
        if self.status.status_code is StatusCode.ERROR:
            self.family.failed = True

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An ``exception`` event (the given attributes win over the computed ones)."""
        recorded: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.escaped": str(escaped),
        }
        recorded.update(attributes or {})
        self.add_event("exception", recorded, timestamp)

    def end(self, end_time: int | None = None) -> None:
        """End the span (once) and hand it to the recorder."""
        if self.end_time is None:
            self.end_time = end_time or time.time_ns()
            self._sink(self)


def note_usage(
    span: trace.Span | None, provider: str, model: str, prompt: int, completion: int
) -> None:
    """A model call's (or embedding's) usage under a light span, for the recorder's cost
    check (no span, or an SDK one: nothing to note)."""
    if type(span) is LightSpan:
        span.family.calls.append((provider, model, prompt, completion))


class KeptSpan(ReadableSpan):
    """A kept light span as the SDK's span. ``plain`` is its attributes, the dict the
    SDK's ``attributes`` shows read-only: the export process and the console read it
    without a copy."""

    def __init__(
        self,
        span: LightSpan,
        resource: Resource,
        scope: InstrumentationScope | None,
        attributes: dict[str, Any],
    ) -> None:
        super().__init__(
            span.name,
            span.context,
            span.parent,
            resource,
            attributes,
            span.events,
            span.links,
            span.kind,
            None,
            span.status,
            span.start_time,
            span.end_time,
            scope,
        )
        self.plain = attributes


def readable(
    span: LightSpan | ReadableSpan,
    resource: Resource,
    scope: InstrumentationScope | None,
    extra: Mapping[str, Any],
) -> ReadableSpan:
    """The SDK span an exporter takes for ``span`` (light or already the SDK's), with
    ``extra`` attributes added. An ended light span's attributes no longer change: they
    are shared, not copied, unless ``extra`` adds some."""
    if type(span) is LightSpan:
        attributes = {**span.attributes, **extra} if extra else span.attributes
        return KeptSpan(span, resource, scope, attributes)
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=resource,
        attributes={**(span.attributes or {}), **extra},
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=scope,
    )


class Recorder(Protocol):
    """Where light spans go: local roots when they start, every span when it ends."""

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        """A local root started."""

    def on_end(self, span: Any) -> None:
        """A span ended."""


class LightTracer:
    """Starts light spans (the ``Tracer.start_span`` the telemetry scopes call). A local
    root (no parent, or a remote one) starts a new family, announced to ``processor``'s
    ``on_start``; every span goes to its ``on_end`` when it ends. A span under an unsampled
    remote parent is a non-recording one, as ``ParentBased`` makes it."""

    def __init__(self, processor: Recorder) -> None:
        self._start, self._end = processor.on_start, processor.on_end

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        **_: Any,
    ) -> trace.Span | None:
        """A new span under the current (or ``context``'s) span; ``None`` (no span to make)
        under the current span of an unsampled trace, as ``in_unsampled_trace`` says."""
        current = trace.get_current_span(context)
        parent = current.get_span_context()
        span_id = getrandbits(64) or 1  # as the SDK's RandomIdGenerator, without its loop
        values = {k: v for k, v in attributes.items() if v is not None} if attributes else {}
        if type(current) is LightSpan:  # a local child: the parent's family
            own = SpanContext(parent.trace_id, span_id, False, SAMPLED, parent.trace_state)
            return LightSpan(
                name, own, parent, kind, values, [*(links or ())], self._end, current.family
            )
        if parent.is_valid:
            if context is None and not current.is_recording():
                return None
            if not parent.trace_flags.sampled:
                quiet = SpanContext(parent.trace_id, span_id, False, parent.trace_flags)
                return trace.NonRecordingSpan(quiet)
            trace_id, state = parent.trace_id, parent.trace_state
        else:
            trace_id, state = getrandbits(128) or 1, None
        own = SpanContext(trace_id, span_id, False, SAMPLED, state)
        root = parent if parent.is_valid else None
        span = LightSpan(name, own, root, kind, values, [*(links or ())], self._end, Family())
        self._start(span)
        return span
