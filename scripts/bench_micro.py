"""Micro-benchmarks of hector's per-request observability and logging work, in-process.

    python scripts/bench_micro.py [--rounds 5]

Measures the CPU time of the calling thread (``time.thread_time``: what else the machine
runs matters less than for wall time) for:

- the telemetry scopes of one ``/v1/chat/completions`` request (HTTP request, agent run,
  LLM call) with observability off, metrics only, tracing only (sampling 1.0, spans
  exported to a null exporter), both, and both with 10 % and 0 % of traces sampled;
- the OpenTelemetry SDK's own floor: one span without attributes started and ended, and
  the OTLP encoding of one span (what the export thread does), bare and hector's;
- one access-log line through hector's text and JSON formatters.

``--baseline`` also runs each case with the code paths these optimisations replaced
(``start_as_current_span``, uncached ``labels()``, prometheus_client's own
``inc``/``observe``, three ``set_attribute`` calls, ``datetime`` timestamps, full
``LogRecord`` collection), alternating with the current ones, so both are measured in
the same conditions.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from prometheus_client import Counter, Gauge, Histogram  # noqa: E402

import hector_py.observability.tracing as tracing_module  # noqa: E402
from hector_py.config.model import ObservabilityConfig  # noqa: E402
from hector_py.observability import exposition, logs  # noqa: E402
from hector_py.observability.redact import Redactor  # noqa: E402
from hector_py.observability.telemetry import Telemetry  # noqa: E402

HEADERS = {"Host": "127.0.0.1:8080", "Content-Type": "application/json"}


class _NullExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _request(t: Telemetry) -> None:
    """The scopes of one /v1/chat/completions request, as the server opens them."""
    route = "/v1/chat/completions"
    with t.http_request("POST", route, route, HEADERS) as http:
        with (
            t.agent_run("bench", None, "openai", "bench-model"),
            t.llm_call(
                "bench", "openai", "bench-model", stream=False, server="http://127.0.0.1:9/v1"
            ) as call,
        ):
            call.usage(11, 7)
            call.finish_reasons = ("stop",)
        t.agent_request("bench", True)
        http.code = 200


def _cpu_us(
    fn: Callable[[], None], variants: list[bool], rounds: int, n: int = 2000
) -> list[float]:
    """Best CPU µs per call of ``fn`` for each variant, the variants alternating."""
    best = [float("inf")] * len(variants)
    for _ in range(rounds):
        for index, variant in enumerate(variants):
            with baseline(variant):
                for _ in range(n // 4):
                    fn()
                started = time.thread_time()
                for _ in range(n):
                    fn()
                best[index] = min(best[index], (time.thread_time() - started) / n * 1e6)
    return best


# --- the replaced code paths (for --baseline) ----------------------------------------------


_new_span = Telemetry._span


@contextmanager
def _old_span(
    self: Telemetry,
    name: str,
    kind: Any,
    attributes: Any,
    context: Any = None,
    *,
    record: bool = True,
    links: Any = (),
) -> Iterator[Any]:
    if self.tracer is None or not record:
        yield None
        return
    if not hasattr(self.tracer, "start_as_current_span"):  # the flight recorder's: no old path
        with _new_span(self, name, kind, attributes, context, record=record, links=links) as span:
            yield span
        return
    with self.tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=attributes,
        links=links,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def _old_labels(self: Any, *values: Any, **kwargs: Any) -> Any:
    return super(exposition._CachedLabels, self).labels(*values, **kwargs)


def _old_rfc3339(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# hector's metric classes, prometheus_client's classes, the methods hector replaced
_FAST = [
    (exposition.CachedCounter, Counter, ("inc",)),
    (exposition.CachedHistogram, Histogram, ("observe",)),
    (exposition.CachedGauge, Gauge, ("inc", "dec", "set")),
]


@contextmanager
def baseline(on: bool) -> Iterator[None]:
    """Swap the replaced code paths in (``on``) for the duration."""
    if not on:
        yield
        return
    fast = [(ours, theirs, name) for ours, theirs, names in _FAST for name in names]
    saved_fast = [getattr(ours, name) for ours, _, name in fast]
    for ours, theirs, name in fast:
        setattr(ours, name, getattr(theirs, name))
    saved = (
        Telemetry._span,
        exposition._CachedLabels.labels,
        logs.rfc3339,
        logging._srcfile,
        logging.logThreads,
        logging.logMultiprocessing,
    )
    Telemetry._span = _old_span  # type: ignore[assignment]
    exposition._CachedLabels.labels = _old_labels  # type: ignore[method-assign]
    logs.rfc3339 = _old_rfc3339
    logging._srcfile = os.path.normcase(logging.addLevelName.__code__.co_filename)
    logging.logThreads = logging.logMultiprocessing = True
    try:
        yield
    finally:
        (
            Telemetry._span,
            exposition._CachedLabels.labels,
            logs.rfc3339,
            logging._srcfile,
            logging.logThreads,
            logging.logMultiprocessing,
        ) = saved  # type: ignore[assignment]
        for (ours, _, name), method in zip(fast, saved_fast, strict=True):
            setattr(ours, name, method)


def _sdk_floor(rounds: int, columns: int) -> None:
    """What the OpenTelemetry SDK itself costs per span, whoever calls it: start + end of a
    span without attributes, and OTLP protobuf encoding (in the export thread) of such a
    span and of the spans hector makes for one request."""
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")

    def bare() -> None:
        tracer.start_span("bench").end()

    rest = " | -" * (columns - 1)  # no baseline: the SDK's own cost
    cost = _cpu_us(bare, [False], rounds)[0]
    print(f"| OpenTelemetry SDK: start + end of one span, no attributes | {cost:.1f} µs{rest} |")
    memory.clear()
    for _ in range(300):
        bare()
    plain = memory.get_finished_spans()
    config = ObservabilityConfig.model_validate({"tracing": {"enabled": True}})
    t = Telemetry(config)
    assert t.tracing is not None
    t.tracing.provider.add_span_processor(SimpleSpanProcessor(memory))
    memory.clear()
    for _ in range(100):
        _request(t)
    ours = memory.get_finished_spans()  # 3 per request
    for name, spans in (("no attributes", plain), ("hector's 3 spans of a request", ours)):
        cost = _cpu_us(lambda spans=spans: encode_spans(spans), [False], rounds, n=20)
        print(f"| OTLP encoding per span, {name} | {cost[0] / len(spans):.1f} µs{rest} |")
    t.tracing.provider.shutdown()
    provider.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    tracing_module.build_exporter = lambda *a, **k: _NullExporter()  # type: ignore[assignment]
    variants = [False, True] if args.baseline else [False]
    print("| case | " + " | ".join("baseline" if v else "now" for v in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for name, with_metrics, with_tracing, rate, keep in (
        ("scopes of one request: observability off", False, False, 1.0, False),
        ("scopes of one request: metrics", True, False, 1.0, False),
        ("scopes of one request: tracing (3 spans)", False, True, 1.0, False),
        ("scopes of one request: metrics + tracing", True, True, 1.0, False),
        ("scopes of one request: metrics + tracing, 10% sampled", True, True, 0.1, False),
        ("scopes of one request: metrics + tracing, none sampled", True, True, 0.0, False),
        ("flight recorder (light spans), metrics, all kept", True, True, 1.0, True),
        ("flight recorder (light spans), metrics, 10% kept", True, True, 0.1, True),
        ("flight recorder (light spans), metrics, none kept", True, True, 0.0, True),
    ):
        config = ObservabilityConfig.model_validate(
            {
                "metrics": {"enabled": with_metrics},
                "tracing": {
                    "enabled": with_tracing,
                    "endpoint": "127.0.0.1:9",
                    "sampling_rate": rate,
                    "export_process": False,  # the null exporter above, in process
                    "keep": {"enabled": keep, "slower_than": None, "costlier_than": None},
                },
            }
        )
        t = Telemetry(config)
        cells = [f"{v:.1f} µs" for v in _cpu_us(lambda t=t: _request(t), variants, args.rounds)]
        print(f"| {name} | " + " | ".join(cells) + " |")
        if t.tracing is not None:
            t.tracing.provider.shutdown()
    _sdk_floor(args.rounds, len(variants))
    log_file = Path(tempfile.mkdtemp()) / "bench.log"
    for fmt in ("text", "json"):
        logs.configure_logging("info", fmt, str(log_file), Redactor([], ["sk-bench-secret"]))
        access = logging.getLogger("hector.access")
        extra = {
            "method": "POST",
            "path": "/v1/chat/completions",
            "route": "/v1/chat/completions",
            "status": 200,
            "duration_ms": 1.23,
            "remote": "127.0.0.1",
        }

        def line(access: logging.Logger = access, extra: dict[str, Any] = extra) -> None:
            access.info("request completed", extra=extra)

        with logs.bind(request_id="0123456789abcdef0123456789abcdef", agent="bench"):
            cells = [f"{v:.1f} µs" for v in _cpu_us(line, variants, args.rounds)]
        print(f"| one access-log line ({fmt}) | " + " | ".join(cells) + " |")
    logging.getLogger().handlers.clear()


if __name__ == "__main__":
    main()
