"""OpenTelemetry tracing: exporter factory, sampler, resource, and export-health tracking.

Standard ``OTEL_*`` variables apply where the hector config says nothing; explicit hector
config wins. Heavy exporters (gRPC) are imported only when configured.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from hector_py import __version__
from hector_py.config.loader import ConfigError, Problem
from hector_py.config.model import TracingConfig

log = logging.getLogger("hector.tracing")

OTLP_GRPC_PORT, OTLP_HTTP_PORT, JAEGER_LEGACY_PORT = 4317, 4318, 14268
ZIPKIN_DEFAULT = "http://localhost:9411/api/v2/spans"
MAX_QUEUE_SIZE = 2048
# The exporters log every failed attempt; we report export health once, ourselves.
_NOISY_LOGGERS = ("opentelemetry.exporter", "opentelemetry.sdk.trace.export")


@dataclass(frozen=True)
class Target:
    """Where spans go: exporter kind, protocol and the resolved endpoint."""

    exporter: str
    protocol: str  # grpc | http | zipkin | stdout
    endpoint: str
    insecure: bool


def _problem(field: str, message: str) -> ConfigError:
    return ConfigError([Problem(f"observability.tracing.{field}", message, "config")])


def _explicit(config: TracingConfig, field: str) -> bool:
    return field in config.model_fields_set


def _host_port(endpoint: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path) of ``host:port`` or ``scheme://host:port/path``."""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    try:
        port = parts.port
    except ValueError:
        raise _problem("endpoint", f"invalid port in '{endpoint}'") from None
    if not parts.hostname or " " in endpoint:
        raise _problem("endpoint", f"'{endpoint}' is not HOST:PORT or a URL")
    return parts.scheme, parts.hostname, port, parts.path


def resolve_target(config: TracingConfig, environ: Mapping[str, str]) -> Target:
    """Decide exporter, protocol and endpoint; a malformed setting is a ``ConfigError``."""
    if config.exporter == "stdout":
        return Target("stdout", "stdout", "stdout", True)
    endpoint = config.endpoint
    if config.exporter == "zipkin":
        if not _explicit(config, "endpoint"):
            endpoint = ZIPKIN_DEFAULT
        scheme, host, port, path = _host_port(endpoint)
        base = endpoint if scheme else f"http://{endpoint}"
        return Target(
            "zipkin",
            "zipkin",
            base if path not in ("", "/") else base.rstrip("/") + "/api/v2/spans",
            config.insecure,
        )
    if not _explicit(config, "endpoint"):
        endpoint = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or endpoint
        )
    scheme, host, port, path = _host_port(endpoint)
    protocol = config.protocol
    if protocol is None and not _explicit(config, "protocol"):
        env_protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        protocol = "http" if env_protocol.startswith("http") else None
    if config.exporter == "jaeger" and port == JAEGER_LEGACY_PORT:
        protocol = protocol or "http"
        port = OTLP_HTTP_PORT if protocol == "http" else OTLP_GRPC_PORT
        log.warning(
            "jaeger: %s is the legacy Thrift endpoint; sending OTLP/%s to %s:%d instead "
            "(Jaeger ingests OTLP natively)",
            endpoint,
            protocol,
            host,
            port,
        )
        scheme, path = "http", ""
    if protocol is None:
        protocol = "http" if scheme in ("http", "https") or port == OTLP_HTTP_PORT else "grpc"
    insecure = config.insecure and scheme != "https"
    if protocol == "grpc":
        return Target(config.exporter, "grpc", f"{host}:{port or OTLP_GRPC_PORT}", insecure)
    http_scheme = scheme if scheme in ("http", "https") else ("http" if insecure else "https")
    if path in ("", "/"):
        path = "/v1/traces"
    return Target(
        config.exporter, "http", f"{http_scheme}://{host}:{port or OTLP_HTTP_PORT}{path}", insecure
    )


def _headers(config: TracingConfig, environ: Mapping[str, str]) -> dict[str, str]:
    if config.headers or _explicit(config, "headers"):
        return {k: v.get_secret_value() for k, v in config.headers.items()}
    raw = environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or environ.get(
        "OTEL_EXPORTER_OTLP_HEADERS", ""
    )
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs}


def build_exporter(
    target: Target, config: TracingConfig, environ: Mapping[str, str]
) -> SpanExporter:
    """The SDK exporter for ``target``."""
    headers = _headers(config, environ)
    if target.protocol == "stdout":
        return ConsoleSpanExporter(
            out=sys.stdout, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
    if target.protocol == "zipkin":
        import requests
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        session = requests.Session()
        session.headers.update(headers)
        return ZipkinExporter(
            endpoint=target.endpoint, timeout=int(config.timeout), session=session
        )
    if target.protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        compression = grpc.Compression.Gzip if config.compression == "gzip" else None
        return GrpcExporter(
            endpoint=target.endpoint,
            insecure=target.insecure,
            headers={k.lower(): v for k, v in headers.items()},
            timeout=config.timeout,
            compression=compression,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(
        endpoint=target.endpoint,
        headers=headers,
        timeout=config.timeout,
        compression=Compression.Gzip if config.compression == "gzip" else Compression.NoCompression,
    )


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


class _HashedResource(Resource):
    """A resource that hashes once. The OTLP encoder groups spans by resource, hashing it
    for every span, and ``Resource.__hash__`` serialises every attribute to JSON."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def build_resource(config: TracingConfig, environ: Mapping[str, str]) -> Resource:
    """``service.name``/``version``, ``deployment.environment``, ``host.name`` and
    ``OTEL_RESOURCE_ATTRIBUTES``; explicit hector config wins over the env."""
    env_attrs = environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    attributes: dict[str, str] = {"host.name": socket.gethostname()}
    env_names_service = "OTEL_SERVICE_NAME" in environ or "service.name=" in env_attrs
    if _explicit(config, "service_name") or not env_names_service:
        attributes["service.name"] = config.service_name
    if config.service_version or "service.version=" not in env_attrs:
        attributes["service.version"] = config.service_version or __version__
    if config.environment:
        attributes["deployment.environment"] = config.environment
    return _HashedResource(Resource.create(attributes))


def sampling_rate(config: TracingConfig, environ: Mapping[str, str]) -> float:
    """``sampling_rate``, or ``OTEL_TRACES_SAMPLER[_ARG]`` when the config does not set it."""
    if _explicit(config, "sampling_rate"):
        return config.sampling_rate
    sampler = environ.get("OTEL_TRACES_SAMPLER", "")
    if sampler.endswith("always_off"):
        return 0.0
    if sampler.endswith("traceidratio"):
        try:
            return min(max(float(environ.get("OTEL_TRACES_SAMPLER_ARG", "1")), 0.0), 1.0)
        except ValueError:
            return config.sampling_rate
    return config.sampling_rate


@dataclass
class Tracing:
    """A configured tracer provider and the health of its exporter."""

    provider: TracerProvider
    exporter: ReportingExporter


def build_tracing(config: TracingConfig, environ: Mapping[str, str] | None = None) -> Tracing:
    """Provider with ``ParentBased(TraceIdRatioBased(rate))`` and a bounded batch processor."""
    environ = os.environ if environ is None else environ
    target = resolve_target(config, environ)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    provider = TracerProvider(
        resource=build_resource(config, environ),
        sampler=ParentBased(TraceIdRatioBased(sampling_rate(config, environ))),
    )
    exporter = ReportingExporter(build_exporter(target, config, environ), target)
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=MAX_QUEUE_SIZE,
            schedule_delay_millis=500,
            export_timeout_millis=config.timeout * 1000,
        )
    )
    log.info(
        "tracing to %s via %s",
        target.endpoint,
        target.protocol,
        extra={"exporter": target.exporter},
    )
    return Tracing(provider, exporter)
