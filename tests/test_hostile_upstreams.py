"""Untrusted model upstreams through the real server: what is read from them is bounded.

A fake OpenAI upstream (tests/fakes/hostile.py) answers with a gzip bomb, a 200 MB JSON
reply, an endless stream, an endless SSE line, invalid usage, invalid tool arguments and
cookies; each must end in a clean failure (502, an error event, a failed task) or be
handled, and the server must keep serving with bounded memory.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hector_py.llm.base import LLMError
from tests.conftest import FakeLLM, Server, rpc, start_fake_llm, start_server, v03_message
from tests.fakes.llm_servers import PROVIDERS, Reply
from tests.fakes.tool_server import ToolServer
from tests.test_providers import HELLO, collect
from tests.test_providers import upstream as provider_upstream

CAP = 1024 * 1024
CONFIG = """\
llms:
  default: {{provider: openai, model: gpt-fake, base_url: "{local}", max_retries: 0,
             max_response_bytes: {cap}}}
  roomy: {{provider: openai, model: gpt-fake, base_url: "{url}", max_retries: 0,
           max_response_bytes: {roomy}}}
agents:
  assistant: {{tools: [calculator]}}
  roomy: {{llm: roomy}}
  terse: {{max_reply_chars: 50}}
tools:
  calculator: {{type: builtin}}
server:
  auth: {{tenant_header: X-Tenant}}
"""
PEAK_RSS_LIMIT_KB = 200 * 1024
"""The server's peak RSS after every flood (74 MB measured): the 200 MB reply or the 1 GiB
gzip bomb read whole would be far over."""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLM]:
    fake = start_fake_llm("openai")
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(upstream: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("hostile")
    config = workdir / "hector.yaml"
    local = localhost(upstream.base_url)  # a cookie jar would keep cookies of a name, not an IP
    config.write_text(CONFIG.format(url=upstream.base_url, local=local, cap=CAP, roomy=8 * CAP))
    server = start_server(workdir, "-c", str(config))
    yield server
    server.stop()


def localhost(url: str) -> str:
    """``url`` naming its host ``localhost``: aiohttp's default cookie jar ignores cookies
    from IP addresses, so only a name proves there is no jar."""
    return url.replace("//127.0.0.1:", "//localhost:")


def chat(server: Server, agent: str = "assistant", **extra: Any) -> httpx.Response:
    body = {"model": agent, "messages": [{"role": "user", "content": "hi"}], **extra}
    headers = extra.pop("headers", None) or {}
    return httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=60)


def events(response: httpx.Response) -> list[Any]:
    payloads = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def still_serving(server: Server, upstream: FakeLLM) -> None:
    """A well-behaved call still works, and the server is live."""
    upstream.script({"text": "fine"})
    response = chat(server)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "fine"
    assert httpx.get(server.url + "/health/live", timeout=10).status_code == 200


def cut_short(upstream: FakeLLM, seen: int) -> None:
    """The flood's single request was abandoned by the server long before its end (the
    fake notices when its next write fails)."""
    deadline = time.monotonic() + 30
    while not (recorded := upstream.requests()[seen])["disconnected"]:
        assert time.monotonic() < deadline, f"the server kept reading: {recorded}"
        time.sleep(0.1)
    assert recorded["events_sent"] < recorded["events_total"] / 2, recorded


def test_a_gzip_bomb_is_a_502_and_is_not_decompressed_whole(
    server: Server, upstream: FakeLLM
) -> None:
    seen = upstream.script({"fault": "gzip_bomb"})
    response = chat(server)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "upstream_error"
    assert f"reply is over max_response_bytes ({CAP} bytes)" in error["message"]
    (recorded,) = upstream.requests()[seen:]  # the whole bomb is 1 MB: no cut to see
    assert recorded["headers"]["Accept-Encoding"] == "identity"
    still_serving(server, upstream)


def test_a_huge_json_reply_fails_the_task(server: Server, upstream: FakeLLM) -> None:
    seen = upstream.script({"fault": "huge"})
    result = rpc(server.url + "/agents/assistant", "message/send", v03_message("hi"))["result"]
    assert result["status"]["state"] == "failed", result["status"]
    error = result["status"]["message"]["parts"][0]["text"]
    assert "max_response_bytes" in error
    assert not result.get("artifacts")
    cut_short(upstream, seen)
    still_serving(server, upstream)


def test_an_endless_stream_is_cut_at_the_cap(server: Server, upstream: FakeLLM) -> None:
    seen = upstream.script({"fault": "endless"})
    response = chat(server, stream=True)
    assert response.status_code == 200
    assert "HTTP/1.1" not in response.text
    last = events(response)[-1]
    assert last["error"]["type"] == "upstream_error"
    assert f"stream is over max_response_bytes ({CAP} bytes)" in last["error"]["message"]
    cut_short(upstream, seen)
    still_serving(server, upstream)


def test_a_stream_line_without_end_is_cut_at_the_line_cap(
    server: Server, upstream: FakeLLM
) -> None:
    seen = upstream.script({"fault": "long_line"})
    response = chat(server, "roomy", stream=True)
    assert response.status_code == 200
    last = events(response)[-1]
    assert "a stream line is over 1048576 bytes" in last["error"]["message"]
    cut_short(upstream, seen)
    still_serving(server, upstream)


def test_memory_stayed_bounded_through_the_floods(server: Server, upstream: FakeLLM) -> None:
    for fault in ("gzip_bomb", "huge", "endless"):
        upstream.script({"fault": fault})
        assert chat(server, stream=fault == "endless").status_code in (200, 502)
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    peak_kb = int(
        next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]
    )
    assert peak_kb < PEAK_RSS_LIMIT_KB, f"peak RSS {peak_kb} kB"


def test_a_reply_over_max_reply_chars_fails_clearly(server: Server, upstream: FakeLLM) -> None:
    upstream.script({"text": "x" * 200, "chunk_size": 20})
    response = chat(server, "terse")
    assert response.status_code == 502
    assert "over 50 characters (the agent's max_reply_chars)" in response.json()["error"]["message"]
    upstream.script({"text": "x" * 200, "chunk_size": 20})
    last = events(chat(server, "terse", stream=True))[-1]
    assert "max_reply_chars" in last["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_invalid_usage_is_ignored_and_the_stream_stays_whole(
    server: Server, upstream: FakeLLM, stream: bool
) -> None:
    upstream.script({"text": "counted", "fault": "bad_usage"})
    extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    response = chat(server, **extra)
    assert response.status_code == 200, response.text
    assert "HTTP/1.1" not in response.text
    if stream:
        *chunks, usage, done = events(response)
        assert done == "[DONE]" and "error" not in usage
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "counted"
    else:
        usage = response.json()
    assert usage["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert any("openai reported invalid token usage" in line for line in server.log_lines())


@pytest.mark.parametrize("stream", [False, True])
def test_invalid_tool_arguments_go_back_to_the_model(
    server: Server, upstream: FakeLLM, stream: bool
) -> None:
    call = {"tool_calls": [["calculator", {"expression": "6*7"}]], "fault": "invalid_arguments"}
    seen = upstream.script(call, {"text": None})
    response = chat(server, stream=stream)
    assert response.status_code == 200, response.text
    _, second = upstream.requests()[seen:]
    tool_result = second["body"]["messages"][-1]
    assert tool_result["role"] == "tool"
    assert tool_result["content"].startswith("error: the arguments are not valid JSON")
    text = (
        "".join(e["choices"][0]["delta"].get("content") or "" for e in events(response)[:-1])
        if stream
        else response.json()["choices"][0]["message"]["content"]
    )
    assert text.startswith("The tool returned: error: the arguments are not valid JSON")


def test_a_cookie_set_on_one_tenants_call_is_not_sent_on_anothers(
    server: Server, upstream: FakeLLM
) -> None:
    seen = upstream.script({"set_cookie": "session=tenant-a-secret; Path=/"}, {})
    assert chat(server, headers={"X-Tenant": "a"}).status_code == 200
    assert chat(server, headers={"X-Tenant": "b"}).status_code == 200
    _, second = upstream.requests()[seen:]
    assert "Cookie" not in second["headers"], second["headers"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_provider_reads_a_bounded_answer(provider: str) -> None:
    """The bounds live in the shared transport: a gzip bomb (blocking) and an endless line
    (streamed) fail every provider's call, naming the limit."""

    async def scenario() -> None:
        script = [Reply(fault="gzip_bomb"), Reply(fault="long_line")]
        async with provider_upstream(
            provider, script, max_response_bytes=4 * CAP, max_retries=0
        ) as (
            llm,
            _,
        ):
            with pytest.raises(LLMError, match=r"reply is over max_response_bytes"):
                await llm.complete(HELLO)
            chunks, error = await collect(llm, HELLO)
            assert chunks == [] and error is not None
            assert "a stream line is over 1048576 bytes" in str(error)

    asyncio.run(scenario())


def test_a_cookie_a_tool_received_for_one_tenant_is_not_sent_for_another(
    upstream: FakeLLM, tmp_path: Path
) -> None:
    with ToolServer() as site:
        config = tmp_path / "cookies.yaml"
        config.write_text(
            f"llms:\n  default: {{provider: openai, model: m, base_url: '{upstream.base_url}'}}\n"
            f"tools:\n  site: {{type: http, url: '{localhost(site.url)}/cookie',"
            " parameters: {type: object}}\n"
            "agents:\n  visitor: {tools: [site]}\n"
            "server:\n  auth: {tenant_header: X-Tenant}\n"
        )
        server = start_server(tmp_path, "-c", str(config))
        try:
            visit = {"tool_calls": [["site", {}]]}
            upstream.script(visit, {"text": "visited"}, visit, {"text": "visited"})
            for tenant in ("a", "b"):
                response = chat(server, "visitor", headers={"X-Tenant": tenant})
                assert response.status_code == 200, response.text
        finally:
            server.stop()
    first, second = (headers for _, path, headers in site.requests if path == "/cookie")
    assert "Cookie" not in first and "Cookie" not in second, second
