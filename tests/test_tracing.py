"""Tracing through the real server into real-protocol receivers (tests/fakes/trace_receivers)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FakeLLM, Server, clean_env, hector, rpc, start_fake_llm, v03_message
from tests.fakes.trace_receivers import (
    OTLPGrpcReceiver,
    OTLPHttpReceiver,
    ReceivedSpan,
    ZipkinReceiver,
    children,
    closed_port,
    one,
    roots,
)

TOOL_ASK = 'use calculator {"expression": "6*7"}'
PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"


def tracing_config(
    tmp_path: Path,
    tracing: str,
    llm: str = "provider: demo\n    stream_delay: 0",
    storage: str = "{type: memory}",
) -> Path:
    path = tmp_path / "traced.yaml"
    path.write_text(
        f"llms:\n  default:\n    {llm}\n"
        "agents:\n  assistant:\n    tools: [calculator]\n"
        f"storage: {storage}\n"
        f"observability:\n  tracing:\n    enabled: true\n{tracing}"
    )
    return path


def product_tree(spans: list[ReceivedSpan]) -> tuple[ReceivedSpan, ReceivedSpan, list[str]]:
    """(server span, invoke_agent span, names of invoke_agent's non-db children)."""
    [server] = [s for s in roots(spans) if s.kind == "SERVER"]
    agent = one(children(spans, server), "invoke_agent assistant")
    steps = [s.name for s in children(spans, agent) if not s.attributes.get("db.system.name")]
    return server, agent, steps


def parent_header(flags: str) -> str:
    """The test's parent span, ``flags`` 01 (sampled) or 00 (not)."""
    return f"00-{PARENT_TRACE}-{PARENT_SPAN}-{flags}"


def send_with_parent(server: Server, flags: str, text: str) -> httpx.Response:
    """A2A message/send under the test's parent span."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message(text)}
    headers = {"traceparent": parent_header(flags)}
    return httpx.post(server.url + "/", headers=headers, timeout=20, json=body)


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    fake = start_fake_llm(
        "openai", "--tool-call", 'calculator:{"expression":"6*7"}', "--usage", "11,7"
    )
    yield fake
    fake.stop()


def test_otlp_grpc_tree_tokens_headers_and_propagation(
    serve: Any, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    with OTLPGrpcReceiver() as receiver:
        config = tracing_config(
            tmp_path,
            f"    endpoint: {receiver.endpoint}\n"
            "    headers:\n      Authorization: Bearer ${TRACE_KEY_FOR_TEST}\n",
            llm=f"provider: openai\n    model: gpt-4o\n    api_key: sk-test\n"
            f"    base_url: {fake_llm.base_url}",
            storage=f"{{type: sqlite, path: '{tmp_path / 'traced.db'}'}}",
        )
        server: Server = serve(
            "-c",
            str(config),
            "--log-format",
            "json",
            "--log-level",
            "debug",
            env=clean_env(TRACE_KEY_FOR_TEST="xyz-123"),
        )
        reply = send_with_parent(server, "01", "what is 6*7?")
        assert "42" in reply.text
        spans = receiver.wait_for(
            lambda got: any(s.kind == "SERVER" for s in got), what="the server span"
        )
    root, agent, steps = product_tree(spans)
    assert (root.trace_id, root.parent_span_id) == (PARENT_TRACE, PARENT_SPAN)
    assert root.name == "POST /" and root.attributes["http.route"] == "/"
    assert {s.trace_id for s in spans} == {PARENT_TRACE}
    assert steps == ["chat gpt-4o", "execute_tool calculator", "chat gpt-4o"]
    assert agent.attributes["gen_ai.agent.name"] == "assistant"
    assert agent.attributes["gen_ai.provider.name"] == "openai"
    assert agent.attributes["gen_ai.conversation.id"]
    chats = [s for s in children(spans, agent) if s.name == "chat gpt-4o"]
    for chat in chats:
        assert chat.kind == "CLIENT"
        assert chat.attributes["gen_ai.usage.input_tokens"] == 11
        assert chat.attributes["gen_ai.usage.output_tokens"] == 7
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["server.address"] == "127.0.0.1"
    tool = one(children(spans, agent), "execute_tool calculator")
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert tool.attributes["gen_ai.tool.call.id"]
    db = [s for s in spans if "db.system.name" in s.attributes]
    assert {s.name for s in db} == {"upsert tasks", "select messages", "insert messages"}
    for span in db:
        assert span.kind == "CLIENT" and span.attributes["db.system.name"] == "sqlite"
        assert span.attributes["db.operation.name"] in span.name
        assert span.attributes["db.collection.name"] in span.name
    assert all(h.get("authorization") == "Bearer xyz-123" for h in receiver.headers)
    # the upstream call carried our trace, parented by a chat span
    upstream = fake_llm.requests()[0]["headers"]
    traceparent = {k.lower(): v for k, v in upstream.items()}["traceparent"]
    _, trace_id, parent_id, _ = traceparent.split("-")
    assert trace_id == PARENT_TRACE and parent_id in {c.span_id for c in chats}
    # log lines of the request carry the same trace id
    assert server.stop() == 0
    records = [json.loads(line) for line in server.log_lines()]
    request_logs = [r for r in records if r.get("request_id")]
    assert len(request_logs) >= 2  # the agent's debug lines and the access line
    assert all(r.get("trace_id") == PARENT_TRACE for r in request_logs)


@pytest.mark.parametrize("kind", ["http", "zipkin", "jaeger"])
def test_other_exporters_receive_the_agent_tree(serve: Any, tmp_path: Path, kind: str) -> None:
    receiver_type = ZipkinReceiver if kind == "zipkin" else OTLPHttpReceiver
    with receiver_type() as receiver:
        if kind == "zipkin":
            settings = f"    exporter: zipkin\n    endpoint: {receiver.url}\n"
        elif kind == "jaeger":  # jaeger sends OTLP (the Thrift exporter is gone)
            settings = f"    exporter: jaeger\n    endpoint: {receiver.endpoint}\n"
        else:
            settings = f"    endpoint: 127.0.0.1:{receiver.port}\n    protocol: http\n"
        server: Server = serve("-c", str(tracing_config(tmp_path, settings)))
        rpc(server.url + "/agents/assistant", "message/send", v03_message(TOOL_ASK))
        spans = receiver.wait_for(
            lambda got: any(s.kind == "SERVER" for s in got), what="the server span"
        )
    root, _, steps = product_tree(spans)
    assert root.name == "POST /agents/{name}"
    assert steps == ["chat demo", "execute_tool calculator", "chat demo"]
    names = sorted(s.name for s in spans)  # no db spans: the in-memory store makes none
    assert names == sorted([root.name, "invoke_agent assistant", *steps])
    assert len({s.trace_id for s in spans}) == 1
    if kind != "zipkin":
        assert receiver.headers[0].get("content-encoding") == "gzip"


def test_sampling_ratio_and_sampled_parent(serve: Any, tmp_path: Path) -> None:
    with OTLPHttpReceiver() as receiver:
        config = tracing_config(
            tmp_path, f"    endpoint: {receiver.traces_url}\n    sampling_rate: 0.1\n"
        )
        server: Server = serve("-c", str(config))
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(2000):
                assert client.get("/agents").status_code == 200
            parent = {"traceparent": parent_header("01")}
            for _ in range(20):
                client.get("/agents", headers=parent)
        assert server.stop() == 0  # flushes what is queued
        traces = {s.trace_id for s in receiver.spans}
    assert PARENT_TRACE in traces
    kept = len(traces - {PARENT_TRACE})
    assert 130 <= kept <= 270, kept  # Binomial(2000, 0.1): mean 200, sd 13.4
    assert sum(1 for s in receiver.spans if s.trace_id == PARENT_TRACE) == 20


def test_unsampled_parent_exports_nothing_and_still_propagates(
    serve: Any, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    with OTLPHttpReceiver() as receiver:
        config = tracing_config(
            tmp_path,
            f"    endpoint: {receiver.traces_url}\n",
            llm=f"provider: openai\n    model: gpt-4o\n    api_key: sk-test\n"
            f"    base_url: {fake_llm.base_url}",
        )
        server: Server = serve("-c", str(config), "--log-format", "json", "--log-level", "debug")
        reply = send_with_parent(server, "00", TOOL_ASK)
        assert reply.json()["result"]["status"]["state"] == "completed"
        httpx.get(server.url + "/agents", headers={"traceparent": parent_header("01")})
        assert server.stop() == 0
        # only the sampled request's span arrived; the unsampled run made none
        assert [s.name for s in receiver.spans] == ["GET /agents"]
    # every model call carried the caller's trace, still marked unsampled
    for request in fake_llm.requests():
        traceparent = {k.lower(): v for k, v in request["headers"].items()}["traceparent"]
        version, trace_id, _, flags = traceparent.split("-")
        assert (version, trace_id, flags) == ("00", PARENT_TRACE, "00")
    records = [json.loads(line) for line in server.log_lines()]
    run_logs = [r for r in records if r.get("agent") == "assistant"]
    assert run_logs and all(r.get("trace_id") == PARENT_TRACE for r in run_logs)


def test_dead_collector_costs_nothing_and_is_reported_once(serve: Any, tmp_path: Path) -> None:
    port = closed_port()
    config = tracing_config(tmp_path, f"    endpoint: 127.0.0.1:{port}\n    timeout: 1\n")
    server: Server = serve("-c", str(config), "--log-format", "json")
    deadline = time.monotonic() + 20
    health: dict[str, Any] = {}
    sent = 0
    while time.monotonic() < deadline:
        reply = rpc(server.url + "/", "message/send", v03_message("hello"))
        assert reply["result"]["status"]["state"] == "completed"
        sent += 1
        health = httpx.get(server.url + "/health").json()
        if health["components"]["tracing"]["status"] == "degraded" and sent >= 30:
            break
    assert health["components"]["tracing"]["status"] == "degraded"
    assert health["status"] == "degraded"
    assert httpx.get(server.url + "/health/ready").status_code == 200
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 10
    records = [json.loads(line) for line in server.log_lines()]
    warnings = [r for r in records if r["level"] in ("WARNING", "ERROR")]
    assert len([w for w in warnings if "trace export" in w["msg"]]) == 1, warnings
    assert len(warnings) <= 2, warnings  # plus at most one "flush did not finish"


def test_stdout_exporter_prints_parseable_spans(serve: Any, tmp_path: Path) -> None:
    server: Server = serve(
        "-c", str(tracing_config(tmp_path, "    exporter: stdout\n")), "--log-format", "json"
    )
    rpc(server.url + "/", "message/send", v03_message(TOOL_ASK))
    assert server.stop() == 0
    lines = [json.loads(line) for line in server.log_lines()]
    spans = [line for line in lines if "context" in line and "name" in line]
    names = {span["name"] for span in spans}
    assert {"POST /", "invoke_agent assistant", "chat demo", "execute_tool calculator"} <= names


def test_bad_exporter_settings_are_config_errors(tmp_path: Path) -> None:
    config = tracing_config(tmp_path, "    endpoint: 'localhost:notaport'\n")
    result = hector("serve", "-c", str(config))
    assert result.returncode == 1
    assert "observability.tracing.endpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_tracing_endpoint_flag_alone_turns_on_otlp(serve: Any) -> None:
    with OTLPGrpcReceiver() as receiver:
        server: Server = serve("--tracing-endpoint", receiver.endpoint)
        rpc(server.url + "/", "message/send", v03_message("hi"))
        spans = receiver.wait_for(
            lambda got: any(s.kind == "SERVER" for s in got), what="the server span"
        )
    assert one(spans, "invoke_agent assistant").resource["service.name"] == "hector"


def test_otel_env_applies_where_config_is_silent(serve: Any, tmp_path: Path) -> None:
    with OTLPHttpReceiver() as receiver:
        config = tracing_config(tmp_path, "    service_name: from-config\n")
        env = clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_RESOURCE_ATTRIBUTES="team=agents,service.name=from-env",
            OTEL_TRACES_SAMPLER="parentbased_always_off",
        )
        server: Server = serve("-c", str(config), env=env)
        parent = {"traceparent": parent_header("01")}
        httpx.get(server.url + "/agents", headers=parent)  # a sampled parent is kept
        httpx.get(server.url + "/agents")  # parentbased_always_off: a root is dropped
        spans = receiver.wait_for(bool, what="the sampled request")
        assert server.stop() == 0
    [span] = receiver.spans
    assert span.trace_id == PARENT_TRACE
    assert span.resource["service.name"] == "from-config"  # explicit config wins
    assert span.resource["team"] == "agents"
    assert spans


def test_errors_retries_and_payload_capture_on_spans(serve: Any, tmp_path: Path) -> None:
    fake = start_fake_llm(
        "openai",
        "--fail-first",
        "1",
        "--status",
        "429",
        "--retry-after",
        "0",
        "--reply",
        "the key is sk-live-abcdefghijklmnop ok",
    )
    try:
        with OTLPHttpReceiver() as receiver:
            config = tracing_config(
                tmp_path,
                f"    endpoint: {receiver.traces_url}\n    capture_payloads: true\n",
                llm=f"provider: openai\n    model: gpt-4o\n    api_key: sk-test-secret-999\n"
                f"    base_url: {fake.base_url}\n    retry_backoff: 0",
            )
            server: Server = serve("-c", str(config))
            rpc(server.url + "/", "message/send", v03_message("my token is sk-test-secret-999"))
            spans = receiver.wait_for(
                lambda got: any(s.kind == "SERVER" for s in got), what="the server span"
            )
    finally:
        fake.stop()
    chat = one(spans, "chat gpt-4o")
    events = dict(chat.events)
    assert events["retry"]["retry.reason"] == "429"
    # the GenAI conventions' structured JSON, which Phoenix and Langfuse show
    inputs = json.loads(chat.attributes["gen_ai.input.messages"])
    [user] = [m for m in inputs if m["role"] == "user"]
    [part] = user["parts"]
    assert part["type"] == "text" and part["content"].endswith("my token is [REDACTED]")
    assert "sk-test-secret-999" not in chat.attributes["gen_ai.input.messages"]
    outputs = json.loads(chat.attributes["gen_ai.output.messages"])
    assert outputs == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "the key is [REDACTED] ok"}],
            "finish_reason": "stop",
        }
    ]


def test_failed_llm_call_marks_spans_as_errors(serve: Any, tmp_path: Path) -> None:
    fake = start_fake_llm("anthropic", "--fail-first", "1", "--status", "400")
    try:
        with OTLPHttpReceiver() as receiver:
            config = tracing_config(
                tmp_path,
                f"    endpoint: {receiver.traces_url}\n",
                llm=f"provider: anthropic\n    model: claude-x\n    api_key: k\n"
                f"    base_url: {fake.base_url}",
            )
            server: Server = serve("-c", str(config))
            reply = rpc(server.url + "/", "message/send", v03_message("hi"))
            assert reply["result"]["status"]["state"] == "failed"
            spans = receiver.wait_for(
                lambda got: any(s.kind == "SERVER" for s in got), what="the server span"
            )
    finally:
        fake.stop()
    for name in ("chat claude-x", "invoke_agent assistant"):
        span = one(spans, name)
        assert span.status == "ERROR"
        assert span.attributes["error.type"] == "400"  # the upstream status, not a class
        assert any(event == "exception" for event, _ in span.events)
    chat = one(spans, "chat claude-x")  # nothing answered: no response model, id or tokens
    assert not {"gen_ai.response.model", "gen_ai.response.id"} & set(chat.attributes)
    assert "gen_ai.usage.input_tokens" not in chat.attributes
    server = one(spans, "POST /")  # the failed task is answered with HTTP 200
    assert server.attributes["http.response.status_code"] == 200
    assert server.status == "ERROR" and server.attributes["error.type"] == "400"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["blocking", "streamed"])
def test_chat_span_carries_the_answers_model_id_and_finish_reason(
    serve: Any, tmp_path: Path, provider: str, stream: bool
) -> None:
    fake = start_fake_llm(provider)
    try:
        fake.script({"text": "cut short", "model": "answered-2024-08-06", "truncated": True})
        with OTLPHttpReceiver() as receiver:
            config = tracing_config(
                tmp_path,
                f"    endpoint: {receiver.traces_url}\n",
                llm=f"provider: {provider}\n    model: asked\n    api_key: k\n"
                f"    base_url: {fake.base_url}\n    temperature: 0.2\n    max_tokens: 64",
            )
            server: Server = serve("-c", str(config))
            method = "message/stream" if stream else "message/send"
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": v03_message("hi")}
            headers = {"User-Agent": "probe/1.0"}
            httpx.post(server.url + "/", json=body, headers=headers, timeout=20).raise_for_status()
            spans = receiver.wait_for(
                lambda got: any(s.kind == "SERVER" for s in got), what="the server span"
            )
    finally:
        fake.stop()
    chat = one(spans, "chat asked")
    assert chat.attributes["gen_ai.request.model"] == "asked"
    assert chat.attributes["gen_ai.response.model"] == "answered-2024-08-06"
    assert chat.attributes["gen_ai.response.id"] == (
        "chatcmpl-fake" if provider == "openai" else "msg_fake"
    )
    assert list(chat.attributes["gen_ai.response.finish_reasons"]) == ["length"]
    assert chat.attributes["gen_ai.request.temperature"] == 0.2
    assert chat.attributes["gen_ai.request.max_tokens"] == 64
    request = one(spans, "POST /")
    assert request.attributes["url.scheme"] == "http"
    assert request.attributes["server.address"] == "127.0.0.1"
    assert request.attributes["server.port"] == int(server.url.rsplit(":", 1)[1])
    assert request.attributes["client.address"] == "127.0.0.1"
    assert request.attributes["user_agent.original"] == "probe/1.0"


def test_captured_tool_calls_and_system_instructions_are_json(serve: Any, tmp_path: Path) -> None:
    with OTLPHttpReceiver() as receiver:
        config = tracing_config(tmp_path, f"    endpoint: {receiver.traces_url}\n")
        config.write_text(
            config.read_text().replace(
                "    tools: [calculator]\n",
                "    tools: [calculator]\n    instruction: Be brief.\n",
            )
        )
        env = clean_env(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true")
        server: Server = serve("-c", str(config), env=env)
        rpc(server.url + "/", "message/send", v03_message(TOOL_ASK))
        spans = receiver.wait_for(
            lambda got: any(s.kind == "SERVER" for s in got), what="the server span"
        )
    first, second = [s for s in spans if s.name == "chat demo"]
    assert json.loads(first.attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Be brief."}
    ]
    [call] = json.loads(first.attributes["gen_ai.output.messages"])[0]["parts"]
    assert call["type"] == "tool_call" and call["name"] == "calculator"
    assert call["arguments"] == {"expression": "6*7"}
    [tool_turn] = [
        m for m in json.loads(second.attributes["gen_ai.input.messages"]) if m["role"] == "tool"
    ]
    assert tool_turn["parts"][0]["type"] == "tool_call_response"
    assert tool_turn["parts"][0]["id"] == call["id"]
    tool = one(spans, "execute_tool calculator")
    assert tool.attributes["gen_ai.tool.type"] == "function"
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"expression": "6*7"}
    assert tool.attributes["gen_ai.tool.call.result"] == "42"
