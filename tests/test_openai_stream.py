"""Streamed ``/v1/chat/completions`` against a fake OpenAI upstream: when the 200 goes out.

The stream starts once the model's answer has started, before its first text. A model
that refuses or cannot be reached is an HTTP error, as for a blocking call (clients and
SDKs retry those); a failure after the start is the stream's last event.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import FakeLLM, Server, start_fake_llm, start_server

CONFIG = """\
llms:
  default: {{provider: openai, model: gpt-fake, base_url: "{url}", max_retries: 0}}
  gone: {{provider: openai, model: gpt-fake, base_url: "{gone}", max_retries: 0}}
agents:
  assistant: {{}}
  unreachable: {{llm: gone}}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLM]:
    fake = start_fake_llm("openai", "--usage", "11,7")
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(upstream: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    workdir = tmp_path_factory.mktemp("openai-stream")
    config = workdir / "hector.yaml"
    config.write_text(CONFIG.format(url=upstream.base_url, gone=gone))
    server = start_server(workdir, "-c", str(config))
    yield server
    server.stop()


def body(agent: str = "assistant", **extra: Any) -> dict[str, Any]:
    return {
        "model": agent,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def events(response: httpx.Response) -> list[Any]:
    """Every ``data:`` payload, decoded (``[DONE]`` as is)."""
    payloads = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


@pytest.mark.parametrize("agent", ["assistant", "unreachable"])
def test_a_model_that_refuses_or_is_unreachable_is_an_http_error(
    server: Server, upstream: FakeLLM, agent: str
) -> None:
    upstream.script({"status": 503, "error": "overloaded upstream"})
    response = httpx.post(server.url + "/v1/chat/completions", json=body(agent), timeout=20)
    assert response.status_code == 502, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["type"] == "upstream_error" and error["message"].startswith("openai: ")
    expected = "overloaded upstream" if agent == "assistant" else "cannot connect"
    assert expected in error["message"].lower(), error


def test_a_failure_after_the_model_answered_ends_the_stream(
    server: Server, upstream: FakeLLM
) -> None:
    upstream.script({"fault": "invalid_json"})  # its second event is not JSON
    response = httpx.post(server.url + "/v1/chat/completions", json=body(), timeout=20)
    assert response.status_code == 200
    first, *rest = events(response)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    (last,) = rest
    assert last["error"]["type"] == "upstream_error"
    assert "invalid json from the upstream" in last["error"]["message"].lower()


def test_the_stream_starts_before_the_first_text(server: Server, upstream: FakeLLM) -> None:
    seen = upstream.script({"text": "slow", "chunk_size": 2, "chunk_delay": 1.0})
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions", json=body(), timeout=20
    ) as response:
        assert response.status_code == 200
        line = next(line for line in response.iter_lines() if line.startswith("data:"))
        assert json.loads(line[5:])["choices"][0]["delta"]["role"] == "assistant"
        # the upstream has sent its first event only: its text comes a second later
        (recorded,) = upstream.requests()[seen:]
        assert recorded["events_sent"] == 1, recorded


def test_usage_ends_a_stream_that_asks_for_it(server: Server, upstream: FakeLLM) -> None:
    upstream.script({"text": "one two", "chunk_size": 3})
    extra = {"stream_options": {"include_usage": True}}
    response = httpx.post(server.url + "/v1/chat/completions", json=body(**extra), timeout=20)
    *chunks, usage, done = events(response)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "one two" and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 18
    assert done == "[DONE]"
