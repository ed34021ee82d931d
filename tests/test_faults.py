"""Upstream fault injection through the real server (issue 8, "Upstream faults").

One server, one fake OpenAI upstream (``tests/fakes/llm_servers.py``, re-scripted per
case), one OTLP/HTTP receiver and one tool server are shared by the module. Each fault
is sent as a batch of requests over both A2A dialects and ``/v1/chat/completions`` at
once; every request must end as a clean JSON-RPC result (a failed task) or HTTP error
with a readable one-line message, within a bound, and the batch must agree in all three
signals: the ``llm_requests_total{status="error"}`` increase, the ``chat`` spans marked
ERROR, and the WARNING log lines (one per request). Afterwards a normal request works.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import FakeLLM, Server, start_fake_llm, start_server, v03_message
from tests.fakes.tool_server import ToolServer
from tests.fakes.trace_receivers import OTLPHttpReceiver, ReceivedSpan, closed_port
from tests.reliability_helpers import (
    HTTP,
    json_logs,
    metric,
    new_trace,
    rpc_body,
    scrape,
    set_script,
    sse_data,
    v1_message,
)

UPSTREAM_KEY = "fault-suite-upstream-key-5d1e"
READ_TIMEOUT = 1.0
TOTAL_TIMEOUT = 1.0
TOOL_TIMEOUT = 0.5


@dataclass
class Rig:
    server: Server
    fake: FakeLLM
    receiver: OTLPHttpReceiver
    tools: ToolServer


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("faults")
    fake = start_fake_llm("openai")
    try:
        with OTLPHttpReceiver() as receiver, ToolServer() as tools:
            llm = (
                "    provider: openai\n    model: gpt-fake\n"
                f"    api_key: {UPSTREAM_KEY}\n    max_retries: 1\n    retry_backoff: 0.01\n"
            )
            config = workdir / "faults.yaml"
            config.write_text(
                "llms:\n"
                f"  default:\n{llm}    base_url: {fake.base_url}\n"
                f"    timeout: {{connect: 2, read: {READ_TIMEOUT}, total: 10}}\n"
                f"  total:\n{llm}    base_url: {fake.base_url}\n"
                f"    timeout: {{connect: 2, read: 10, total: {TOTAL_TIMEOUT}}}\n"
                f"  refused:\n{llm}    base_url: http://127.0.0.1:{closed_port()}/v1\n"
                "    timeout: {connect: 2, read: 5, total: 10}\n"
                "agents:\n"
                "  assistant: {llm: default, tools: [slow_tool, failing_tool]}\n"
                "  total: {llm: total}\n"
                "  refused: {llm: refused}\n"
                "tools:\n"
                f"  slow_tool: {{type: http, url: '{tools.url}/slow', timeout: {TOOL_TIMEOUT}}}\n"
                f"  failing_tool: {{type: http, url: '{tools.url}/fail', timeout: 5}}\n"
                "observability:\n"
                "  metrics: {enabled: true}\n"
                f"  tracing: {{enabled: true, endpoint: '{receiver.traces_url}'}}\n"
                "logging: {format: json}\n"
            )
            server = start_server(workdir, "-c", str(config))
            try:
                yield Rig(server, fake, receiver, tools)
            finally:
                assert server.stop() == 0
                text = "\n".join(server.log_lines())
                assert "Traceback" not in text
                assert UPSTREAM_KEY not in text
    finally:
        fake.stop()


# --- one request of each kind -------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    request_id: str
    trace_id: str
    status: int
    error: str  # the readable failure message the client got
    partial: str  # reply text delivered before the failure (streams)
    elapsed: float
    body: str


def _send(url: str, agent: str, kind: str, text: str, index: int) -> Outcome:
    trace_id, headers = new_trace()
    request_id = f"fault-{kind}-{index}-{trace_id[:8]}"
    headers["X-Request-ID"] = request_id
    started = time.monotonic()
    error = partial = ""
    if kind == "chat" or kind == "chat_stream":
        body: dict[str, Any] = {"model": agent, "messages": [{"role": "user", "content": text}]}
        if kind == "chat_stream":
            body["stream"] = True
        response = HTTP.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)
        if kind == "chat":
            if response.status_code != 200:
                error = response.json()["error"]["message"]
        else:
            for data in sse_data(response):
                assert data != "[DONE]", "a failed stream must not end with [DONE]"
                event = json.loads(data)
                if "error" in event:
                    error = event["error"]["message"]
                else:
                    partial += "".join(c["delta"].get("content") or "" for c in event["choices"])
    else:
        method = {
            "v03": "message/send",
            "v1": "SendMessage",
            "v03_stream": "message/stream",
            "v1_stream": "SendStreamingMessage",
        }[kind]
        v1 = kind.startswith("v1")
        if v1:
            headers["A2A-Version"] = "1.0"
        params = v1_message(text) if v1 else v03_message(text)
        response = HTTP.post(
            f"{url}/agents/{agent}", json=rpc_body(method, params), headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
        if kind.endswith("stream"):
            events = [json.loads(data)["result"] for data in sse_data(response)]
            last = events[-1]
            status = last["statusUpdate"]["status"] if v1 else last["status"]
            assert v1 or last["final"] is True
            for event in events:
                update = event.get("artifactUpdate") if v1 else event
                if update and "artifact" in update:
                    partial += "".join(p.get("text", "") for p in update["artifact"]["parts"])
        else:
            result = response.json()["result"]
            status = result["task"]["status"] if v1 else result["status"]
        assert status["state"] == ("TASK_STATE_FAILED" if v1 else "failed"), status
        error = status["message"]["parts"][0]["text"]
    return Outcome(
        kind,
        request_id,
        trace_id,
        response.status_code,
        error,
        partial,
        time.monotonic() - started,
        response.text,
    )


def _batch(rig: Rig, agent: str, kinds: list[str], text: str) -> list[Outcome]:
    with ThreadPoolExecutor(len(kinds)) as pool:
        futures = [
            pool.submit(_send, rig.server.url, agent, kind, text, index)
            for index, kind in enumerate(kinds)
        ]
        return [future.result() for future in futures]


def _trace_done(spans: list[ReceivedSpan], trace_ids: set[str]) -> bool:
    """Every trace's server span (the last to end) has arrived."""
    done = {s.trace_id for s in spans if s.kind == "SERVER" and s.trace_id in trace_ids}
    return done == trace_ids


def _normal_request_works(rig: Rig) -> None:
    set_script(rig.fake, [])
    response = HTTP.post(
        rig.server.url + "/agents/assistant",
        json=rpc_body("message/send", v03_message("still there?")),
        timeout=30,
    )
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["status"]["state"] == "completed", result
    assert result["artifacts"][0]["parts"][0]["text"] == "echo: still there?"
    assert HTTP.get(rig.server.url + "/health/live", timeout=5).status_code == 200


# --- the faults ---------------------------------------------------------------------------

BLOCKING = ["v03", "v1", "chat"]
STREAMING = ["v03_stream", "v1_stream", "chat_stream"]
LONG_REPLY = "a long answer that the upstream will not finish sending " * 2


@dataclass(frozen=True)
class Fault:
    agent: str
    replies: list[dict[str, Any]]  # the fake's script (enough for every attempt)
    kinds: list[str]
    message: tuple[str, ...]  # fragments of the readable error
    bound: float  # seconds no request may exceed
    partial: bool = False  # streams deliver text before the failure


FAULTS = {
    "connect_refused": Fault("refused", [], BLOCKING, ("cannot connect", "gave up after 2"), 10),
    "slow_first_byte_past_read_timeout": Fault(
        "assistant",
        [{"delay": 3 * READ_TIMEOUT}] * 6,
        BLOCKING,
        ("timed out", "gave up after 2"),
        2 * READ_TIMEOUT + 5,
    ),
    "total_timeout": Fault(
        "total",
        [{"delay": 3 * TOTAL_TIMEOUT}] * 6,
        BLOCKING,
        ("timed out", "gave up after 2"),
        2 * TOTAL_TIMEOUT + 5,
    ),
    "total_timeout_mid_stream": Fault(
        "total",
        [{"text": LONG_REPLY, "chunk_size": 2, "chunk_delay": 0.1}] * 3,
        STREAMING,
        ("stream interrupted", "timed out"),
        TOTAL_TIMEOUT + 5,
        partial=True,
    ),
    "429_storm": Fault(
        "assistant",
        [{"status": 429, "error": "rate limited", "retry_after": "0"}] * 6,
        BLOCKING,
        ("http 429", "rate limited", "gave up after 2"),
        10,
    ),
    "5xx_storm": Fault(
        "assistant",
        [{"status": 503, "error": "overloaded upstream"}] * 6,
        BLOCKING,
        ("http 503", "overloaded upstream", "gave up after 2"),
        10,
    ),
    "stream_cut_mid_way": Fault(
        "assistant",
        [{"text": LONG_REPLY, "fault": "cut"}] * 3,
        STREAMING,
        ("stream interrupted",),
        10,
        partial=True,
    ),
    "body_cut_mid_way": Fault(
        "assistant", [{"fault": "cut"}] * 6, BLOCKING, ("reading the response failed",), 10
    ),
    "invalid_json": Fault(
        "assistant",
        [{"fault": "invalid_json"}] * 6,
        BLOCKING,
        ("invalid json from the upstream",),
        10,
    ),
    "invalid_json_in_stream": Fault(
        "assistant",
        [{"fault": "invalid_json"}] * 3,
        STREAMING,
        ("invalid json from the upstream",),
        10,
    ),
}


# The low-cardinality ``error.type`` each fault gives the chat span (issue 16).
ERROR_TYPES = {
    "connect_refused": "connection_error",
    "slow_first_byte_past_read_timeout": "timeout",
    "total_timeout": "timeout",
    "total_timeout_mid_stream": "timeout",
    "429_storm": "429",
    "5xx_storm": "503",
    "stream_cut_mid_way": "connection_error",
    "body_cut_mid_way": "connection_error",
    "invalid_json": "llm_error",
    "invalid_json_in_stream": "llm_error",
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_upstream_fault_is_clean_counted_traced_logged_once(rig: Rig, name: str) -> None:
    fault = FAULTS[name]
    set_script(rig.fake, fault.replies)
    before = scrape(rig.server)
    outcomes = _batch(rig, fault.agent, fault.kinds, "please answer")
    after = scrape(rig.server)

    # a clean error, readable, on one line, in time; never a 5xx with a traceback
    for outcome in outcomes:
        assert "Traceback" not in outcome.body
        assert UPSTREAM_KEY not in outcome.body
        expected_status = 502 if outcome.kind == "chat" else 200
        assert outcome.status == expected_status, (outcome.kind, outcome.body)
        message = outcome.error.lower()
        assert message.startswith("openai: ") and "\n" not in message, outcome.error
        for fragment in fault.message:
            assert fragment in message, (outcome.kind, outcome.error)
        assert outcome.elapsed < fault.bound, (outcome.kind, outcome.elapsed)
        if fault.partial:
            assert outcome.partial, f"{outcome.kind}: no text before the failure"
            assert LONG_REPLY.startswith(outcome.partial.removeprefix("echo: "))
            assert len(outcome.partial) < len(LONG_REPLY)

    # metrics, spans and logs agree: one error per request
    count = len(outcomes)
    labels = {"agent": fault.agent, "provider": "openai", "model": "gpt-fake"}

    def increase(name: str, **extra: str) -> float:
        return metric(after, name, **labels, **extra) - metric(before, name, **labels, **extra)

    llm_errors = increase("hector_llm_requests_total", status="error")
    assert increase("hector_llm_requests_total", status="success") == 0
    errors_total = metric(after, "hector_errors_total", component="llm") - metric(
        before, "hector_errors_total", component="llm"
    )

    trace_ids = {o.trace_id for o in outcomes}
    spans = rig.receiver.wait_for(lambda s: _trace_done(s, trace_ids), timeout=10)
    chat_spans = [s for s in spans if s.trace_id in trace_ids and s.name == "chat gpt-fake"]
    error_spans = [s for s in chat_spans if s.status == "ERROR"]
    assert len(chat_spans) == len(error_spans)
    assert {s.attributes.get("error.type") for s in error_spans} == {ERROR_TYPES[name]}
    assert {s.trace_id for s in error_spans} == trace_ids

    request_ids = {o.request_id for o in outcomes}
    mine = [r for r in json_logs(rig.server) if r.get("request_id") in request_ids]
    warnings = [r for r in mine if r["level"] == "WARNING"]
    assert not [r for r in mine if r["level"] in ("ERROR", "CRITICAL")]
    assert sorted(r["request_id"] for r in warnings) == sorted(request_ids), warnings
    assert all("trace_id" in r and r["trace_id"] in trace_ids for r in warnings)

    assert llm_errors == errors_total == len(error_spans) == len(warnings) == count

    _normal_request_works(rig)


def test_retries_are_counted_and_marked_on_the_span(rig: Rig) -> None:
    set_script(rig.fake, [{"status": 503}, {"status": 503}])
    before = scrape(rig.server)
    (outcome,) = _batch(rig, "assistant", ["v03"], "retry me")
    after = scrape(rig.server)
    name, labels = "hector_llm_retries_total", {"provider": "openai", "model": "gpt-fake"}
    assert metric(after, name, **labels) - metric(before, name, **labels) == 1
    spans = rig.receiver.wait_for(lambda s: _trace_done(s, {outcome.trace_id}), timeout=10)
    (chat,) = [s for s in spans if s.trace_id == outcome.trace_id and s.name.startswith("chat")]
    retries = [attrs for event, attrs in chat.events if event == "retry"]
    assert len(retries) == 1 and retries[0]["retry.reason"] == "503"
    _normal_request_works(rig)


# --- tools --------------------------------------------------------------------------------

TOOL_FAULTS = {
    "hangs": ("slow_tool", "timeout", f"error: slow_tool timed out after {TOOL_TIMEOUT:g}s"),
    "raises": ("failing_tool", "ToolError", "error: HTTP 500: upstream refused the credentials"),
}


def _tool_run(rig: Rig, tool: str) -> tuple[Outcome, dict[str, Any]]:
    set_script(rig.fake, [{"tool_calls": [[tool, {}]]}])
    trace_id, headers = new_trace()
    request_id = f"tool-{tool}-{trace_id[:8]}"
    headers["X-Request-ID"] = request_id
    started = time.monotonic()
    response = HTTP.post(
        rig.server.url + "/agents/assistant",
        json=rpc_body("message/send", v03_message(f"use {tool}")),
        headers=headers,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and "Traceback" not in response.text
    result = response.json()["result"]
    reply = result["artifacts"][0]["parts"][0]["text"]
    outcome = Outcome("v03", request_id, trace_id, 200, reply, "", elapsed, response.text)
    return outcome, result


@pytest.mark.parametrize("fault", list(TOOL_FAULTS))
def test_tool_fault_goes_back_to_the_model_and_is_counted_and_traced(rig: Rig, fault: str) -> None:
    tool, error_type, message = TOOL_FAULTS[fault]
    before = scrape(rig.server)
    outcome, result = _tool_run(rig, tool)
    after = scrape(rig.server)
    # the run goes on: the model sees the readable error as the tool result and answers
    assert result["status"]["state"] == "completed"
    assert outcome.error.startswith(f"The tool returned: {message}"), outcome.error
    tool_results = [
        m["content"] for m in rig.fake.requests()[-1]["body"]["messages"] if m["role"] == "tool"
    ]
    assert tool_results and tool_results[-1].startswith(message)
    assert outcome.elapsed < TOOL_TIMEOUT + 5
    labels = {"agent": "assistant", "tool": tool}
    name = "hector_tool_calls_total"
    assert (
        metric(after, name, **labels, status="error")
        - metric(before, name, **labels, status="error")
        == 1
    )
    errors = "hector_errors_total"
    assert (
        metric(after, errors, component="tool", error_type=error_type)
        - metric(before, errors, component="tool", error_type=error_type)
        == 1
    )
    spans = rig.receiver.wait_for(lambda s: _trace_done(s, {outcome.trace_id}), timeout=10)
    (span,) = [
        s for s in spans if s.trace_id == outcome.trace_id and s.name == f"execute_tool {tool}"
    ]
    assert span.status == "ERROR" and span.attributes["error.type"] == error_type
    mine = [r for r in json_logs(rig.server) if r.get("request_id") == outcome.request_id]
    assert not [r for r in mine if r["level"] in ("ERROR", "CRITICAL")]
    _normal_request_works(rig)


@pytest.mark.parametrize("fault", list(TOOL_FAULTS))
def test_tool_fault_is_logged_once(rig: Rig, fault: str) -> None:
    tool, _, _ = TOOL_FAULTS[fault]
    outcome, _ = _tool_run(rig, tool)
    mine = [r for r in json_logs(rig.server) if r.get("request_id") == outcome.request_id]
    warnings = [r for r in mine if r["level"] == "WARNING"]
    assert len(warnings) == 1, [r["msg"] for r in mine]
    assert tool in warnings[0]["msg"]
