"""What the run console shows of traces and logs, kept in process and bounded: the last
``max_traces`` traces the server exported (with the flight recorder, the kept ones), each
cut to ``max_trace_kb``, and the last log lines of each of them (by ``trace_id``)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, SynchronousMultiSpanProcessor

from hector_py.observability.light import KeptSpan, LightSpan
from hector_py.observability.logs import JsonFormatter, record_fields
from hector_py.observability.redact import Redactor
from hector_py.observability.tracing import Tracing

CONSOLE_ROUTES = (
    "/console",
    "/console/app.js",
    "/console/api/runs",
    "/console/api/traces/{trace_id}",
)
"""The run console's routes (``server/console.py``), never traced."""
LINES_PER_TRACE = 200
MAX_ATTRIBUTE_CHARS = 8192
Filed = tuple[ReadableSpan | dict[str, Any], list[ReadableSpan]]
"""A trace the console holds: its root span (its summary if the root is past the cut, so
that nothing past it is held) and its spans up to the cut."""


def _span_json(span: ReadableSpan, redact: Redactor) -> dict[str, Any]:
    context = span.get_span_context()
    attributes = {
        key: redact(value)[:MAX_ATTRIBUTE_CHARS] if isinstance(value, str) else value
        for key, value in (span.attributes or {}).items()
    }
    return {
        "name": span.name,
        "span_id": format(context.span_id, "016x") if context else "",
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "kind": span.kind.name,
        "start": (span.start_time or 0) / 1e9,
        "duration_ms": round(((span.end_time or 0) - (span.start_time or 0)) / 1e6, 3),
        "status": span.status.status_code.name,
        "attributes": {
            k: v if isinstance(v, str | int | float | bool) else str(v)
            for k, v in attributes.items()
        },
        "events": [
            {
                "name": event.name,
                "attributes": {k: str(v) for k, v in (event.attributes or {}).items()},
            }
            for event in span.events
        ],
    }


def _size(span: ReadableSpan) -> int:
    """About how many bytes ``span`` takes as JSON (its strings, plus a fixed part)."""
    attributes = span.plain if type(span) is KeptSpan else span.attributes or {}
    lengths = [len(value) for value in attributes.values() if isinstance(value, str)]
    strings = sum(lengths)
    if strings > MAX_ATTRIBUTE_CHARS:  # else no string is longer
        strings = sum(min(length, MAX_ATTRIBUTE_CHARS) for length in lengths)
    return 256 + 128 * len(span.events) + 16 * (len(attributes) - len(lengths)) + strings


def _summary(root: ReadableSpan, cut: bool) -> dict[str, Any]:
    """A trace as the console lists it, from its root (``spans`` left to the caller)."""
    context = root.get_span_context()
    start, end = root.start_time or 0, root.end_time or 0
    return {
        "trace_id": format(context.trace_id if context else 0, "032x"),
        "root": root.name,
        "start": start / 1e9,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": root.status.status_code.name,
        "kept": (root.attributes or {}).get("hector.trace.kept"),
        "cut": cut,
    }


def _listed(root: ReadableSpan | dict[str, Any]) -> dict[str, Any]:
    """A filed trace's summary (one not cut has it made now)."""
    return root if isinstance(root, dict) else _summary(root, False)


class ConsoleSpans(SpanProcessor):
    """Collects the spans of each exported trace; keeps the last ``max_traces``. Spans
    are held as they are and turned into JSON (redacted) only when the console reads
    them: most traces are never looked at."""

    def __init__(self, max_traces: int, max_trace_kb: int, redact: Redactor) -> None:
        self.max_bytes = max_trace_kb * 1024
        self.redact = redact
        self.traces: deque[Filed] = deque(maxlen=max_traces)
        self._open: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._sizes: dict[int, int] = {}
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        """Hold the span; file its trace when the local root ends."""
        context = span.get_span_context()
        if context is None:
            return
        trace_id, size = context.trace_id, _size(span)
        with self._lock:
            held = self._open.get(trace_id)
            if held is None:
                held = self._open[trace_id] = []
                while len(self._open) > 10 * (self.traces.maxlen or 1):
                    dropped, _ = self._open.popitem(last=False)
                    self._sizes.pop(dropped, None)
            total = self._sizes.get(trace_id, 0)
            if total + size <= self.max_bytes:  # past the cut the trace says it is cut
                held.append(span)
                self._sizes[trace_id] = total + size
            else:
                self._sizes[trace_id] = self.max_bytes + 1
            if span.parent is None or span.parent.is_remote:  # filed as they are
                spans = self._open.pop(trace_id)
                if self._sizes.pop(trace_id, 0) > self.max_bytes:
                    self.traces.append((_summary(span, True), spans))
                else:
                    self.traces.append((span, spans))

    def recent(self) -> list[dict[str, Any]]:
        """The traces held, newest first, without their spans."""
        with self._lock:
            traces = list(self.traces)
        return [_listed(root) | {"spans": len(spans)} for root, spans in reversed(traces)]

    def find(self, trace_id: str) -> dict[str, Any] | None:
        """One held trace with its spans as JSON, or ``None``."""
        with self._lock:
            traces = list(self.traces)
        for root, spans in traces:
            summary = _listed(root)
            if summary["trace_id"] == trace_id:
                return summary | {"spans": [_span_json(span, self.redact) for span in spans]}
        return None

    def shutdown(self) -> None:
        """Nothing to flush."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing to flush."""
        return True


class ConsoleLogs(logging.Handler):
    """The last log lines (JSON, redacted) of each of the last traces, by trace id. A
    record is kept as it is, with the context its logging call had, and formatted only
    when the console reads it: most traces are never looked at. Under the flight recorder
    a trace's records wait with its light spans and are filed only if it is kept (the
    console shows kept traces only)."""

    def __init__(self, max_traces: int, redact: Redactor) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter(redact))
        self.max_traces = max_traces
        self._lines: OrderedDict[str, deque[logging.LogRecord]] = OrderedDict()
        self._lines_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Hold or file a record logged inside a trace."""
        fields = record_fields(record)  # taken in the logging call, whatever reads it later
        span = trace.get_current_span()
        if type(span) is LightSpan:
            span.family.hold(record, LINES_PER_TRACE)
            return
        trace_id = fields.get("trace_id")
        if isinstance(trace_id, str):
            self.file(trace_id, (record,))

    def file(self, trace_id: str, records: Iterable[logging.LogRecord]) -> None:
        """File records of ``trace_id`` (the oldest trace goes past ``max_traces``)."""
        with self._lines_lock:
            lines = self._lines.get(trace_id)
            if lines is None:
                lines = self._lines[trace_id] = deque(maxlen=LINES_PER_TRACE)
                while len(self._lines) > self.max_traces:
                    self._lines.popitem(last=False)
            lines.extend(records)

    def of(self, trace_id: str) -> list[Any]:
        """The lines of one trace, as the JSON log format writes them, oldest first."""
        with self._lines_lock:
            records = list(self._lines.get(trace_id, ()))
        return [orjson.loads(self.format(record)) for record in records]


def attach(tracing: Tracing, spans: ConsoleSpans, logs: ConsoleLogs) -> None:
    """Give ``spans`` what the server exports: behind the flight recorder, its kept
    traces (and ``logs`` their held log lines); else every recorded one."""
    if tracing.keeper is None:
        tracing.provider.add_span_processor(spans)
        return
    tracing.keeper.hold_logs = logs.file
    both = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    both.add_span_processor(tracing.keeper.inner)
    both.add_span_processor(spans)
    tracing.keeper.inner = both
