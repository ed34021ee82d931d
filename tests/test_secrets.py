"""Secret hygiene (issue 8): a planted secret is found nowhere.

Distinct secrets are planted, through ``${VAR}`` expansion, in an LLM ``api_key``, a trace
export header, a declared HTTP tool's headers and ``server.auth.api_keys`` (a plain key and
a tenant key). They are not key-shaped (no ``sk-``/``Bearer``-pattern luck): only the
config-driven redaction can hide them. Traffic includes successes, streams, upstream 401
and 500 answers that echo the key, refused calls (wrong and missing keys), with payload
capture on and debug logs, in JSON logs + OTLP and in text logs + the stdout exporter.
Then every output is searched: each log line, every span (name, attributes, events,
status), every response body and header, ``/health``, ``/metrics``, the agent cards,
``hector validate --print-config`` (text and JSON), ``hector validate`` of a broken file,
and ``hector info``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FakeLLM, Server, clean_env, hector, start_fake_llm, start_server
from tests.fakes.tool_server import ToolServer
from tests.fakes.trace_receivers import OTLPHttpReceiver
from tests.reliability_helpers import HTTP, rpc_body, set_script, sse_data, v1_message, wait_until

SECRETS = {
    "LLM_SECRET": "PLANTEDllm4c1f9e2a7d",
    "TRACE_SECRET": "PLANTEDtrace7b3d50e1",
    "TOOL_SECRET": "PLANTEDtool9e8a1c3f",
    "AUTH_SECRET": "PLANTEDauth2f6d4b8c",
    "TENANT_SECRET": "PLANTEDtenant5a7c0d",
}
AUTH = {"Authorization": f"Bearer {SECRETS['AUTH_SECRET']}"}
TENANT = {"X-API-Key": SECRETS["TENANT_SECRET"]}


def write_config(
    path: Path, fake: FakeLLM, tools: ToolServer, tracing: str, log_format: str
) -> Path:
    path.write_text(
        "server:\n"
        "  auth:\n"
        '    api_keys: ["${AUTH_SECRET}", {key: "${TENANT_SECRET}", tenant: acme}]\n'
        "llms:\n"
        "  default:\n"
        "    provider: openai\n"
        "    model: gpt-fake\n"
        "    api_key: ${LLM_SECRET}\n"
        f"    base_url: {fake.base_url}\n"
        "    max_retries: 1\n"
        "    retry_backoff: 0.01\n"
        "agents:\n"
        "  assistant: {tools: [secret_tool, leaky_tool]}\n"
        "tools:\n"
        "  secret_tool:\n"
        "    type: http\n"
        f"    url: {tools.url}/ok\n"
        "    headers:\n"
        '      Authorization: "Bearer ${TOOL_SECRET}"\n'
        '      X-Api-Key: "${TOOL_SECRET}"\n'
        "  leaky_tool:  # its upstream echoes the credentials in a 500 body\n"
        "    type: http\n"
        f"    url: {tools.url}/fail\n"
        "    headers:\n"
        '      Authorization: "Bearer ${TOOL_SECRET}"\n'
        "observability:\n"
        "  metrics: {enabled: true}\n"
        "  tracing:\n"
        "    enabled: true\n"
        "    capture_payloads: true\n"
        "    headers:\n"
        '      Authorization: "Bearer ${TRACE_SECRET}"\n'
        f"{tracing}"
        f"logging: {{level: debug, format: {log_format}}}\n"
    )
    return path


@dataclass
class Outputs:
    """Everything hector said, by where it said it."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, text: str) -> None:
        self.texts[f"{len(self.texts):02d} {name}"] = text

    def response(self, name: str, response: httpx.Response) -> httpx.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.add(name, f"{response.status_code}\n{headers}\n\n{response.text}")
        return response

    def leaks(self) -> list[tuple[str, str]]:
        return [
            (where, name)
            for where, text in self.texts.items()
            for name, secret in SECRETS.items()
            if secret in text
        ]


def traffic(server: Server, fake: FakeLLM, out: Outputs) -> None:
    """Successes, streams, upstream failures that echo the key, refused calls."""
    url = server.url
    with httpx.Client(timeout=30) as client:

        def send(name: str, method: str, params: Any, headers: dict[str, str]) -> Any:
            version = {"A2A-Version": "1.0"} if method[0].isupper() else {}
            response = client.post(
                url + "/", json=rpc_body(method, params), headers={**headers, **version}
            )
            return out.response(name, response)

        v03 = {
            "message": {
                "messageId": "m",
                "role": "user",
                "parts": [{"kind": "text", "text": "hello"}],
            }
        }
        set_script(fake, [])
        ok = send("a2a v0.3 ok", "message/send", v03, AUTH).json()["result"]
        assert ok["status"]["state"] == "completed", ok
        send("a2a v1 ok (tenant key)", "SendMessage", v1_message("hi there"), TENANT)
        streamed = send("a2a v1 stream", "SendStreamingMessage", v1_message("stream"), AUTH)
        assert list(sse_data(streamed))
        chat = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}
        out.response("chat ok", client.post(url + "/v1/chat/completions", json=chat, headers=AUTH))
        out.response(
            "chat stream",
            client.post(url + "/v1/chat/completions", json={**chat, "stream": True}, headers=AUTH),
        )
        # the tool is called with its secret headers
        set_script(fake, [{"tool_calls": [["secret_tool", {}]]}])
        send("a2a tool call", "message/send", v03, AUTH)
        # an upstream that echoes the key in its errors: 401 (not retried), 500 (retried)
        echo = f"Incorrect API key provided: {SECRETS['LLM_SECRET']}"
        set_script(
            fake, [{"status": 401, "error": echo}] * 2 + [{"status": 500, "error": echo}] * 4
        )
        failed = send("a2a upstream 401", "message/send", v03, AUTH).json()["result"]
        assert failed["status"]["state"] == "failed"
        out.response(
            "chat upstream 401", client.post(url + "/v1/chat/completions", json=chat, headers=AUTH)
        )
        send("a2a upstream 500", "SendMessage", v1_message("again"), AUTH)
        out.response(
            "chat stream upstream 500",
            client.post(url + "/v1/chat/completions", json={**chat, "stream": True}, headers=AUTH),
        )
        set_script(fake, [])
        # refused callers
        send("wrong key", "message/send", v03, {"Authorization": "Bearer wrong-key-123"})
        send("missing key", "message/send", v03, {})
        send("key in X-API-Key of the wrong kind", "message/send", v03, {"X-API-Key": "nope"})
        # every read-only endpoint, with and without a key
        for path in (
            "/health",
            "/health/live",
            "/health/ready",
            "/metrics",
            "/.well-known/agent-card.json",
            "/.well-known/agent.json",
            "/agents",
            "/agents/assistant",
            "/agents/assistant/.well-known/agent-card.json",
            "/v1/models",
            "/agents/ghost",
        ):
            out.response(f"GET {path}", client.get(url + path))
            out.response(f"GET {path} (key)", client.get(url + path, headers=AUTH))


def cli_outputs(config: Path, env: dict[str, str], out: Outputs) -> None:
    broken = config.with_name("broken.yaml")
    broken.write_text(
        config.read_text().replace("provider: openai", "provider: openai\n    modle: typo")
        + "server_typo: ${LLM_SECRET}\n"
    )
    runs = [
        (0, ("validate", str(config), "--print-config")),
        (0, ("validate", str(config), "--print-config", "--format", "json")),
        (0, ("info", "-c", str(config))),
        (1, ("validate", str(broken))),
    ]
    with ThreadPoolExecutor(len(runs)) as pool:
        results = list(pool.map(lambda run: hector(*run[1], env=env), runs))
    for (code, args), result in zip(runs, results, strict=True):
        assert result.returncode == code, result.stderr
        out.add("hector " + " ".join(args), result.stdout + result.stderr)
    printed = json.loads(results[1].stdout)["config"]
    assert printed["llms"]["default"]["api_key"] == "**********"


def span_text(span: Any) -> str:
    return json.dumps(
        {
            "name": span.name,
            "attributes": span.attributes,
            "status": span.status_message,
            "events": span.events,
            "resource": span.resource,
        },
        default=str,
    )


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[FakeLLM, ToolServer]]:
    fake = start_fake_llm("openai")
    try:
        with ToolServer() as tools:
            yield fake, tools
    finally:
        fake.stop()


def test_planted_secrets_in_json_logs_and_otlp_spans(
    tmp_path: Path, rig: tuple[FakeLLM, ToolServer]
) -> None:
    fake, tools = rig
    env = clean_env(**SECRETS)
    out = Outputs()
    with OTLPHttpReceiver() as receiver:
        tracing = f"    endpoint: {receiver.traces_url}\n"
        config = write_config(tmp_path / "secrets.yaml", fake, tools, tracing, "json")
        server = start_server(tmp_path, "-c", str(config), env=env)
        try:
            traffic(server, fake, out)
        finally:
            assert server.stop() == 0
        spans = receiver.wait_for(
            lambda s: sum(x.kind == "SERVER" for x in s) >= 10, timeout=10, what="server spans"
        )
        # the key did reach the collector as the export header, as configured
        assert receiver.headers[0]["authorization"] == f"Bearer {SECRETS['TRACE_SECRET']}"
    assert any("gen_ai.input.messages" in s.attributes for s in spans)  # payloads captured
    # the tool got its headers, the upstream its key: the secrets were really in use
    assert tools.requests and tools.requests[0][2]["X-Api-Key"] == SECRETS["TOOL_SECRET"]
    assert fake.requests()[0]["headers"]["Authorization"] == f"Bearer {SECRETS['LLM_SECRET']}"
    for span in spans:
        out.add(f"span {span.name}", span_text(span))
    lines = server.log_lines()
    assert any('"level":"DEBUG"' in line for line in lines)
    for number, line in enumerate(lines):
        out.add(f"log line {number}", line)
    cli_outputs(config, env, out)
    assert out.leaks() == []


def test_planted_secrets_in_text_logs_and_stdout_spans(
    tmp_path: Path, rig: tuple[FakeLLM, ToolServer]
) -> None:
    fake, tools = rig
    env = clean_env(**SECRETS)
    out = Outputs()
    config = write_config(tmp_path / "secrets.yaml", fake, tools, "    exporter: stdout\n", "text")
    server = start_server(tmp_path, "-c", str(config), env=env)
    try:
        traffic(server, fake, out)
        spans_out = '"gen_ai.input.messages"'
        wait_until(lambda: spans_out in server.log_path.read_text(), 10, "stdout spans")
    finally:
        assert server.stop() == 0
    text = server.log_path.read_text()
    assert " DEBUG " in text and '"kind": "SpanKind.SERVER"' in text
    for number, line in enumerate(text.splitlines()):
        out.add(f"output line {number}", line)
    assert out.leaks() == []


def test_a_tool_error_that_echoes_its_credentials_is_masked(
    tmp_path: Path, rig: tuple[FakeLLM, ToolServer]
) -> None:
    fake, tools = rig
    env = clean_env(**SECRETS)
    out = Outputs()
    with OTLPHttpReceiver() as receiver:
        tracing = f"    endpoint: {receiver.traces_url}\n"
        config = write_config(tmp_path / "secrets.yaml", fake, tools, tracing, "json")
        server = start_server(tmp_path, "-c", str(config), env=env)
        try:
            set_script(fake, [{"tool_calls": [["leaky_tool", {}]]}])
            params = {
                "message": {
                    "messageId": "m",
                    "role": "user",
                    "parts": [{"kind": "text", "text": "go"}],
                }
            }
            response = HTTP.post(
                server.url + "/", json=rpc_body("message/send", params), headers=AUTH, timeout=30
            )
            out.response("a2a leaky tool", response)
            assert response.json()["result"]["status"]["state"] == "completed"
        finally:
            assert server.stop() == 0
        spans = receiver.wait_for(lambda s: any(x.kind == "SERVER" for x in s), timeout=10)
    assert "upstream refused the credentials" in response.text
    for span in spans:
        out.add(f"span {span.name}", span_text(span))
    for number, line in enumerate(server.log_lines()):
        out.add(f"log line {number}", line)
    assert out.leaks() == []
