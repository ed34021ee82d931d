"""The flight recorder: tail-based keeping of traces (``observability.tracing.keep``).

Every span is recorded (the sampler samples all) and held per trace until the trace's
local root ends; then the trace is kept, and handed to the SDK's own batch processor and
exporter, when it failed, was slower than ``slower_than``, cost more than
``costlier_than`` tokens, was flagged (``X-Hector-Trace: keep``), continues a sampled
caller's trace, or falls in the head-sampling ratio; otherwise it is dropped before any
OTLP encoding. Bounded: at most ``max_traces`` traces in flight (the oldest is dropped)
and ``max_spans_per_trace`` spans each."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from hector_py.config.observability import KeepConfig

TOKEN_ATTRIBUTES = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
FLAG = "hector.trace.keep"


class KeepProcessor(SpanProcessor):
    """Holds each trace's spans and keeps or drops the trace when its root ends."""

    def __init__(self, inner: SpanProcessor, config: KeepConfig, ratio: float) -> None:
        self.inner = inner
        self.config = config
        self.bound = int(ratio * (1 << 64))  # head-sampling share, by trace id
        self.on_decision: Callable[[str | None], None] = lambda reason: None
        """Hears each decision: the reason a trace was kept, or ``None`` (dropped)."""
        self._traces: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do until spans end."""

    def on_end(self, span: ReadableSpan) -> None:
        """Hold ``span``; decide when it is its trace's local root."""
        context = span.get_span_context()
        if context is None:
            return
        root = span.parent is None or span.parent.is_remote
        evicted = False
        with self._lock:
            held = self._traces.setdefault(context.trace_id, [])
            if len(held) < self.config.max_spans_per_trace:
                held.append(span)
            if root:
                spans = self._traces.pop(context.trace_id)
            elif len(self._traces) > self.config.max_traces:
                self._traces.popitem(last=False)  # a trace whose root never ended: dropped
                evicted = True
        if evicted:
            self.on_decision(None)
        if root:
            reason = self._reason(span, spans)
            self.on_decision(reason)
            if reason is not None:
                for kept in spans:
                    self.inner.on_end(kept)

    def _reason(self, root: ReadableSpan, spans: list[ReadableSpan]) -> str | None:
        if any(s.status.status_code is StatusCode.ERROR for s in spans):
            return "error"
        if root.attributes and root.attributes.get(FLAG):
            return "flagged"
        slower = self.config.slower_than
        if slower is not None and (root.end_time or 0) - (root.start_time or 0) > slower * 1e9:
            return "slow"
        costlier = self.config.costlier_than
        if costlier is not None:
            tokens = sum(
                int(value)
                for s in spans
                for key in TOKEN_ATTRIBUTES
                if isinstance(value := (s.attributes or {}).get(key), int)
            )
            if tokens > costlier:
                return "costly"
        if root.parent is not None and root.parent.is_remote and root.parent.trace_flags.sampled:
            return "caller"
        context = root.get_span_context()
        if context is not None and (context.trace_id & ((1 << 64) - 1)) < self.bound:
            return "sampled"
        return None

    def shutdown(self) -> None:
        """Shut the batch processor down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the batch processor (held traces are not done yet)."""
        return self.inner.force_flush(timeout_millis)
