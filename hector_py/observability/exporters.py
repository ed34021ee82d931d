"""Where signals go: the exporter, protocol, endpoint, headers, compression and timeout.

Explicit hector config wins; where it is silent the standard ``OTEL_*`` variables apply
exactly as the OpenTelemetry Python SDK's exporters read them: the signal-specific
variable (``OTEL_EXPORTER_OTLP_TRACES_*``) over the generic one; a signal-specific
endpoint is used as is, a generic one gets ``/v1/<signal>`` appended to its path; header
values are URL-decoded; the timeout is in seconds (as the Python SDK reads it).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.util.re import parse_env_headers

from hector_py.config.loader import ConfigError, Problem
from hector_py.config.observability import OtlpMetricsConfig, TracingConfig

log = logging.getLogger("hector.tracing")

OTLP_GRPC_PORT, OTLP_HTTP_PORT, JAEGER_LEGACY_PORT = 4317, 4318, 14268
ZIPKIN_DEFAULT = "http://localhost:9411/api/v2/spans"
Signal = Literal["traces", "metrics"]
_PROTOCOLS = {"grpc": "grpc", "http/protobuf": "http", "http/json": "http"}
_EXPORTERS = {"otlp": "otlp", "console": "stdout", "zipkin": "zipkin", "jaeger": "otlp"}


@dataclass(frozen=True)
class Target:
    """Where spans go: exporter kind, protocol, resolved endpoint and transport options."""

    exporter: str
    protocol: str  # grpc | http | zipkin | stdout
    endpoint: str
    insecure: bool
    compression: str = "none"  # gzip | deflate | none
    timeout: float = 10.0


def otel_env(environ: Mapping[str, str], signal: Signal, name: str) -> tuple[str, str] | None:
    """``(variable, value)`` of ``OTEL_EXPORTER_OTLP_<SIGNAL>_<name>``, else of the
    generic ``OTEL_EXPORTER_OTLP_<name>``; ``None`` when neither is set."""
    for key in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = environ.get(key, "").strip()
        if value:
            return key, value
    return None


def disabled_reason(config: TracingConfig, environ: Mapping[str, str]) -> str | None:
    """Why tracing is off although configured: ``OTEL_SDK_DISABLED=true`` (always), or
    ``OTEL_TRACES_EXPORTER=none`` when the config names no exporter."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "OTEL_SDK_DISABLED=true"
    if not explicit(config, "exporter") and _env_exporter(environ) == "none":
        return "OTEL_TRACES_EXPORTER=none"
    return None


def _env_exporter(environ: Mapping[str, str]) -> str | None:
    first = environ.get("OTEL_TRACES_EXPORTER", "").split(",")[0].strip().lower()
    return first or None


def _problem(field: str, message: str, source: str = "config") -> ConfigError:
    path = field if source == "environment" else f"observability.tracing.{field}"
    return ConfigError([Problem(path, message, source)])


def explicit(config: TracingConfig | OtlpMetricsConfig, field: str) -> bool:
    return field in config.model_fields_set


def _host_port(endpoint: str, field: str = "endpoint") -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path) of ``host:port`` or ``scheme://host:port/path``."""
    source = "config" if field == "endpoint" else "environment"
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    try:
        port = parts.port
    except ValueError:
        raise _problem(field, f"invalid port in '{endpoint}'", source) from None
    if not parts.hostname or " " in endpoint:
        raise _problem(field, f"'{endpoint}' is not HOST:PORT or a URL", source)
    return parts.scheme, parts.hostname, port, parts.path


def _exporter(config: TracingConfig | OtlpMetricsConfig, environ: Mapping[str, str]) -> str:
    if explicit(config, "exporter"):
        return config.exporter
    name = _env_exporter(environ)
    if name is None:
        return config.exporter
    if name not in _EXPORTERS:
        raise _problem(
            "OTEL_TRACES_EXPORTER",
            f"'{name}' is not one of otlp, console, zipkin, none",
            "environment",
        )
    return _EXPORTERS[name]


def _protocol(
    config: TracingConfig | OtlpMetricsConfig, environ: Mapping[str, str], signal: Signal
) -> str | None:
    if config.protocol is not None or explicit(config, "protocol"):
        return config.protocol
    found = otel_env(environ, signal, "PROTOCOL")
    if found is None:
        return None
    key, value = found
    if value not in _PROTOCOLS:
        raise _problem(key, f"'{value}' is not grpc, http/protobuf or http/json", "environment")
    if value == "http/json":
        log.warning("%s=http/json: the Python exporter sends http/protobuf", key)
    return _PROTOCOLS[value]


def _compression(
    config: TracingConfig | OtlpMetricsConfig, environ: Mapping[str, str], signal: Signal
) -> str:
    if explicit(config, "compression"):
        return config.compression
    found = otel_env(environ, signal, "COMPRESSION")
    if found is None:
        return config.compression
    key, value = found
    if value.lower() not in ("gzip", "deflate", "none"):
        raise _problem(key, f"'{value}' is not gzip, deflate or none", "environment")
    return value.lower()


def _timeout(
    config: TracingConfig | OtlpMetricsConfig, environ: Mapping[str, str], signal: Signal
) -> float:
    found = None if explicit(config, "timeout") else otel_env(environ, signal, "TIMEOUT")
    if found is None:
        return config.timeout
    key, value = found
    try:
        seconds = float(value)
    except ValueError:
        raise _problem(key, f"'{value}' is not a number of seconds", "environment") from None
    if seconds <= 0:
        raise _problem(key, "must be more than 0 seconds", "environment")
    return seconds


def _insecure(
    config: TracingConfig | OtlpMetricsConfig,
    environ: Mapping[str, str],
    signal: Signal,
    scheme: str,
) -> bool:
    if scheme in ("http", "https"):
        return scheme == "http"
    found = None if explicit(config, "insecure") else otel_env(environ, signal, "INSECURE")
    return config.insecure if found is None else found[1].lower() == "true"


def resolve_target(
    config: TracingConfig | OtlpMetricsConfig,
    environ: Mapping[str, str],
    signal: Signal = "traces",
) -> Target:
    """Decide exporter, protocol and endpoint; a malformed setting is a ``ConfigError``."""
    exporter = _exporter(config, environ)
    if exporter == "stdout":
        return Target("stdout", "stdout", "stdout", True)
    compression, timeout = _compression(config, environ, signal), _timeout(config, environ, signal)
    if exporter == "zipkin":
        endpoint = config.endpoint
        if not explicit(config, "endpoint"):
            endpoint = environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "").strip() or ZIPKIN_DEFAULT
        scheme, _, _, path = _host_port(endpoint)
        base = endpoint if scheme else f"http://{endpoint}"
        if path in ("", "/"):
            base = base.rstrip("/") + "/api/v2/spans"
        return Target("zipkin", "zipkin", base, config.insecure, compression, timeout)
    protocol = _protocol(config, environ, signal)
    endpoint, field = config.endpoint, "endpoint"
    if not explicit(config, "endpoint"):
        specific = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
        generic = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        if specific:
            endpoint, field = specific, f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
        elif generic:
            endpoint, field = generic, "OTEL_EXPORTER_OTLP_ENDPOINT"
        elif protocol == "http":
            endpoint = f"http://localhost:{OTLP_HTTP_PORT}"
    scheme, host, port, path = _host_port(endpoint, field)
    if exporter == "jaeger" and port == JAEGER_LEGACY_PORT:
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
        scheme, path, field = "http", "", "endpoint"
    if protocol is None:
        if port == OTLP_GRPC_PORT:
            protocol = "grpc"
        else:
            protocol = "http" if scheme in ("http", "https") or port == OTLP_HTTP_PORT else "grpc"
    insecure = _insecure(config, environ, signal, scheme) and scheme != "https"
    if protocol == "grpc":
        return Target(
            config.exporter,
            "grpc",
            f"{host}:{port or OTLP_GRPC_PORT}",
            insecure,
            compression,
            timeout,
        )
    http_scheme = scheme if scheme in ("http", "https") else ("http" if insecure else "https")
    if field != "endpoint":  # from the environment: as the SDK's HTTP exporter sends it
        url = endpoint if scheme else f"{http_scheme}://{endpoint}"
        if field == "OTEL_EXPORTER_OTLP_ENDPOINT":  # a base URL: the signal's path appended
            url = url.rstrip("/") + f"/v1/{signal}"
        return Target(config.exporter, "http", url, insecure, compression, timeout)
    if path in ("", "/"):
        path = f"/v1/{signal}"
    return Target(
        config.exporter,
        "http",
        f"{http_scheme}://{host}:{port or OTLP_HTTP_PORT}{path}",
        insecure,
        compression,
        timeout,
    )


def resolve_headers(
    config: TracingConfig | OtlpMetricsConfig,
    environ: Mapping[str, str],
    signal: Signal = "traces",
) -> dict[str, str]:
    """Configured headers, else ``OTEL_EXPORTER_OTLP_[<SIGNAL>_]HEADERS`` (URL-decoded)."""
    if config.headers or explicit(config, "headers"):
        return {k: v.get_secret_value() for k, v in config.headers.items()}
    found = otel_env(environ, signal, "HEADERS")
    return {} if found is None else dict(parse_env_headers(found[1], liberal=True))


def build_exporter(
    target: Target, config: TracingConfig, environ: Mapping[str, str]
) -> SpanExporter:
    """The SDK span exporter for ``target``."""
    headers = resolve_headers(config, environ)
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
            endpoint=target.endpoint, timeout=int(target.timeout), session=session
        )
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(**otlp_arguments(target, headers))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(**otlp_arguments(target, headers))


def otlp_arguments(target: Target, headers: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments of the SDK's OTLP exporters (spans and metrics alike) for
    ``target``: gRPC takes lower-case metadata keys and grpc's compression enum."""
    if target.protocol == "grpc":
        import grpc

        algorithm = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}
        return {
            "endpoint": target.endpoint,
            "insecure": target.insecure,
            "headers": {k.lower(): v for k, v in headers.items()},
            "timeout": target.timeout,
            "compression": algorithm.get(target.compression, grpc.Compression.NoCompression),
        }
    from opentelemetry.exporter.otlp.proto.http import Compression

    return {
        "endpoint": target.endpoint,
        "headers": dict(headers),
        "timeout": target.timeout,
        "compression": Compression(target.compression),
    }
