"""The flight recorder: tail-based keeping of traces (``observability.tracing.keep``).

Every span is recorded (the sampler samples all) and held per trace until the trace's
local root ends; then the trace is kept, and handed to the SDK's own batch processor and
exporter, when it failed, was slower than ``slower_than`` (seconds, or ``p99``: the 99th
percentile of the last ``WINDOW`` traces), cost more than ``costlier_than`` tokens, was
flagged (``X-Hector-Trace: keep``), continues a sampled caller's trace, falls in the
head-sampling ratio, or is among the first ``ordinary_per_second`` ordinary traces of its
second; otherwise it is dropped before any OTLP encoding. A kept trace's root
span says why in ``hector.trace.kept``. A trace's ended spans are held in its family, a
list its spans share (no lookup per span); bounded: at most ``max_traces`` traces in
flight (the oldest is dropped) and ``max_spans_per_trace`` spans each."""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import StatusCode

from hector_py import __version__
from hector_py.config.observability import KeepConfig
from hector_py.observability.buckets import mark_exemplar
from hector_py.observability.light import Family, LightSpan, readable

Recorded = LightSpan | ReadableSpan
"""What the recorder holds: light spans (the scopes'), or SDK spans (``hector doctor``'s)."""
SCOPE = InstrumentationScope("hector_py", __version__)
"""The instrumentation scope of light spans: the telemetry's tracer's."""
LOW_64 = (1 << 64) - 1
FLAG = "hector.trace.keep"
DECISION = "hector.trace.kept"
WINDOW = 1000
"""Root durations the p99 is taken over (within ``WINDOW_S``)."""
WINDOW_S = 300.0
MIN_SAMPLES = 100
"""Below this many recent traces there is no p99 to compare with (none is slow)."""
RECOMPUTE_EVERY = 200
"""Traces between two computations of the p99."""


class Percentile:
    """The 99th percentile of recent root durations (ns), recomputed now and then."""

    def __init__(self) -> None:
        self._times: deque[float] = deque(maxlen=WINDOW)
        self._durations: deque[int] = deque(maxlen=WINDOW)
        self._since = 0
        self.value: int | None = None

    def add(self, duration: int) -> None:
        """Count one root's duration."""
        now = time.monotonic()
        self._times.append(now)
        self._durations.append(duration)
        self._since += 1
        if self._since >= RECOMPUTE_EVERY or self.value is None:
            self._since = 0
            while self._times and now - self._times[0] > WINDOW_S:
                self._times.popleft()
                self._durations.popleft()
            count = len(self._durations)
            if count < MIN_SAMPLES:
                self.value = None
                return
            above = count - int(count * 0.99)  # the p99 is the above-th largest
            self.value = heapq.nlargest(above, self._durations)[-1]


class PerSecond:
    """Says yes to the first ``rate`` callers of each second (for a rate below one, to the
    first caller of each ``1 / rate`` seconds)."""

    def __init__(self, rate: float) -> None:
        self.window = max(1.0, 1.0 / rate) if rate > 0 else 0.0
        self.allowed = rate * self.window
        self._start = -self.window
        self._taken = 0

    def take(self) -> bool:
        """One more in this window, if there is room."""
        if not self.allowed:
            return False
        now = time.monotonic()
        if now - self._start >= self.window:
            self._start, self._taken = now, 0
        if self._taken < self.allowed:
            self._taken += 1
            return True
        return False


class KeepProcessor(SpanProcessor):
    """Holds each trace's spans and keeps or drops the trace when its root ends."""

    def __init__(
        self,
        inner: SpanProcessor,
        config: KeepConfig,
        ratio: float,
        resource: Resource | None = None,
    ) -> None:
        self.inner = inner
        self.resource = resource or Resource.get_empty()
        self.config = config
        self.bound = int(ratio * (1 << 64))  # head-sampling share, by trace id
        self.on_decision: Callable[[str | None], None] = lambda reason: None
        """Hears each decision: the reason a trace was kept, or ``None`` (dropped)."""
        self.hold_logs: Callable[[str, list[Any]], None] | None = None
        """Given a kept trace's log records (the run console's, ``Family.hold``)."""
        self.cost: Callable[[str, str, int, int], float] = lambda *_: 0.0
        """A model call's price in dollars (provider, model, prompt and completion tokens)."""
        self._traces: OrderedDict[int, Family] = OrderedDict()
        """Each running trace's ended spans (a light root's family), oldest first."""
        self._max = config.max_traces
        self._lock = threading.Lock()
        self._p99 = Percentile()
        self._rate = PerSecond(config.ordinary_per_second or 0.0)

    def on_start(self, span: Span | LightSpan, parent_context: Context | None = None) -> None:
        """A light local root: hold its family (the trace's ended spans) until it ends; the
        oldest trace goes (dropped) when ``max_traces`` are held."""
        if type(span) is not LightSpan:
            return
        with self._lock:
            self._traces[span.context.trace_id] = span.family
            evicted = self._traces.popitem(last=False)[1] if len(self._traces) > self._max else None
        if evicted is not None:  # a trace whose root never ended: what it held goes
            evicted.close()
            self.on_decision(None)

    def on_end(self, span: Recorded) -> None:
        """Hold ``span`` in its family; decide when it is its trace's local root."""
        if type(span) is LightSpan:  # its family: no lookup, no lock
            family = span.family
            if family.open and len(family) < self.config.max_spans_per_trace:
                family.append(span)
            if span.parent is not None and not span.parent.is_remote:
                return
            with self._lock:
                self._traces.pop(span.context.trace_id, None)
            self._decide(span, family)
            family.close()
            return
        self._decide(span, [span])  # an SDK span (``hector doctor``'s): a trace of its own

    def _decide(self, root: Recorded, spans: Sequence[Recorded]) -> None:
        """Keep (export) or drop a trace whose local root ended."""
        reason = self._reason(root, spans)
        self.on_decision(reason)
        if reason is not None:
            trace_id = format(root.context.trace_id, "032x")
            if type(root) is LightSpan and root.family.logs and self.hold_logs is not None:
                self.hold_logs(trace_id, root.family.logs)
            for kept in spans:
                if type(kept) is LightSpan:
                    at = (kept.end_time or 0) / 1e9
                    for histogram, value in kept.held:  # exemplars only for kept traces
                        mark_exemplar(histogram, value, trace_id, at)
                self.inner.on_end(self._exported(kept, reason if kept is root else None))

    def _exported(self, span: Recorded, reason: str | None) -> ReadableSpan:
        """The SDK span to export (a kept trace's root says why it was kept)."""
        if isinstance(span, LightSpan):
            return readable(span, self.resource, SCOPE, {DECISION: reason} if reason else {})
        if reason is None:  # an SDK span (hector doctor's test span)
            return span
        return readable(span, span.resource, span.instrumentation_scope, {DECISION: reason})

    def _reason(self, root: Recorded, spans: Sequence[Recorded]) -> str | None:
        family = root.family if type(root) is LightSpan else None  # else an SDK span
        if _failed(spans) if family is None else family.failed:
            return "error"
        if root.attributes and root.attributes.get(FLAG):
            return "flagged"
        duration = (root.end_time or 0) - (root.start_time or 0)
        slower = self.config.slower_than
        if slower == "p99":
            with self._lock:
                threshold = self._p99.value
                self._p99.add(duration)
            if threshold is not None and duration > threshold:
                return "slow"
        elif slower is not None and duration > float(slower) * 1e9:
            return "slow"
        calls = () if family is None else family.calls
        if calls:
            costlier, dollars = self.config.costlier_than, self.config.costlier_than_usd
            if costlier is not None and sum(p + c for _, _, p, c in calls) > costlier:
                return "costly"
            if dollars is not None and sum(self.cost(*call) for call in calls) > dollars:
                return "costly"
        parent = root.parent
        if parent is not None and parent.is_remote and parent.trace_flags.sampled:
            return "caller"
        if (root.context.trace_id & LOW_64) < self.bound:
            return "sampled"
        with self._lock:
            return "rate" if self._rate.take() else None

    def shutdown(self) -> None:
        """Shut the batch processor down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the batch processor (held traces are not done yet)."""
        return self.inner.force_flush(timeout_millis)


def _failed(spans: Sequence[Recorded]) -> bool:
    """Whether one of (SDK) ``spans`` failed."""
    return any(s.status.status_code is StatusCode.ERROR for s in spans)
