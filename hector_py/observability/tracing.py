"""OpenTelemetry tracing: exporter factory, sampler, resource, and export-health tracking.

Standard ``OTEL_*`` variables apply where the hector config says nothing; explicit hector
config wins. Heavy exporters (gRPC) are imported only when configured.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanContext, TraceFlags

from hector_py import __version__
from hector_py.config.model import TracingConfig
from hector_py.observability.export_process import (
    NOISY_LOGGERS,
    ExportProcessError,
    HashedResource,
    ProcessExporter,
)
from hector_py.observability.exporters import (
    Target,
    build_exporter,
    explicit,
    resolve_target,
)
from hector_py.observability.recorder import KeepProcessor

log = logging.getLogger("hector.tracing")

MAX_QUEUE_SIZE = 2048
EXPORT_PROCESS_RATE = 0.5
"""From this sampling rate on, spans leave from a child process unless configured."""


class ReportingExporter(SpanExporter):
    """Wraps an exporter: failures are logged once per outage and shown in ``/health``."""

    def __init__(self, inner: SpanExporter, target: Target) -> None:
        self._inner = inner
        self.target = target
        self.healthy = True
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export, tracking whether the backend is reachable."""
        try:
            result = self._inner.export(spans)
            error = None if result is SpanExportResult.SUCCESS else "export failed"
        except ExportProcessError as exc:  # the export process's own words
            result, error = SpanExportResult.FAILURE, str(exc)
        except Exception as exc:  # an exporter must never break the batch thread
            result, error = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        with self._lock:
            if error and self.healthy:
                self.healthy, self.last_error = False, error
                log.warning(
                    "trace export to %s is failing (%s); spans are dropped until it recovers",
                    self.target.endpoint,
                    error,
                )
            elif not error and not self.healthy:
                self.healthy, self.last_error = True, None
                log.info("trace export to %s recovered", self.target.endpoint)
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self._inner.force_flush(timeout_millis)


def build_resource(config: TracingConfig, environ: Mapping[str, str]) -> Resource:
    """``service.name``/``version``, ``deployment.environment.name``, ``host.name`` and
    ``OTEL_RESOURCE_ATTRIBUTES``; explicit hector config wins over the env."""
    env_attrs = environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    attributes: dict[str, str] = {"host.name": socket.gethostname()}
    env_names_service = "OTEL_SERVICE_NAME" in environ or "service.name=" in env_attrs
    if explicit(config, "service_name") or not env_names_service:
        attributes["service.name"] = config.service_name
    if config.service_version or "service.version=" not in env_attrs:
        attributes["service.version"] = config.service_version or __version__
    if config.environment:
        attributes["deployment.environment.name"] = config.environment
    return HashedResource(Resource.create(attributes))


def build_sampler(config: TracingConfig, environ: Mapping[str, str]) -> Sampler:
    """``ParentBased(TraceIdRatioBased(sampling_rate))``, or ``OTEL_TRACES_SAMPLER[_ARG]``
    as the SDK reads them when the config does not set ``sampling_rate``."""
    rate = config.sampling_rate
    name = "" if explicit(config, "sampling_rate") else environ.get("OTEL_TRACES_SAMPLER", "")
    name = name.strip().lower()
    if name.endswith("traceidratio"):
        try:
            rate = min(max(float(environ.get("OTEL_TRACES_SAMPLER_ARG", "1")), 0.0), 1.0)
        except ValueError:
            log.warning("OTEL_TRACES_SAMPLER_ARG is not a ratio; sampling at %s", rate)
    samplers: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(rate),
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
    }
    return samplers.get(name) or ParentBased(TraceIdRatioBased(rate))


@dataclass
class Tracing:
    """A configured tracer provider and the health of its exporter."""

    provider: TracerProvider
    exporter: ReportingExporter
    keeper: KeepProcessor | None = None

    def health(self) -> dict[str, Any]:
        """The ``/health`` part: ``degraded`` (never down) while exports fail."""
        exporter = self.exporter
        part: dict[str, Any] = {
            "status": "ok" if exporter.healthy else "degraded",
            "exporter": exporter.target.exporter,
            "endpoint": exporter.target.endpoint,
        }
        if exporter.last_error:
            part["error"] = exporter.last_error
        return part

    async def shutdown(self, timeout: float) -> None:
        """Flush spans on a thread, waiting at most ``timeout`` seconds."""
        done = threading.Event()

        def flush() -> None:
            self.provider.shutdown()
            done.set()

        threading.Thread(target=flush, name="hector-trace-flush", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if not done.is_set():
            log.warning("trace flush did not finish within %.1f s; unsent spans dropped", timeout)


def build_tracing(config: TracingConfig, environ: Mapping[str, str] | None = None) -> Tracing:
    """Provider with ``ParentBased(TraceIdRatioBased(rate))`` and a bounded batch processor."""
    environ = os.environ if environ is None else environ
    target = resolve_target(config, environ)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    keep = config.keep.enabled
    provider = TracerProvider(
        resource=build_resource(config, environ),
        # the flight recorder records every trace and decides at its end
        sampler=ParentBased(ALWAYS_ON) if keep else build_sampler(config, environ),
    )
    export_process = config.export_process
    if export_process is None:  # worth its memory when most traces leave
        export_process = config.sampling_rate >= EXPORT_PROCESS_RATE
    in_child = export_process and target.protocol != "stdout"
    inner = (
        ProcessExporter(target, config, environ)
        if in_child
        else build_exporter(target, config, environ)
    )
    exporter = ReportingExporter(inner, target)
    batch = BatchSpanProcessor(
        exporter,
        max_queue_size=MAX_QUEUE_SIZE,
        schedule_delay_millis=500,
        export_timeout_millis=target.timeout * 1000,
    )
    keeper = (
        KeepProcessor(batch, config.keep, config.sampling_rate, provider.resource) if keep else None
    )
    provider.add_span_processor(keeper or batch)
    log.info(
        "tracing to %s via %s",
        target.endpoint,
        target.protocol,
        extra={"exporter": target.exporter},
    )
    return Tracing(provider, exporter, keeper)


def in_unsampled_trace() -> bool:
    """True inside a trace that is not sampled. ``ParentBased`` drops every child of an
    unsampled parent, so there is no span to make: log lines and ``traceparent`` keep the
    parent's ids, and the work of creating and ending a non-recording span is skipped."""
    current = trace.get_current_span()
    return not current.is_recording() and current.get_span_context().is_valid


async def inject_traceparent(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """aiohttp client middleware: the current trace context into the request's headers."""
    propagate.inject(request.headers)
    return await handler(request)


def links_to(ids: str | None) -> list[Link]:
    """A span link to ``trace_id-span_id`` (``RunScope.span_ids``), if given and valid."""
    if not ids:
        return []
    trace_hex, _, span_hex = ids.partition("-")
    try:
        context = SpanContext(
            int(trace_hex, 16), int(span_hex, 16), is_remote=True, trace_flags=TraceFlags(1)
        )
    except ValueError:
        return []
    return [Link(context)] if context.is_valid else []
