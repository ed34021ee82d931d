"""The OTLP exporter variables of the OpenTelemetry specification, as the Python SDK's
exporters read them: where spans really arrive, through the real exporters, at our
receivers (tests/fakes/trace_receivers)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from hector_py.config.observability import ObservabilityConfig, TracingConfig
from hector_py.observability.telemetry import Telemetry
from tests.conftest import Server, clean_env
from tests.fakes.trace_receivers import OTLPGrpcReceiver, OTLPHttpReceiver, closed_port

PROBE = "select probe"
SAMPLED_PARENT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@dataclass
class Receivers:
    grpc: OTLPGrpcReceiver
    http: OTLPHttpReceiver
    gateway: OTLPHttpReceiver  # behind a base path, as Grafana Cloud's /otlp

    def by_name(self, name: str) -> OTLPGrpcReceiver | OTLPHttpReceiver:
        receiver: OTLPGrpcReceiver | OTLPHttpReceiver = getattr(self, name)
        return receiver

    def clear(self) -> None:
        for receiver in (self.grpc, self.http, self.gateway):
            receiver.clear()


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    with (
        OTLPGrpcReceiver() as grpc,
        OTLPHttpReceiver() as http,
        OTLPHttpReceiver(prefix="/otlp") as gateway,
    ):
        yield Receivers(grpc, http, gateway)


def export_probe(env: dict[str, str], headers: dict[str, str] | None = None) -> Telemetry:
    """A telemetry with only ``tracing.enabled`` configured and ``env`` as the
    environment; one span (under ``headers``' parent if given), flushed on return."""
    telemetry = Telemetry(ObservabilityConfig(tracing=TracingConfig(enabled=True)), environ=env)
    with (
        telemetry.http_request("GET", "/probe", "/probe", headers or {}),
        telemetry.store_op("select", "probe", "sqlite"),
    ):
        pass
    asyncio.run(telemetry.shutdown(10.0))
    return telemetry


EnvOf = Callable[[Receivers], dict[str, str]]
G, T = "OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_"
DEAD = f"http://127.0.0.1:{closed_port()}"

# (case, environment, the receiver the spans must reach)
TABLE: list[tuple[str, EnvOf, str]] = [
    (
        "generic URL on the gRPC port, protocol grpc (Kubernetes/OTel Operator form)",
        lambda r: {f"{G}ENDPOINT": f"http://{r.grpc.endpoint}", f"{G}PROTOCOL": "grpc"},
        "grpc",
    ),
    (
        "traces protocol grpc wins over the generic http/protobuf",
        lambda r: {
            f"{G}ENDPOINT": f"http://{r.grpc.endpoint}",
            f"{G}PROTOCOL": "http/protobuf",
            f"{T}PROTOCOL": "grpc",
        },
        "grpc",
    ),
    (
        "traces endpoint host:port with protocol grpc",
        lambda r: {f"{T}ENDPOINT": r.grpc.endpoint, f"{G}PROTOCOL": "grpc"},
        "grpc",
    ),
    (
        "traces endpoint wins over a dead generic one (grpc)",
        lambda r: {
            f"{G}ENDPOINT": DEAD,
            f"{T}ENDPOINT": f"http://{r.grpc.endpoint}",
            f"{T}PROTOCOL": "grpc",
        },
        "grpc",
    ),
    (
        "generic URL, http/protobuf: /v1/traces appended",
        lambda r: {f"{G}ENDPOINT": r.http.endpoint, f"{G}PROTOCOL": "http/protobuf"},
        "http",
    ),
    (
        "generic URL with a base path: /v1/traces appended to it",
        lambda r: {f"{G}ENDPOINT": r.gateway.base_url, f"{G}PROTOCOL": "http/protobuf"},
        "gateway",
    ),
    (
        "generic URL with a base path and a trailing slash",
        lambda r: {f"{G}ENDPOINT": r.gateway.base_url + "/", f"{T}PROTOCOL": "http/protobuf"},
        "gateway",
    ),
    (
        "traces URL used as is, over a dead generic one",
        lambda r: {
            f"{G}ENDPOINT": DEAD,
            f"{T}ENDPOINT": r.gateway.traces_url,
            f"{G}PROTOCOL": "http/protobuf",
        },
        "gateway",
    ),
    (
        "traces protocol http/protobuf wins over the generic grpc",
        lambda r: {
            f"{G}ENDPOINT": r.http.endpoint,
            f"{G}PROTOCOL": "grpc",
            f"{T}PROTOCOL": "http/protobuf",
        },
        "http",
    ),
    (
        "no protocol: a URL not on the gRPC port is OTLP/HTTP",
        lambda r: {f"{T}ENDPOINT": r.http.traces_url},
        "http",
    ),
]


@pytest.mark.parametrize(("case", "env_of", "where"), TABLE, ids=[c for c, _, _ in TABLE])
def test_spans_arrive_where_the_environment_says(
    receivers: Receivers, case: str, env_of: EnvOf, where: str
) -> None:
    receivers.clear()
    telemetry = export_probe(env_of(receivers))
    target = receivers.by_name(where)
    spans = target.wait_for(lambda got: any(s.name == PROBE for s in got), what=case)
    assert {s.name for s in spans} == {"GET /probe", PROBE}
    others = [r for r in (receivers.grpc, receivers.http, receivers.gateway) if r is not target]
    assert all(not r.spans for r in others)
    health = telemetry.health()["tracing"]
    assert health["status"] == "ok"
    assert health["endpoint"].endswith(f":{target.port}" if where == "grpc" else "/v1/traces")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_headers_are_url_decoded_and_the_traces_form_wins(
    receivers: Receivers, protocol: str
) -> None:
    receivers.clear()
    receiver = receivers.grpc if protocol == "grpc" else receivers.http
    endpoint = f"http://{receivers.grpc.endpoint}" if protocol == "grpc" else receiver.endpoint
    env = {
        f"{G}ENDPOINT": endpoint,
        f"{G}PROTOCOL": protocol,
        f"{G}HEADERS": "authorization=Basic%20Z3JhZmFuYTprZXk=,x-scope-orgid=generic",
        f"{T}HEADERS": "authorization=Basic%20Z3JhZmFuYTprZXk=,x-team=a%2Cb",
    }
    export_probe(env)
    [headers] = receiver.wait_for_requests()
    assert headers["authorization"] == "Basic Z3JhZmFuYTprZXk="
    assert headers["x-team"] == "a,b"
    assert "x-scope-orgid" not in headers  # the signal-specific list replaces the generic one


@pytest.mark.parametrize(("value", "encoding"), [("none", None), ("gzip", "gzip")])
def test_http_compression_from_the_environment(
    receivers: Receivers, value: str, encoding: str | None
) -> None:
    receivers.clear()
    env = {
        f"{G}ENDPOINT": receivers.http.endpoint,
        f"{G}PROTOCOL": "http/protobuf",
        f"{T}COMPRESSION": value,
    }
    export_probe(env)
    [headers] = receivers.http.wait_for_requests()
    assert headers.get("content-encoding") == encoding


def test_grpc_compression_none_reaches_a_collector_without_gzip() -> None:
    # Our default is gzip, which this collector rejects: only "none" can arrive.
    with OTLPGrpcReceiver(accept_gzip=False) as receiver:
        env = {
            f"{G}ENDPOINT": f"http://{receiver.endpoint}",
            f"{G}PROTOCOL": "grpc",
            f"{G}COMPRESSION": "none",
        }
        export_probe(env)
        receiver.wait_for(lambda got: any(s.name == PROBE for s in got))


@pytest.mark.parametrize(
    ("sampler", "kept"),
    [
        ("traceidratio", False),  # the root sampler: a sampled parent does not keep it
        ("parentbased_traceidratio", True),
        ("always_off", False),
        ("parentbased_always_off", True),
    ],
)
def test_sampler_from_the_environment(receivers: Receivers, sampler: str, kept: bool) -> None:
    receivers.clear()
    env = {
        f"{G}ENDPOINT": receivers.http.endpoint,
        f"{G}PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": sampler,
        "OTEL_TRACES_SAMPLER_ARG": "0",
    }
    export_probe(env, SAMPLED_PARENT)  # flushed: whatever was sampled has arrived
    assert bool(receivers.http.spans) is kept


@pytest.mark.parametrize(
    "off", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}], ids=str
)
def test_disabled_sdk_or_no_exporter_is_shown_as_tracing_off(
    serve: Any, receivers: Receivers, off: dict[str, str]
) -> None:
    receivers.clear()
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receivers.http.endpoint, **off)
    server: Server = serve("--observe", env=env)
    health = httpx.get(server.url + "/health").json()
    assert "tracing" not in health["components"]
    assert server.stop() == 0
    assert any("tracing off" in line for line in server.log_lines())
    assert not receivers.http.spans


def test_console_exporter_from_the_environment(receivers: Receivers) -> None:
    telemetry = Telemetry(
        ObservabilityConfig(tracing=TracingConfig(enabled=True)),
        environ={"OTEL_TRACES_EXPORTER": "console"},
    )
    assert telemetry.health()["tracing"]["exporter"] == "stdout"
    asyncio.run(telemetry.shutdown(1.0))


def test_genai_metrics_are_pushed_over_otlp_from_the_environment(receivers: Receivers) -> None:
    env = {
        "OTEL_METRICS_EXPORTER": "otlp",
        f"{G}METRICS_ENDPOINT": receivers.http.endpoint + "/v1/metrics",
        f"{G}PROTOCOL": "http/protobuf",
    }
    telemetry = Telemetry(ObservabilityConfig(), environ=env)
    with telemetry.llm_call("a", "openai", "asked", stream=False) as scope:
        scope.usage(11, 7)
        scope.answer("answered-1", "id-1", "stop")
    asyncio.run(telemetry.shutdown(10.0))
    tokens = receivers.http.wait_for_metric("gen_ai.client.token.usage")
    by_type = {p.attributes["gen_ai.token.type"]: p for p in tokens}
    assert (by_type["input"].sum, by_type["output"].sum) == (11, 7)
    assert by_type["input"].attributes["gen_ai.response.model"] == "answered-1"
    assert by_type["input"].attributes["gen_ai.provider.name"] == "openai"
    [duration] = receivers.http.wait_for_metric("gen_ai.client.operation.duration")
    assert duration.unit == "s" and duration.count == 1
