"""``observability:`` and ``logging:``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hector_py.config.base import Strict
from hector_py.config.names import LogFormat, LogLevel
from hector_py.config.redaction import compile_rule


class OtlpMetricsConfig(Strict):
    """OTLP metrics push (``observability.metrics.otlp``): the GenAI client metrics for an
    OTLP-only backend. Unset fields come from ``OTEL_EXPORTER_OTLP_[METRICS_]*``."""

    enabled: bool = False
    exporter: Literal["otlp"] = "otlp"
    endpoint: str = "localhost:4317"
    protocol: Literal["grpc", "http"] | None = None
    insecure: bool = True
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    compression: Literal["gzip", "none"] = "gzip"
    timeout: float = Field(10.0, gt=0, description="Seconds one export may take.")
    interval: float = Field(60.0, gt=0, description="Seconds between two pushes.")


class MetricsConfig(Strict):
    """Prometheus metrics (``observability.metrics``) and OTLP push."""

    enabled: bool = False
    endpoint: str = Field("/metrics", pattern=r"^/")
    port: int | None = Field(None, ge=0, le=65535)
    namespace: str = Field("hector", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    subsystem: str = Field("", pattern=r"^([a-zA-Z_][a-zA-Z0-9_]*)?$")
    const_labels: dict[str, str] = Field(default_factory=dict)
    otlp: OtlpMetricsConfig = Field(default_factory=OtlpMetricsConfig)


KEEP_PER_SECOND = 10.0
"""Ordinary traces the flight recorder keeps a second when ``sampling_rate`` is unset."""


class KeepConfig(Strict):
    """The flight recorder: which traces are kept whatever the sampling rate."""

    enabled: bool = Field(
        False,
        description="Record every trace, keep (export) the failed, slow, costly, flagged and"
        " head-sampled ones (sampling_rate), drop the rest before encoding.",
    )
    ordinary_per_second: float | None = Field(
        None,
        ge=0,
        description="Also keep up to this many ordinary traces a second (first come): a quiet"
        " server shows every trace, a busy one exports a bounded number. Default: 10 when"
        " sampling_rate is unset, else 0.",
    )
    slower_than: float | Literal["p99"] | None = Field(
        "p99",
        description="Keep traces slower than this many seconds, or than the p99 of the last"
        " 1,000 traces (within 5 minutes; from 100 on).",
    )
    costlier_than: int | None = Field(
        20000, ge=1, description="Keep traces whose model calls used more tokens."
    )
    costlier_than_usd: float | None = Field(
        None, gt=0, description="Keep traces whose model calls cost more (llms.*.pricing)."
    )

    @field_validator("slower_than")
    @classmethod
    def _positive_seconds(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, int | float) and value <= 0:
            raise ValueError("must be greater than 0 (seconds), or p99")
        return value

    max_traces: int = Field(10000, ge=10, description="Traces held while they run.")
    max_spans_per_trace: int = Field(1000, ge=10, description="Spans held per trace.")


class TracingConfig(Strict):
    """OpenTelemetry tracing (``observability.tracing``)."""

    enabled: bool = False
    exporter: Literal["otlp", "jaeger", "zipkin", "stdout"] = "otlp"
    endpoint: str = "localhost:4317"
    protocol: Literal["grpc", "http"] | None = None
    insecure: bool = True
    sampling_rate: float = Field(1.0, ge=0.0, le=1.0)
    service_name: str = "hector"
    service_version: str | None = None
    capture_payloads: bool = False
    payload_max_chars: int = Field(
        4096, ge=64, description="Captured prompts/completions are cut to this many characters."
    )
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    compression: Literal["gzip", "none"] = "gzip"
    timeout: float = Field(10.0, gt=0, description="Seconds one export may take.")
    environment: str | None = Field(None, description="deployment.environment resource value.")
    export_process: bool | None = Field(
        None,
        description="Encode and send spans from a child process, so exporting never takes the"
        " server's CPU (about 60 MB more memory); false: on a thread of the server. Default:"
        " a child process when sampling_rate is 0.5 or more (most traces exported).",
    )
    keep: KeepConfig = Field(default_factory=KeepConfig)

    @model_validator(mode="after")
    def _recorder_samples_less(self) -> TracingConfig:
        """With the flight recorder on and ``sampling_rate`` unset, ordinary traces are kept
        up to ``KEEP_PER_SECOND`` a second, none by ratio (failed, slow, costly and flagged
        ones always); a ``sampling_rate`` that is set is exact unless
        ``ordinary_per_second`` is set too."""
        keep = self.keep
        if keep.enabled and "sampling_rate" not in self.model_fields_set:
            object.__setattr__(self, "sampling_rate", 0.0)
            if keep.ordinary_per_second is None:
                object.__setattr__(keep, "ordinary_per_second", KEEP_PER_SECOND)
        return self


class ConsoleConfig(Strict):
    """The run console (``GET /console``): runs in flight, recent traces and their logs."""

    enabled: bool = Field(False, description="Serve /console (behind the API's auth).")
    max_traces: int = Field(100, ge=1, le=10_000, description="Recent traces held.")
    max_trace_kb: int = Field(256, ge=4, le=65_536, description="Size a held trace is cut to.")


class ObservabilityConfig(Strict):
    """Metrics, tracing and the run console."""

    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)


class LoggingConfig(Strict):
    """Process log output."""

    level: LogLevel = "info"
    format: LogFormat = "text"
    file: str | None = Field(None, description="Log file path (default: stderr).")
    redact: list[str] = Field(
        default_factory=list,
        description="PII to mask in logs and captured payloads: email, phone, card, ssn, "
        "or a regex (replaced by [REDACTED]).",
    )

    @field_validator("redact")
    @classmethod
    def _valid_rules(cls, rules: list[str]) -> list[str]:
        for rule in rules:
            try:
                compile_rule(rule)
            except re.error as exc:
                raise PydanticCustomError(
                    "redact",
                    "'{rule}' is neither email, phone, card, ssn nor a valid regex ({error})",
                    {"rule": rule, "error": str(exc)},
                ) from None
        return rules
