"""OTLP metrics push (``observability.metrics.otlp``): the OTel GenAI client metrics,
``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``, through the SDK's
periodic reader and OTLP exporter, for backends that take no Prometheus scrape."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from hector_py import __version__
from hector_py.config.observability import ObservabilityConfig, OtlpMetricsConfig
from hector_py.observability.buckets import LLM_BUCKETS, TOKEN_BUCKETS
from hector_py.observability.exporters import (
    Target,
    otlp_arguments,
    resolve_headers,
    resolve_target,
)
from hector_py.observability.scopes import LLMScope
from hector_py.observability.tracing import build_resource

log = logging.getLogger("hector.metrics")


def _exporter(
    target: Target, config: OtlpMetricsConfig, environ: Mapping[str, str]
) -> MetricExporter:
    headers = resolve_headers(config, environ, "metrics")
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcExporter,
        )

        return GrpcExporter(**otlp_arguments(target, headers))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpExporter,
    )

    return HttpExporter(**otlp_arguments(target, headers))


def otlp_metrics(config: ObservabilityConfig, environ: Mapping[str, str]) -> OtlpMetrics | None:
    """The push when ``metrics.otlp.enabled`` (or, unset, ``OTEL_METRICS_EXPORTER=otlp``)
    and the SDK is not disabled (``OTEL_SDK_DISABLED=true``)."""
    otlp = config.metrics.otlp
    enabled = otlp.enabled
    if "enabled" not in otlp.model_fields_set:
        enabled = environ.get("OTEL_METRICS_EXPORTER", "").split(",")[0].strip() == "otlp"
    if not enabled or environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return OtlpMetrics(otlp, build_resource(config.tracing, environ), environ)


class OtlpMetrics:
    """The GenAI client metrics, pushed every ``interval`` seconds."""

    def __init__(
        self, config: OtlpMetricsConfig, resource: Resource, environ: Mapping[str, str]
    ) -> None:
        self.target = resolve_target(config, environ, "metrics")
        reader = PeriodicExportingMetricReader(
            _exporter(self.target, config, environ),
            export_interval_millis=config.interval * 1000,
            export_timeout_millis=config.timeout * 1000,
        )
        self.provider = MeterProvider(metric_readers=[reader], resource=resource)
        meter = self.provider.get_meter("hector_py", __version__)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens per model call",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Model call duration",
            explicit_bucket_boundaries_advisory=LLM_BUCKETS,
        )
        log.info("metrics pushed to %s via %s", self.target.endpoint, self.target.protocol)

    def record(self, provider: str, model: str, scope: LLMScope, elapsed: float) -> None:
        """One model call's duration and tokens (none for a failed call without usage)."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        if scope.response_model:
            attributes["gen_ai.response.model"] = scope.response_model
        if scope.error_type is not None:
            self._duration.record(elapsed, {**attributes, "error.type": scope.error_type})
            if not (scope.prompt_tokens or scope.completion_tokens):
                return
        else:
            self._duration.record(elapsed, attributes)
        self._tokens.record(scope.prompt_tokens, {**attributes, "gen_ai.token.type": "input"})
        self._tokens.record(scope.completion_tokens, {**attributes, "gen_ai.token.type": "output"})

    async def shutdown(self, timeout: float) -> None:
        """Push what is left and stop, waiting at most ``timeout`` seconds."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self.provider.shutdown), timeout)
        except TimeoutError:
            log.warning("metrics push did not finish within %.1f s", timeout)
