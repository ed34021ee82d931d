"""Issue 3 end to end: the real ``hector serve`` process against each fake upstream.

Every provider (openai, anthropic, gemini, ollama) gets one standalone fake upstream
(``python -m tests.fakes.llm_servers``) and one ``hector serve --provider P --base-url
<fake> --model M --api-key K -c tools.yaml`` for the whole module; each test scripts the
fake's next replies through ``POST /_fake/script`` and reads what it received from
``GET /_fake/requests``. Tests that need fake flags of their own start a fake and a
server of their own (the ``fake_llm`` factory and the ``serve`` fixture).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.client import ClientCallContext
from a2a.helpers import new_text_message
from a2a.types.a2a_pb2 import Role, SendMessageRequest, TaskState

from tests.conftest import (
    FakeLLM,
    Server,
    clean_env,
    rpc,
    start_fake_llm,
    start_server,
    v03_message,
)

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ("openai", "anthropic", "gemini", "ollama")
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-0",
    "gemini": "gemini-2.0-flash",
    "ollama": "llama3.2:1b",
}
KEY = "sk-e2e-SECRET-7f3a9c41"
# where each provider must carry the key (ollama: no key configured, so no header at all)
KEY_HEADERS = {
    "openai": ("authorization", f"Bearer {KEY}"),
    "anthropic": ("x-api-key", KEY),
    "gemini": ("x-goog-api-key", KEY),
}
AUTH_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")
V1 = "1.0"
TOOL_CONFIG = "agents:\n  assistant:\n    tools: [calculator]\n"
CALCULATOR = {"tool_calls": [["calculator", {"expression": "6*7"}]], "usage": [5, 3]}
# a reply that takes ~10 s to stream: 100 events, 0.1 s apart (0.2 s from the flags)
SLOW_TEXT = "tick tock " * 40
SLOW = {"text": SLOW_TEXT, "chunk_size": 4, "chunk_delay": 0.1}

JSON = dict[str, Any]


# --- the fake upstream, standalone -------------------------------------------------------


@pytest.fixture
def fake_llm() -> Iterator[Callable[..., FakeLLM]]:
    """Factory: ``fake_llm(provider, *flags)`` starts a fake, terminated after the test."""
    fakes: list[FakeLLM] = []

    def factory(provider: str, *flags: str) -> FakeLLM:
        fake = start_fake_llm(provider, *flags)
        fakes.append(fake)
        return fake

    yield factory
    for fake in fakes:
        fake.stop()


def serve_args(fake: FakeLLM, config: Path) -> list[str]:
    key = [] if fake.provider == "ollama" else ["--api-key", KEY]
    return [
        "-c",
        str(config),
        "--provider",
        fake.provider,
        "--base-url",
        fake.base_url,
        "--model",
        MODELS[fake.provider],
        *key,
        "--log-level",
        "debug",
    ]


@dataclass
class Stack:
    """One provider's fake upstream and the hector server in front of it."""

    provider: str
    fake: FakeLLM
    server: Server

    @property
    def url(self) -> str:
        return self.server.url + "/"


def _start_stack(provider: str, workdir: Path) -> Stack:
    config = workdir / "tools.yaml"
    config.write_text(TOOL_CONFIG)
    fake = start_fake_llm(provider, "--usage", "11,7")
    try:
        server = start_server(workdir, *serve_args(fake, config), env=clean_env())
    except BaseException:
        fake.stop()
        raise
    return Stack(provider, fake, server)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    """For the module, per provider: a fake (``--usage 11,7``) and a server whose agent
    may use the calculator; the four start side by side."""
    with ThreadPoolExecutor(len(PROVIDERS)) as pool:
        futures = {
            p: pool.submit(_start_stack, p, tmp_path_factory.mktemp(f"e2e-{p}")) for p in PROVIDERS
        }
    started = {p: f.result() for p, f in futures.items() if f.exception() is None}
    try:
        for future in futures.values():
            future.result()  # re-raise the first start-up failure
        yield started
    finally:
        for each in started.values():
            each.server.stop()
            each.fake.stop()


@pytest.fixture(params=PROVIDERS)
def stack(request: pytest.FixtureRequest, stacks: dict[str, Stack]) -> Stack:
    """The provider's fake and server (shared by the module)."""
    return stacks[request.param]


# --- helpers -------------------------------------------------------------------------------


def v1_params(text: str, **message: Any) -> JSON:
    return {
        "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": text}], **message}
    }


def reply_text(task: JSON) -> str:
    return "".join(p.get("text", "") for a in task.get("artifacts", []) for p in a["parts"])


def status_text(task_or_status: JSON) -> str:
    status = task_or_status.get("status", task_or_status)
    return "".join(p.get("text", "") for p in status.get("message", {}).get("parts", []))


def usage_of(task: JSON) -> tuple[int, int]:
    usage = task["metadata"]["usage"]
    return usage["promptTokens"], usage["completionTokens"]


def get_task(stack: Stack, task_id: str) -> JSON:
    return rpc(stack.url, "GetTask", {"id": task_id}, version=V1)["result"]  # type: ignore[no-any-return]


def streamed(provider: str, recorded: JSON) -> bool:
    """Whether hector asked the upstream for a streamed answer, in that API's terms."""
    if provider == "gemini":
        path: str = recorded["path"]
        return path.endswith(":streamGenerateContent") and recorded["query"] == {"alt": "sse"}
    return recorded["body"].get("stream") is True


def sse_results(
    url: str, method: str, params: JSON, version: str | None = V1, limit: int = 300
) -> list[JSON]:
    """POST a streaming JSON-RPC call and return every event's ``result`` (bounded)."""
    headers = {"A2A-Version": version} if version else {}
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    results: list[JSON] = []
    with httpx.stream("POST", url, json=body, headers=headers, timeout=20) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                assert "error" not in event, event
                results.append(event["result"])
            assert len(results) < limit
    return results


def deltas(results: list[JSON]) -> list[str]:
    return [
        p["text"]
        for r in results
        if "artifactUpdate" in r
        for p in r["artifactUpdate"]["artifact"]["parts"]
    ]


def tool_data(results: list[JSON]) -> list[JSON]:
    return [
        p["data"]
        for r in results
        if "statusUpdate" in r
        for p in r["statusUpdate"]["status"].get("message", {}).get("parts", [])
        if "data" in p
    ]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 8.0) -> Any:
    """Poll ``check`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {value!r}")
        time.sleep(0.05)


def assert_tool_result_on_the_wire(provider: str, second: JSON) -> None:
    """The request after the tool ran carries the call and its result ("42") in the
    provider's own shape."""
    body = second["body"]
    if provider == "openai":
        call, result = body["messages"][-2], body["messages"][-1]
        assert call["role"] == "assistant"
        (function_call,) = call["tool_calls"]
        assert function_call["function"]["name"] == "calculator"
        assert json.loads(function_call["function"]["arguments"]) == {"expression": "6*7"}
        assert result == {"role": "tool", "tool_call_id": function_call["id"], "content": "42"}
    elif provider == "anthropic":
        call, result = body["messages"][-2], body["messages"][-1]
        (use,) = [b for b in call["content"] if b["type"] == "tool_use"]
        assert (use["name"], use["input"]) == ("calculator", {"expression": "6*7"})
        assert result["role"] == "user"
        assert result["content"] == [
            {"type": "tool_result", "tool_use_id": use["id"], "content": "42"}
        ]
    elif provider == "gemini":
        call, result = body["contents"][-2], body["contents"][-1]
        assert call["role"] == "model"
        assert {"functionCall": {"name": "calculator", "args": {"expression": "6*7"}}} in call[
            "parts"
        ]
        assert result == {
            "role": "user",
            "parts": [{"functionResponse": {"name": "calculator", "response": {"content": "42"}}}],
        }
    else:
        call, result = body["messages"][-2], body["messages"][-1]
        assert call["role"] == "assistant"
        assert call["tool_calls"] == [
            {"function": {"name": "calculator", "arguments": {"expression": "6*7"}}}
        ]
        assert result == {"role": "tool", "content": "42", "tool_name": "calculator"}


# --- 1. every provider: send, stream, chat completions, usage, tools, key -------------------


def test_a2a_send_v1_and_v03_answer_with_the_fakes_usage(stack: Stack) -> None:
    seen = stack.fake.script()
    v1 = rpc(stack.url, "SendMessage", v1_params("hello from v1"), version=V1)["result"]["task"]
    assert v1["status"]["state"] == "TASK_STATE_COMPLETED", status_text(v1)
    assert reply_text(v1) == "echo: hello from v1"
    assert usage_of(v1) == (11, 7)
    v03 = rpc(stack.url, "message/send", v03_message("hello from v0.3"))["result"]
    assert v03["kind"] == "task" and v03["status"]["state"] == "completed", status_text(v03)
    assert reply_text(v03) == "echo: hello from v0.3"
    assert usage_of(v03) == (11, 7)
    sent = stack.fake.requests()[seen:]
    assert len(sent) == 2
    assert not any(streamed(stack.provider, r) for r in sent)
    assert all(r["completed"] is True for r in sent)


def test_a2a_stream_sends_incremental_text_and_the_fakes_usage(stack: Stack) -> None:
    seen = stack.fake.script()
    text = "stream this through the provider please"
    results = sse_results(stack.url, "SendStreamingMessage", v1_params(text))
    assert "task" in results[0]
    pieces = deltas(results)
    assert "".join(pieces) == f"echo: {text}"
    assert len(pieces) > 5  # the fake's 4-character chunks, relayed as they came
    assert results[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    task = get_task(stack, results[0]["task"]["id"])
    assert reply_text(task) == f"echo: {text}"
    assert usage_of(task) == (11, 7)
    (upstream,) = stack.fake.requests()[seen:]
    assert streamed(stack.provider, upstream)
    if stack.provider == "openai":
        assert upstream["body"]["stream_options"] == {"include_usage": True}
    # v0.3 message/stream against the same upstream
    v03 = sse_results(stack.url, "message/stream", v03_message("and in v0.3"), version=None)
    assert v03[-1]["kind"] == "status-update" and v03[-1]["final"] is True
    assert v03[-1]["status"]["state"] == "completed"
    assert (
        "".join(
            p["text"] for r in v03 if r["kind"] == "artifact-update" for p in r["artifact"]["parts"]
        )
        == "echo: and in v0.3"
    )


def test_chat_completions_with_the_openai_sdk_streamed_and_not(stack: Stack) -> None:
    client = openai.OpenAI(
        base_url=stack.server.url + "/v1", api_key="unused", timeout=20, max_retries=0
    )
    seen = stack.fake.script()
    messages: Any = [{"role": "user", "content": "complete me"}]
    completion = client.chat.completions.create(model="assistant", messages=messages)
    assert completion.choices[0].message.content == "echo: complete me"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 7)
    assert completion.usage.total_tokens == 18
    chunks = list(
        client.chat.completions.create(
            model="assistant",
            messages=[{"role": "user", "content": "stream me in chunks"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    content = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(content) == "echo: stream me in chunks"
    assert len(content) > 3
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 7, 18)
    sent = stack.fake.requests()[seen:]
    assert [streamed(stack.provider, r) for r in sent] == [False, True]


def test_scripted_tool_call_runs_and_the_answer_uses_its_result(stack: Stack) -> None:
    # blocking send: tool call (usage 5+3), then the fake quotes the result (11+7)
    seen = stack.fake.script(CALCULATOR)
    task = rpc(stack.url, "SendMessage", v1_params("what is 6*7?"), version=V1)["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED", status_text(task)
    assert reply_text(task) == "The tool returned: 42"
    assert usage_of(task) == (16, 10)  # both model calls of the run
    sent = stack.fake.requests()[seen:]
    assert len(sent) == 2
    assert_tool_result_on_the_wire(stack.provider, sent[1])
    # streamed: the same run, with the tool call and its result as status updates
    seen = stack.fake.script(CALCULATOR)
    results = sse_results(stack.url, "SendStreamingMessage", v1_params("and streamed?"))
    data = tool_data(results)
    assert [d["type"] for d in data] == ["tool_call", "tool_result"]
    assert data[0]["tool"] == "calculator" and data[0]["arguments"] == {"expression": "6*7"}
    assert data[1]["ok"] is True and data[1]["output"] == "42"
    assert "".join(deltas(results)) == "The tool returned: 42"
    assert results[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert usage_of(get_task(stack, results[0]["task"]["id"])) == (16, 10)
    sent = stack.fake.requests()[seen:]
    assert len(sent) == 2 and all(streamed(stack.provider, r) for r in sent)
    assert_tool_result_on_the_wire(stack.provider, sent[1])


def test_api_key_reaches_the_upstream_header_and_never_the_logs(stack: Stack) -> None:
    stack.fake.script({"status": 400, "error": "rejected, so the error path logs too"})
    failed = rpc(stack.url, "SendMessage", v1_params("fail once"), version=V1)["result"]["task"]
    assert failed["status"]["state"] == "TASK_STATE_FAILED"
    rpc(stack.url, "SendMessage", v1_params("key check"), version=V1)
    every = stack.fake.requests()
    assert every
    for recorded in every:
        headers = {k.lower(): v for k, v in recorded["headers"].items()}
        if stack.provider == "ollama":
            assert not any(h in headers for h in AUTH_HEADERS), headers
        else:
            name, value = KEY_HEADERS[stack.provider]
            assert headers[name] == value
            others = [h for h in AUTH_HEADERS if h != name]
            assert not any(h in headers for h in others), headers
        assert KEY not in recorded["path"] + json.dumps(recorded["query"])
        assert KEY not in json.dumps(recorded["body"])
    logs = stack.server.log_lines()
    assert any("hector.access" in line for line in logs)  # debug logs were written
    assert not [line for line in logs if KEY in line or KEY[-8:] in line]
    assert KEY not in status_text(failed)


# --- 2. retries and errors ------------------------------------------------------------------


def test_429_with_retry_after_is_retried_and_succeeds(stack: Stack) -> None:
    seen = stack.fake.script({"status": 429, "retry_after": "1", "error": "slow down"})
    started = time.monotonic()
    task = rpc(stack.url, "SendMessage", v1_params("retry me"), version=V1)["result"]["task"]
    elapsed = time.monotonic() - started
    assert task["status"]["state"] == "TASK_STATE_COMPLETED", status_text(task)
    assert reply_text(task) == "echo: retry me"
    assert elapsed >= 0.9  # Retry-After: 1 was honoured, not the 0.5 s backoff
    sent = stack.fake.requests()[seen:]
    assert len(sent) == 2
    assert sent[0]["body"] == sent[1]["body"]  # the same request, again


def test_400_fails_at_once_with_a_clear_error(stack: Stack) -> None:
    error = "model does-not-exist is not a model (e2e)"
    bad = {"status": 400, "error": error}
    # A2A send: the task fails, its status message names the provider, status and cause
    seen = stack.fake.script(bad)
    task = rpc(stack.url, "SendMessage", v1_params("doomed"), version=V1)["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_FAILED"
    message = status_text(task)
    assert stack.provider in message and "400" in message and error in message, message
    assert "Traceback" not in message and "\n" not in message
    assert len(stack.fake.requests()) - seen == 1  # not retried
    # A2A stream: ends failed with the same message
    seen = stack.fake.script(bad)
    results = sse_results(stack.url, "SendStreamingMessage", v1_params("doomed stream"))
    final = results[-1]["statusUpdate"]["status"]
    assert final["state"] == "TASK_STATE_FAILED"
    assert "400" in status_text(final) and error in status_text(final)
    assert len(stack.fake.requests()) - seen == 1
    # /v1/chat/completions: a JSON error in OpenAI's shape, not a 500 with a traceback
    seen = stack.fake.script(bad)
    response = httpx.post(
        stack.server.url + "/v1/chat/completions",
        json={"model": "assistant", "messages": [{"role": "user", "content": "doomed"}]},
        timeout=20,
    )
    assert 400 <= response.status_code < 600 and response.status_code != 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    body = response.json()["error"]
    assert "400" in body["message"] and error in body["message"] and body["type"]
    assert len(stack.fake.requests()) - seen == 1
    # the SDK surfaces it as an API error carrying that message
    seen = stack.fake.script(bad)
    client = openai.OpenAI(
        base_url=stack.server.url + "/v1", api_key="unused", timeout=20, max_retries=0
    )
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "doomed"}]
        )
    assert raised.value.status_code != 500 and error in str(raised.value)
    # streamed: refused before the stream started, so the same HTTP error, in the SDK too
    stack.fake.script(bad)
    streamed_response = httpx.post(
        stack.server.url + "/v1/chat/completions",
        json={"model": "assistant", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        timeout=20,
    )
    assert streamed_response.status_code == response.status_code, streamed_response.text
    assert streamed_response.json() == response.json()
    seen = stack.fake.script(bad)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "doomed"}], stream=True
        )
    assert raised.value.status_code == response.status_code and error in str(raised.value)
    assert len(stack.fake.requests()) - seen == 1


# --- 3. cancelling a long stream stops the upstream request --------------------------------


def _stream_then(
    stack: Stack, action: Callable[[str], None] | None, request_id: str = "e2e-stream"
) -> tuple[str, list[JSON]]:
    """Start a slow SendStreamingMessage, read the task and two text deltas, then run
    ``action(task_id)`` and read on to the end of the stream; with no action, close the
    connection instead. Returns the task id and every event read."""
    body = {"jsonrpc": "2.0", "id": 9, "method": "SendStreamingMessage", "params": v1_params("go")}
    results: list[JSON] = []
    task_id = ""
    with httpx.stream(
        "POST",
        stack.url,
        json=body,
        headers={"A2A-Version": V1, "X-Request-ID": request_id},
        timeout=10,
    ) as response:
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data:"):
                results.append(json.loads(line[5:])["result"])
                task_id = task_id or results[0]["task"]["id"]
            if len(deltas(results)) >= 2 or len(results) > 20:
                break
        assert len(deltas(results)) >= 2, results
        if action is None:
            return task_id, results  # leaving the block closes the connection
        action(task_id)
        for count, line in enumerate(lines):
            if line.startswith("data:"):
                results.append(json.loads(line[5:])["result"])
            assert count < 200, "the stream did not end after the cancel"
    return task_id, results


def _upstream_was_stopped(stack: Stack, seen: int) -> JSON:
    """The slow upstream request, once the fake has seen its client go away."""

    def stopped() -> JSON | None:
        sent = stack.fake.requests()[seen:]
        assert len(sent) == 1, sent
        return sent[0] if sent[0]["completed"] is not None else None

    upstream: JSON = wait_for("the fake to see the upstream request end", stopped)
    assert upstream["completed"] is False and upstream["disconnected"] is True, upstream
    assert 0 < upstream["events_sent"] < upstream["events_total"] // 2, upstream
    return upstream


def test_cancel_task_stops_the_upstream_stream(stack: Stack) -> None:
    seen = stack.fake.script(SLOW)
    started = time.monotonic()
    canceled: list[JSON] = []

    def cancel(task_id: str) -> None:
        canceled.append(rpc(stack.url, "CancelTask", {"id": task_id}, version=V1)["result"])

    task_id, results = _stream_then(stack, cancel)
    assert canceled[0]["status"]["state"] == "TASK_STATE_CANCELED"
    assert results[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_CANCELED"
    _upstream_was_stopped(stack, seen)
    assert time.monotonic() - started < 6  # the whole reply would take ~10 s
    task = get_task(stack, task_id)
    assert task["status"]["state"] == "TASK_STATE_CANCELED"


def test_client_leaving_a_stream_leaves_the_task_running(stack: Stack) -> None:
    """A2A: a stream's end changes nothing about the task (the upstream stream goes on);
    a later CancelTask stops it."""
    seen = stack.fake.script(SLOW)
    task_id, _ = _stream_then(stack, None)
    assert get_task(stack, task_id)["status"]["state"] == "TASK_STATE_WORKING"
    assert stack.fake.requests()[seen:][0]["completed"] is None  # still streaming
    canceled = rpc(stack.url, "CancelTask", {"id": task_id}, version=V1)["result"]
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    _upstream_was_stopped(stack, seen)


def test_chat_completions_client_leaving_stops_the_upstream_stream(stack: Stack) -> None:
    seen = stack.fake.script(SLOW)
    body = {"model": "assistant", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    content: list[str] = []
    with httpx.stream(
        "POST", stack.server.url + "/v1/chat/completions", json=body, timeout=10
    ) as response:
        for count, line in enumerate(response.iter_lines()):
            if line.startswith("data: {"):
                choices = json.loads(line[6:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    content.append(choices[0]["delta"]["content"])
            if len(content) >= 2 or count > 50:
                break
    assert len(content) >= 2  # leaving the block closed the connection mid-stream
    _upstream_was_stopped(stack, seen)


# --- 4. the a2a-sdk client gets incremental updates -----------------------------------------


async def _sdk_stream(url: str, text: str) -> list[Any]:
    client = await create_client(url, client_config=ClientConfig(streaming=True))
    async with client:
        request = SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))
        context = ClientCallContext(timeout=20)
        return [event async for event in client.send_message(request, context=context)]


def test_a2a_sdk_streaming_client_receives_incremental_updates(stack: Stack) -> None:
    seen = stack.fake.script()
    text = "many small pieces for the sdk"
    events = asyncio.run(_sdk_stream(stack.server.url, text))
    updates = [e.artifact_update for e in events if e.HasField("artifact_update")]
    pieces = [p.text for u in updates for p in u.artifact.parts]
    assert len([p for p in pieces if p]) > 3  # several updates, not one final chunk
    assert "".join(pieces) == f"echo: {text}"
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    (upstream,) = stack.fake.requests()[seen:]
    assert streamed(stack.provider, upstream)


# --- 5. hector call -------------------------------------------------------------------------


def _hector_call(*args: str) -> tuple[subprocess.CompletedProcess[str], list[float]]:
    """Run ``hector call ARGS`` (killed after 30 s); also returns when each stdout read
    arrived (seconds since start), to show the reply was printed as it streamed."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hector_py", "call", *args, "--timeout", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    arrivals: list[float] = []
    output: dict[int, list[bytes]] = {1: [], 2: []}

    def drain(fd: int, into: list[bytes], timed: bool) -> None:
        while data := os.read(fd, 4096):
            if timed:
                arrivals.append(time.monotonic() - started)
            into.append(data)

    readers = [
        threading.Thread(target=drain, args=(proc.stdout.fileno(), output[1], True), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr.fileno(), output[2], False), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for reader in readers:
            reader.join(5)
        proc.stdout.close()
        proc.stderr.close()
    stdout, stderr = (b"".join(output[fd]).decode() for fd in (1, 2))
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), arrivals


def test_hector_call_streams_and_continues_the_session(
    fake_llm: Callable[..., FakeLLM], serve: Callable[..., Server], tmp_path: Path
) -> None:
    # ollama (NDJSON upstream): a tool call, then the answer in 3-character pieces 0.1 s apart
    fake = fake_llm(
        "ollama",
        "--tool-call",
        'calculator:{"expression":"6*7"}',
        "--chunk-size",
        "3",
        "--chunk-delay",
        "0.1",
    )
    config = tmp_path / "tools.yaml"
    config.write_text(TOOL_CONFIG)
    server = serve(*serve_args(fake, config), env=clean_env())
    first, arrivals = _hector_call("assistant", "what is 6*7?", "--url", server.url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.replace("\n", "") == "The tool returned: 42"
    # printed as it streamed: the pieces reached stdout over ~0.7 s, not all at the end
    assert len(arrivals) > 2 and arrivals[-1] - arrivals[0] > 0.3, arrivals
    assert "calculator" in first.stderr and "42" in first.stderr  # the tool call, shown
    assert "completed" in first.stderr
    session = first.stderr.split("session ", 1)[1].split()[0]
    sent = fake.requests()
    assert len(sent) == 2 and all(streamed("ollama", r) for r in sent)
    # the follow-up continues the session: the upstream sees the earlier turn
    second, _ = _hector_call(
        "assistant", "and twice that?", "--url", server.url, "--session", session
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.replace("\n", "") == "echo: and twice that?"
    assert f"session {session}" in second.stderr
    follow_up = fake.requests()[2]
    turns = [(m["role"], m["content"]) for m in follow_up["body"]["messages"]]
    assert turns[1:] == [
        ("user", "what is 6*7?"),
        ("assistant", "The tool returned: 42"),
        ("user", "and twice that?"),
    ]


# --- fake flags, standalone: a server of its own -------------------------------------------


def test_fake_flags_429_retry_after_then_success_through_chat_completions(
    fake_llm: Callable[..., FakeLLM], serve: Callable[..., Server], tmp_path: Path
) -> None:
    fake = fake_llm(
        "openai", "--fail-first", "1", "--status", "429", "--retry-after", "1", "--usage", "3,2"
    )
    config = tmp_path / "tools.yaml"
    config.write_text(TOOL_CONFIG)
    server = serve(*serve_args(fake, config), env=clean_env())
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=20, max_retries=0)
    started = time.monotonic()
    completion = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "after a 429"}]
    )
    assert time.monotonic() - started >= 0.9
    assert completion.choices[0].message.content == "echo: after a 429"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 2)
    assert len(fake.requests()) == 2
    assert not [line for line in server.log_lines() if KEY in line]


def test_a_client_that_hangs_up_is_logged_and_not_counted_as_a_5xx(
    fake_llm: Callable[..., FakeLLM], serve: Callable[..., Server], tmp_path: Path
) -> None:
    """A slow fake from flags (``--chunk-delay 0.2 --reply LONG``): the client leaves an
    A2A stream, which (with ``a2a.cancel_on_disconnect``) stops the upstream request and
    cancels the task. Then, as the
    README says, "every request writes one hector.access line" -- this one too -- and a
    client hanging up is not a server error in ``hector_requests_total``."""
    fake = fake_llm("openai", "--chunk-delay", "0.2", "--reply", SLOW_TEXT)
    config = tmp_path / "tools.yaml"
    config.write_text(TOOL_CONFIG + "a2a:\n  cancel_on_disconnect: true\n")
    server = serve(*serve_args(fake, config), "--metrics", env=clean_env())
    own = Stack("openai", fake, server)
    task_id, _ = _stream_then(own, None, request_id="hangs-up-1")
    _upstream_was_stopped(own, 0)
    assert wait_for(
        "the task to be canceled",
        lambda: get_task(own, task_id)["status"]["state"] == "TASK_STATE_CANCELED",
    )
    health = httpx.get(server.url + "/health", headers={"X-Request-ID": "after-1"}, timeout=5)
    assert health.status_code == 200
    wait_for(
        "the access line of a later request",
        lambda: any("after-1" in line and "hector.access" in line for line in server.log_lines()),
    )
    hung_up = [line for line in server.log_lines() if "hangs-up-1" in line]
    assert any("client left" in line for line in hung_up), hung_up
    problems = []
    if not [line for line in hung_up if "hector.access" in line]:
        problems.append(f"no hector.access line for the request whose client left: {hung_up}")
    scrape = httpx.get(server.url + "/metrics", timeout=5).text.splitlines()
    posts = [
        line for line in scrape if line.startswith("hector_requests_total{") and 'route="/"' in line
    ]
    if any('code="500"' in line or 'status="error"' in line for line in posts):
        problems.append(f"a client hanging up was counted as a server error: {posts}")
    assert not problems, "\n".join(problems)
