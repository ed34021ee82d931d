"""The real providers over real HTTP, against the fake upstreams in ``tests/fakes``."""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from hector_py.config.loader import ConfigError, load_config
from hector_py.config.model import LLMConfig
from hector_py.llm.base import (
    LLM,
    LLMChunk,
    LLMError,
    LLMRequest,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)
from hector_py.llm.factory import build_llm
from hector_py.llm.http import RETRY_AFTER_CAP, retry_after_seconds
from tests.fakes.llm_custom import ShoutLLM
from tests.fakes.llm_servers import FakeLLMServer, Reply

PROVIDERS = ("openai", "anthropic", "gemini", "ollama")
KEYED = ("openai", "anthropic", "gemini")
KEY = "sk-test-SECRET-4242"
WEATHER = ToolSpec(
    "get_weather",
    "Current weather of a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
HELLO = LLMRequest((Message("system", "Be brief."), Message("user", "hello there")))
ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

by_provider = pytest.mark.parametrize("provider", PROVIDERS)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Retries:
    """An ``on_retry`` hook that remembers its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, float]] = []

    def __call__(self, attempt: int, reason: str, delay: float) -> None:
        self.calls.append((attempt, reason, delay))


@asynccontextmanager
async def upstream(
    provider: str,
    script: list[Reply] | None = None,
    *,
    on_retry: Retries | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[LLM, FakeLLMServer]]:
    """A fake upstream and a provider pointed at it (small backoff, short timeouts)."""
    async with FakeLLMServer(provider, script or []) as fake, aiohttp.ClientSession() as session:
        config = {
            "provider": provider,
            "model": "fake-model",
            "api_key": KEY,
            "base_url": fake.base_url,
            "retry_backoff": 0.01,
            "timeout": {"connect": 2, "read": 5, "total": 10},
            **settings,
        }
        yield build_llm("test", LLMConfig.model_validate(config), session, on_retry=on_retry), fake


async def collect(llm: LLM, request: LLMRequest) -> tuple[list[LLMChunk], LLMError | None]:
    """The chunks a stream yielded, and the error that ended it (if any)."""
    chunks: list[LLMChunk] = []
    try:
        async for chunk in llm.stream(request):
            chunks.append(chunk)
    except LLMError as exc:
        return chunks, exc
    return chunks, None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@by_provider
def test_complete_returns_text_and_exact_usage(provider: str) -> None:
    async def scenario() -> None:
        async with upstream(provider, [Reply(text="Hi! How can I help?", usage=(23, 9))]) as (
            llm,
            fake,
        ):
            answer = await llm.complete(HELLO)
            assert answer.message == Message("assistant", "Hi! How can I help?")
            assert answer.usage == Usage(23, 9)
            assert answer.finish_reason == "stop"
            assert (llm.provider, llm.model) == (provider, "fake-model")
            assert len(fake.requests) == 1

    run(scenario())


@by_provider
def test_default_reply_echoes_the_user(provider: str) -> None:
    async def scenario() -> None:
        async with upstream(provider) as (llm, _):
            answer = await llm.complete(HELLO)
            assert answer.message.content == "echo: hello there"
            assert answer.usage == Usage(11, 7)

    run(scenario())


@by_provider
def test_stream_yields_text_chunks_and_usage_on_the_last(provider: str) -> None:
    async def scenario() -> None:
        reply = Reply(text="one two three four", usage=(31, 5), chunk_size=4)
        async with upstream(provider, [reply]) as (llm, fake):
            chunks, error = await collect(llm, HELLO)
            assert error is None
            assert "".join(c.text for c in chunks) == "one two three four"
            assert len([c for c in chunks if c.text]) == 5
            assert [c.usage for c in chunks] == [None] * (len(chunks) - 1) + [Usage(31, 5)]
            assert len(fake.requests) == 1

    run(scenario())


def _tool_turns(provider: str, body: dict[str, Any], call_id: str) -> None:
    """The assistant's tool call and our tool result, as ``provider`` wants them."""
    if provider == "openai":
        arguments = '{"city":"Paris"}'
        function = {"name": "get_weather", "arguments": arguments}
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["messages"][-2:] == [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": call_id, "type": "function", "function": function}],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"},
        ]
        assert body["tools"][0]["function"]["parameters"] == WEATHER.parameters
    elif provider == "anthropic":
        use = {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}}
        result = {"type": "tool_result", "tool_use_id": call_id, "content": "18C and sunny"}
        assert body["system"] == "Be brief."
        assert body["max_tokens"] == 4096
        assert body["messages"][-2:] == [
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [result]},
        ]
        assert body["tools"][0]["input_schema"] == WEATHER.parameters
    elif provider == "gemini":
        response = {"name": "get_weather", "response": {"content": "18C and sunny"}}
        call = {"name": "get_weather", "args": {"city": "Paris"}}
        assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert body["contents"][-2:] == [
            {"role": "model", "parts": [{"functionCall": call}]},
            {"role": "user", "parts": [{"functionResponse": response}]},
        ]
        assert body["tools"][0]["functionDeclarations"][0]["parameters"] == WEATHER.parameters
    else:
        call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        assert body["messages"][-2:] == [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": "18C and sunny", "tool_name": "get_weather"},
        ]
        assert body["stream"] is False


@by_provider
def test_tool_call_round_trip(provider: str) -> None:
    async def scenario() -> None:
        script = [Reply.tool_call("get_weather", {"city": "Paris"}, usage=(40, 12))]
        async with upstream(provider, script) as (llm, fake):
            request = LLMRequest(HELLO.messages, tools=(WEATHER,))
            first = await llm.complete(request)
            assert first.finish_reason == "tool_calls"
            assert first.usage == Usage(40, 12)
            [call] = first.message.tool_calls
            assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"})
            assert call.id
            result = Message("tool", "18C and sunny", tool_call_id=call.id, name=call.name)
            follow_up = LLMRequest((*request.messages, first.message, result), tools=(WEATHER,))
            final = await llm.complete(follow_up)
            assert final.message.content == "The tool returned: 18C and sunny"
            assert not final.message.tool_calls
            _tool_turns(provider, fake.requests[1].body, call.id)

    run(scenario())


@by_provider
def test_streamed_tool_call_is_assembled_from_pieces(provider: str) -> None:
    async def scenario() -> None:
        arguments = {"city": "Paris", "units": "metric", "days": [1, 2]}
        script = [Reply.tool_call("get_weather", arguments, chunk_size=3, usage=(8, 6))]
        async with upstream(provider, script) as (llm, _):
            chunks, error = await collect(llm, LLMRequest(HELLO.messages, tools=(WEATHER,)))
            assert error is None
            calls = [call for chunk in chunks for call in chunk.tool_calls]
            assert [(c.name, c.arguments) for c in calls] == [("get_weather", arguments)]
            assert chunks[-1].usage == Usage(8, 6)

    run(scenario())


@by_provider
def test_429_waits_for_retry_after_then_succeeds(provider: str) -> None:
    async def scenario() -> None:
        retries = Retries()
        script = [Reply.failure(429, "slow down", retry_after="1"), Reply(text="ok")]
        async with upstream(provider, script, on_retry=retries) as (llm, fake):
            started = time.monotonic()
            answer = await llm.complete(HELLO)
            assert time.monotonic() - started >= 0.9
            assert answer.message.content == "ok"
            assert len(fake.requests) == 2
            assert retries.calls == [(1, "429", 1.0)]

    run(scenario())


@by_provider
def test_400_fails_at_once_with_the_upstream_message(provider: str) -> None:
    async def scenario() -> None:
        retries = Retries()
        script = [Reply.failure(400, "model 'fake-model' does not exist")]
        async with upstream(provider, script, on_retry=retries) as (llm, fake):
            with pytest.raises(LLMError) as caught:
                await llm.complete(HELLO)
            message = str(caught.value)
            assert "HTTP 400" in message and "model 'fake-model' does not exist" in message
            assert message.startswith(f"{provider}: ") and "\n" not in message
            assert caught.value.retryable is False and caught.value.status == 400
            assert len(fake.requests) == 1 and retries.calls == []

    run(scenario())


@by_provider
def test_500_storm_exhausts_max_retries(provider: str) -> None:
    async def scenario() -> None:
        retries = Retries()
        script = [Reply.failure(500, "upstream exploded")] * 5
        async with upstream(provider, script, on_retry=retries, max_retries=2) as (llm, fake):
            with pytest.raises(LLMError) as caught:
                await llm.complete(HELLO)
            assert caught.value.retryable is True and caught.value.status == 500
            assert "upstream exploded" in str(caught.value)
            assert "gave up after 3 attempts" in str(caught.value)
            assert len(fake.requests) == 3
            assert [(a, r) for a, r, _ in retries.calls] == [(1, "500"), (2, "500")]

    run(scenario())


@by_provider
def test_stream_is_retried_only_before_it_starts(provider: str) -> None:
    async def scenario() -> None:
        script = [Reply.failure(503), Reply(text="fine now")]
        async with upstream(provider, script) as (llm, fake):
            chunks, error = await collect(llm, HELLO)
            assert error is None and "".join(c.text for c in chunks) == "fine now"
            assert len(fake.requests) == 2

    run(scenario())


@by_provider
def test_stream_cut_midway_raises_after_the_earlier_chunks(provider: str) -> None:
    async def scenario() -> None:
        reply = Reply(text="a fairly long answer that will not arrive whole", fault="cut")
        async with upstream(provider, [reply], max_retries=2) as (llm, fake):
            chunks, error = await collect(llm, HELLO)
            assert error is not None and error.retryable
            received = "".join(c.text for c in chunks)
            assert received and reply.text and reply.text.startswith(received)
            assert all(c.usage is None for c in chunks)
            assert len(fake.requests) == 1  # a started stream is never retried
            if provider in ("anthropic", "gemini"):  # they report input tokens up front
                assert error.usage is not None and error.usage.prompt_tokens == 11

    run(scenario())


@by_provider
def test_blocking_answer_cut_midway_is_an_llm_error(provider: str) -> None:
    async def scenario() -> None:
        async with upstream(provider, [Reply(text="x" * 400, fault="cut")]) as (llm, _):
            with pytest.raises(LLMError, match="reading the response failed"):
                await llm.complete(HELLO)

    run(scenario())


@by_provider
def test_invalid_json_is_an_llm_error(provider: str) -> None:
    async def scenario() -> None:
        script = [Reply(fault="invalid_json"), Reply(text="long enough", fault="invalid_json")]
        async with upstream(provider, script) as (llm, fake):
            with pytest.raises(LLMError, match="invalid JSON") as caught:
                await llm.complete(HELLO)
            assert caught.value.retryable is False
            _, error = await collect(llm, HELLO)
            assert error is not None and "invalid JSON" in str(error)
            assert len(fake.requests) == 2

    run(scenario())


@by_provider
def test_connection_reset_is_retried(provider: str) -> None:
    async def scenario() -> None:
        retries = Retries()
        script = [Reply(fault="reset"), Reply(text="second time lucky")]
        async with upstream(provider, script, on_retry=retries) as (llm, fake):
            answer = await llm.complete(HELLO)
            assert answer.message.content == "second time lucky"
            assert len(fake.requests) == 2
            assert [r for _, r, _ in retries.calls] == ["connection_error"]

    run(scenario())


@by_provider
def test_connect_refused_is_a_retryable_llm_error(provider: str) -> None:
    async def scenario() -> None:
        retries = Retries()
        base_url = f"http://127.0.0.1:{free_port()}"
        async with upstream(provider, on_retry=retries, base_url=base_url, max_retries=1) as (
            llm,
            _,
        ):
            with pytest.raises(LLMError) as caught:
                await llm.complete(HELLO)
            assert caught.value.retryable is True
            assert "gave up after 2 attempts" in str(caught.value)
            assert [r for _, r, _ in retries.calls] == ["connection_error"]
            assert KEY not in str(caught.value)

    run(scenario())


@by_provider
def test_read_timeout_is_an_llm_error(provider: str) -> None:
    async def scenario() -> None:
        timeout = {"connect": 2, "read": 0.2, "total": 5}
        script = [Reply(delay=1.0)]
        async with upstream(provider, script, timeout=timeout, max_retries=0) as (llm, fake):
            with pytest.raises(LLMError, match="timed out") as caught:
                await llm.complete(HELLO)
            assert caught.value.retryable is True
            assert len(fake.requests) == 1

    run(scenario())


@by_provider
def test_api_key_goes_in_the_right_header_and_never_in_errors(provider: str) -> None:
    async def scenario() -> None:
        script = [Reply(text="ok"), Reply.failure(401, f"Incorrect API key provided: {KEY}")]
        async with upstream(provider, script) as (llm, fake):
            await llm.complete(HELLO)
            headers = fake.requests[0].headers
            expected = {
                "openai": {"Authorization": f"Bearer {KEY}"},
                "anthropic": {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                "gemini": {"x-goog-api-key": KEY},
                "ollama": {"Authorization": f"Bearer {KEY}"},
            }[provider]
            assert {name: headers.get(name) for name in expected} == expected
            assert KEY not in fake.requests[0].path + str(fake.requests[0].query)
            with pytest.raises(LLMError) as caught:
                await llm.complete(HELLO)
            assert KEY not in str(caught.value) and "***" in str(caught.value)
            assert caught.value.retryable is False

    run(scenario())


@pytest.mark.parametrize("provider", KEYED)
def test_missing_key_fails_on_the_first_call(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            llm = build_llm("test", LLMConfig(provider=provider, model="m"), session)
            with pytest.raises(LLMError, match="no API key") as caught:
                await llm.complete(HELLO)
            assert caught.value.retryable is False
            _, error = await collect(llm, HELLO)
            assert error is not None and "no API key" in str(error)

    run(scenario())


def test_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "from-the-env")

    async def scenario() -> None:
        async with upstream("gemini", api_key=None) as (llm, fake):
            await llm.complete(HELLO)
            assert fake.requests[0].headers["x-goog-api-key"] == "from-the-env"

    run(scenario())


def test_local_openai_compatible_server_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    async def scenario() -> None:
        async with upstream("openai", api_key=None) as (llm, fake):
            answer = await llm.complete(HELLO)
            assert answer.message.content == "echo: hello there"
            assert "Authorization" not in fake.requests[0].headers

    run(scenario())


def test_hooks_see_every_attempt() -> None:
    async def scenario() -> None:
        seen: list[str] = []

        def inject(headers: dict[str, str]) -> None:
            headers["traceparent"] = f"00-{'1' * 32}-{len(seen) + 1:016x}-01"
            seen.append(headers["traceparent"])

        fake = FakeLLMServer("openai", [Reply.failure(502)])
        async with fake, aiohttp.ClientSession() as session:
            config = LLMConfig(
                provider="openai", model="m", base_url=fake.base_url, retry_backoff=0.01
            )
            llm = build_llm("test", config, session, inject_headers=inject)
            await llm.complete(HELLO)
        assert [r.headers["traceparent"] for r in fake.requests] == seen
        assert len(seen) == 2

    run(scenario())


def test_gemini_finds_the_tool_name_and_returns_thought_signatures() -> None:
    async def scenario() -> None:
        async with upstream("gemini") as (llm, fake):
            call = ToolCall("c1", "get_weather", {"city": "Oslo"}, signature="sig-1")
            await llm.complete(
                LLMRequest(
                    (
                        Message("user", "weather?"),
                        Message("assistant", "", tool_calls=(call,)),
                        Message("tool", "cold", tool_call_id="c1"),
                    )
                )
            )
            contents = fake.requests[0].body["contents"]
            assert contents[1]["parts"][0]["thoughtSignature"] == "sig-1"
            assert contents[2]["parts"][0]["functionResponse"]["name"] == "get_weather"

    run(scenario())


def test_retry_after_accepts_seconds_and_http_dates_and_is_capped() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("100000") == RETRY_AFTER_CAP
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    delay = retry_after_seconds(later)
    assert delay is not None and 25 <= delay <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(earlier) == 0.0


def test_custom_provider_from_an_import_path() -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            config = LLMConfig(provider="tests.fakes.llm_custom:ShoutLLM", model="loud")
            llm = build_llm("mine", config, session)
            assert isinstance(llm, ShoutLLM) and llm.session is session and llm.model == "loud"
            answer = await llm.complete(HELLO)
            assert answer.message.content == "HELLO THERE"

    run(scenario())


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("tests.fakes.no_such_module:LLM", "cannot use 'tests.fakes.no_such_module:LLM'"),
        ("tests.fakes.llm_custom:Missing", "AttributeError"),
        ("tests.fakes.llm_custom:NotAnLLM", "is not an LLM: it lacks provider, model"),
    ],
)
def test_bad_custom_provider_is_a_config_error(provider: str, expected: str) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ConfigError) as caught:
                build_llm("mine", LLMConfig(provider=provider), session)
            [problem] = caught.value.problems
            assert problem.path == "llms.mine.provider" and expected in problem.message

    run(scenario())


def test_provider_must_be_known_or_an_import_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("llms:\n  default:\n    provider: openia\n    timeout: {read: 5}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == (
        "llms.default.provider: unknown provider 'openia': use one of openai, anthropic, "
        f"ollama, gemini, demo, or an import path 'module.path:ClassName' ({path}:3)"
    )
    path.write_text("llms:\n  default:\n    provider: pkg.mod:Cls\n    timeout: {read: 5}\n")
    config = load_config(path, environ={})
    assert config.llms["default"].provider == "pkg.mod:Cls"
    assert config.llms["default"].timeout.read == 5
    assert config.llms["default"].max_retries == 2


def test_standalone_fake_prints_its_url_and_serves_a_script() -> None:
    command = [
        sys.executable,
        "-m",
        "tests.fakes.llm_servers",
        "--provider",
        "openai",
        "--port",
        "0",
        "--tool-call",
        'get_weather:{"city": "Paris"}',
        "--usage",
        "3,2",
        "--fail-first",
        "1",
        "--status",
        "503",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=20), "the fake printed no URL"
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                config = LLMConfig(
                    provider="openai", model="m", base_url=base_url, retry_backoff=0.01
                )
                llm = build_llm("e2e", config, session)
                first = await llm.complete(LLMRequest(HELLO.messages, tools=(WEATHER,)))
                assert first.message.tool_calls[0].arguments == {"city": "Paris"}
                assert first.usage == Usage(3, 2)
                second = await llm.complete(HELLO)
                assert second.message.content == "echo: hello there"
                root = base_url.removesuffix("/v1")
                async with session.get(f"{root}/_fake/requests") as got:
                    assert len(await got.json()) == 3
                script = [{"status": 400, "error": "scripted at run time"}]
                async with session.post(f"{root}/_fake/script", json=script) as got:
                    assert got.status == 200
                with pytest.raises(LLMError, match=r"HTTP 400.*scripted at run time"):
                    await llm.complete(HELLO)

        run(scenario())
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
