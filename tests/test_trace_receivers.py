"""The fake trace receivers in ``tests/fakes/trace_receivers.py``, fed by the real OTel SDK."""

from __future__ import annotations

import gzip
import json
import socket
import time
from typing import Any

import grpc
import httpx
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, format_span_id, format_trace_id

from tests.fakes.trace_receivers import (
    OTLPGrpcReceiver,
    OTLPHttpReceiver,
    ReceivedSpan,
    ZipkinReceiver,
    children,
    closed_port,
    one,
    roots,
    span_tree,
)

pytestmark = pytest.mark.timeout(30)

AUTH = {"authorization": "Bearer xyz"}
TREE = """\
POST /a2a
  invoke_agent assistant
    chat demo
    execute_tool echo"""
AGENT_ATTRS: dict[str, Any] = {
    "gen_ai.agent.name": "assistant",
    "gen_ai.request.temperature": 0.5,
    "gen_ai.request.stream": False,
    "gen_ai.response.finish_reasons": ["stop", "tool_calls"],
}
CHAT_ATTRS: dict[str, Any] = {"gen_ai.usage.input_tokens": 11, "gen_ai.usage.output_tokens": 7}


def emit(exporter: SpanExporter) -> tuple[list[ReadableSpan], set[SpanExportResult]]:
    """Send the agent-shaped tree through ``exporter``: the SDK's spans, the export results."""
    memory = InMemorySpanExporter()
    results: list[SpanExportResult] = []

    class Recording(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            results.append(exporter.export(spans))
            return results[-1]

        def shutdown(self) -> None:
            exporter.shutdown()

    provider = TracerProvider(resource=Resource.create({"service.name": "hector-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(Recording()))
    tracer = provider.get_tracer("hector.test")
    with (
        tracer.start_as_current_span(
            "POST /a2a", kind=SpanKind.SERVER, attributes={"http.request.method": "POST"}
        ),
        tracer.start_as_current_span("invoke_agent assistant", attributes=AGENT_ATTRS),
    ):
        with tracer.start_as_current_span("chat demo", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes(CHAT_ATTRS)
            chat.set_status(Status(StatusCode.OK))
        with tracer.start_as_current_span(
            "execute_tool echo", record_exception=False, set_status_on_exception=False
        ) as tool:
            tool.add_event("exception", {"exception.type": "ToolError", "attempt": 2})
            tool.set_status(Status(StatusCode.ERROR, "boom"))
    assert provider.force_flush(5000)
    provider.shutdown()
    return list(memory.get_finished_spans()), set(results)


def check_tree(got: list[ReceivedSpan], sent: list[ReadableSpan], *, typed: bool) -> None:
    """``got`` is exactly ``sent``: ids, links, kinds, status, events, resource.

    ``typed`` is False for Zipkin, whose tags and event values arrive as strings.
    """
    assert len(got) == len(sent) == 4
    assert span_tree(got) == TREE
    ids = {
        s.name: (format_trace_id(c.trace_id), format_span_id(c.span_id))
        for s in sent
        if (c := s.get_span_context())
    }
    assert {s.trace_id for s in got} == {ids["POST /a2a"][0]}
    for s in got:
        assert (s.trace_id, s.span_id) == ids[s.name]
        assert s.resource["service.name"] == "hector-test"
        assert s.scope == "hector.test"
        assert 0 < s.start_ns <= s.end_ns

    (server,) = roots(got)
    assert server.parent_span_id is None
    assert (server.kind, server.status) == ("SERVER", "UNSET")
    assert server.attributes["http.request.method"] == "POST"
    (agent,) = children(got, server)
    assert (agent.name, agent.kind, agent.parent_span_id) == (
        "invoke_agent assistant",
        "INTERNAL",
        server.span_id,
    )
    chat, tool = children(got, agent)
    assert (chat.kind, chat.status, chat.events) == ("CLIENT", "OK", [])
    assert (tool.status, tool.status_message) == ("ERROR", "boom")
    assert tool.events == [("exception", {"exception.type": "ToolError", "attempt": 2})]
    assert one(got, "chat demo") is chat
    if typed:
        assert agent.attributes == AGENT_ATTRS
        assert chat.attributes == CHAT_ATTRS
        assert tool.attributes == {}
    else:
        assert (
            agent.attributes.items()
            >= {
                "gen_ai.agent.name": "assistant",
                "gen_ai.request.temperature": "0.5",
                "gen_ai.request.stream": "false",
                "gen_ai.response.finish_reasons": '["stop","tool_calls"]',
            }.items()
        )
        assert chat.attributes.items() >= {"gen_ai.usage.input_tokens": "11"}.items()


# -- OTLP/gRPC -----------------------------------------------------------------------------


def test_grpc_receives_the_tree_with_headers_and_gzip() -> None:
    with OTLPGrpcReceiver() as rx:
        exporter = GrpcExporter(
            endpoint=rx.endpoint,
            insecure=True,
            headers=AUTH,
            compression=grpc.Compression.Gzip,
            timeout=5,
        )
        sent, results = emit(exporter)
        got = rx.wait_for(lambda s: len(s) >= 4)
        assert results == {SpanExportResult.SUCCESS}
        check_tree(got, sent, typed=True)
        assert rx.endpoint == f"127.0.0.1:{rx.port}"
        assert len(rx.headers) == 4  # SimpleSpanProcessor: one export per span
        assert all(h["authorization"] == "Bearer xyz" for h in rx.headers)
        assert rx.headers[0]["user-agent"].startswith("OTel-OTLP-Exporter-Python")


def test_grpc_without_gzip_proves_the_exporter_compresses() -> None:
    with OTLPGrpcReceiver(accept_gzip=False) as rx:
        gzipped = GrpcExporter(
            endpoint=rx.endpoint, insecure=True, compression=grpc.Compression.Gzip, timeout=2
        )
        assert emit(gzipped)[1] == {SpanExportResult.FAILURE}
        assert rx.headers == []
        plain = GrpcExporter(endpoint=rx.endpoint, insecure=True, timeout=2)
        assert emit(plain)[1] == {SpanExportResult.SUCCESS}
        assert len(rx.wait_for(lambda s: len(s) == 4)) == 4


def test_grpc_refuse_and_delay() -> None:
    request = ExportTraceServiceRequest()
    with OTLPGrpcReceiver(refuse=True) as rx, grpc.insecure_channel(rx.endpoint) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            TraceServiceStub(channel).Export(request, metadata=(("x-probe", "1"),), timeout=2)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert rx.wait_for_requests(1)[0]["x-probe"] == "1"
        assert rx.spans == []
    began = time.monotonic()
    with OTLPGrpcReceiver(delay=60) as rx, grpc.insecure_channel(rx.endpoint) as channel:
        with pytest.raises(grpc.RpcError) as slow:
            TraceServiceStub(channel).Export(request, timeout=0.2)
        assert slow.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - began < 5  # stop() cuts the delay short


# -- OTLP/HTTP -----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.NoCompression])
def test_http_receives_the_tree(compression: Compression) -> None:
    with OTLPHttpReceiver() as rx:
        assert rx.traces_url == f"http://127.0.0.1:{rx.port}/v1/traces"
        exporter = HttpExporter(
            endpoint=rx.traces_url, headers=AUTH, compression=compression, timeout=5
        )
        sent, results = emit(exporter)
        got = rx.wait_for(lambda s: len(s) >= 4)
        assert results == {SpanExportResult.SUCCESS}
        check_tree(got, sent, typed=True)
        headers = rx.headers[0]
        assert headers["authorization"] == "Bearer xyz"
        assert headers["content-type"] == "application/x-protobuf"
        gzipped = compression is Compression.Gzip
        assert (headers.get("content-encoding") == "gzip") is gzipped


def test_http_rejects_what_is_not_otlp_protobuf() -> None:
    with OTLPHttpReceiver() as rx, httpx.Client(timeout=5) as http:
        wrong_type = http.post(rx.traces_url, content=b"{}", headers={"content-type": "x/y"})
        assert wrong_type.status_code == 415
        garbage = http.post(
            rx.traces_url,
            content=gzip.compress(b"\xff\xff\xff"),
            headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"},
        )
        assert garbage.status_code == 400
        empty = http.post(
            rx.traces_url, content=b"", headers={"content-type": "application/x-protobuf"}
        )
        assert (empty.status_code, empty.content) == (200, b"")  # an empty response message
        assert rx.spans == []


def test_http_refuse_and_delay() -> None:
    body = ExportTraceServiceRequest().SerializeToString()
    proto = {"content-type": "application/x-protobuf", "authorization": "Bearer xyz"}
    with OTLPHttpReceiver(refuse=True) as rx, httpx.Client(timeout=5) as http:
        assert http.post(rx.traces_url, content=body, headers=proto).status_code == 503
        assert rx.wait_for_requests(1)[0]["authorization"] == "Bearer xyz"
    began = time.monotonic()
    with OTLPHttpReceiver(delay=60) as rx, httpx.Client(timeout=0.2) as http:
        with pytest.raises(httpx.TimeoutException):
            http.post(rx.traces_url, content=body, headers=proto)
        assert rx.headers == []  # still held back
    assert time.monotonic() - began < 5


# -- Zipkin --------------------------------------------------------------------------------


def test_zipkin_receives_the_tree_from_the_real_exporter() -> None:
    with ZipkinReceiver() as rx:
        assert rx.url == f"http://127.0.0.1:{rx.port}/api/v2/spans"
        session = requests.Session()
        session.headers.update({"Authorization": "Bearer xyz"})  # the exporter's only way
        sent, results = emit(ZipkinExporter(endpoint=rx.url, session=session, timeout=5))
        got = rx.wait_for(lambda s: len(s) >= 4)
        assert results == {SpanExportResult.SUCCESS}
        check_tree(got, sent, typed=False)
        assert all(h["authorization"] == "Bearer xyz" for h in rx.headers)
        assert rx.headers[0]["content-type"] == "application/json"


def test_zipkin_hand_written_payload() -> None:
    spans = [
        {
            "traceId": "00f067aa0ba902b7",  # 64-bit trace id
            "id": "1",
            "name": "get /users",
            "kind": "SERVER",
            "timestamp": 1_700_000_000_000_000,
            "duration": 1500,
            "localEndpoint": {"serviceName": "web"},
            "tags": {"http.status_code": "500", "error": "oops"},
            "annotations": [{"timestamp": 1_700_000_000_000_100, "value": "ws"}],
        },
        {"traceId": "00f067aa0ba902b7", "id": "2", "parentId": "1", "name": "q"},
    ]
    with ZipkinReceiver() as rx, httpx.Client(timeout=5) as http:
        response = http.post(
            rx.url,
            content=gzip.compress(json.dumps(spans).encode()),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        assert response.status_code == 202
        root, child = rx.wait_for(lambda s: len(s) == 2)
        assert root == ReceivedSpan(
            trace_id="0000000000000000" + "00f067aa0ba902b7",
            span_id="0000000000000001",
            parent_span_id=None,
            name="get /users",
            kind="SERVER",
            attributes={"http.status_code": "500"},
            status="ERROR",
            status_message="oops",
            events=[("ws", {})],
            resource={"service.name": "web"},
            scope="",
            start_ns=1_700_000_000_000_000_000,
            end_ns=1_700_000_000_001_500_000,
        )
        assert (child.parent_span_id, child.kind, child.status) == (
            root.span_id,
            "INTERNAL",
            "UNSET",
        )
        assert span_tree(rx.spans) == "get /users\n  q"
        bad = http.post(rx.url, content=b'{"not": "a list"}')
        assert bad.status_code == 400


# -- helpers -------------------------------------------------------------------------------


def test_wait_for_times_out_with_what_arrived() -> None:
    with ZipkinReceiver() as rx, httpx.Client(timeout=5) as http:
        span = {"traceId": "a" * 32, "id": "b" * 16, "name": "lonely"}
        assert http.post(rx.url, json=[span]).status_code == 202
        with pytest.raises(AssertionError, match=r"(?s)no 2 spans within 0.05s.*lonely"):
            rx.wait_for(lambda s: len(s) >= 2, timeout=0.05, what="2 spans")
        with pytest.raises(AssertionError, match="1 export requests"):
            rx.wait_for_requests(2, timeout=0.05)
        with pytest.raises(AssertionError, match="expected one span 'x'"):
            one(rx.spans, "x")
        rx.clear()
        assert rx.spans == [] and rx.headers == []


def test_closed_port_refuses() -> None:
    port = closed_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
