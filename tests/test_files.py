"""Files in and out of the model: A2A file parts (inline and by URL, both dialects) and data
parts, ``/v1`` image parts, and MCP images reach each provider in its native form; what a
model cannot take, an oversized file or a URL to a host not allowed is a spec error."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from a2a.types.a2a_pb2 import Message as SdkMessage
from a2a.types.a2a_pb2 import Part, Role, SendMessageRequest

from hector_py.llm.base import Attachment, LLMRequest, Message, ToolCall
from hector_py.observability.payloads import input_attributes
from tests.a2a_helpers import DIALECTS, call, collect, reply_text, sdk_client
from tests.conftest import FakeLLM, Server, configured_server
from tests.fakes.llm_servers import PROVIDERS
from tests.test_providers import run, upstream

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
CONFIG = """\
llms:
  default: {{provider: openai, model: gpt-fake, base_url: "{url}", max_retries: 0}}
  local: {{provider: ollama, model: llava, base_url: "{url}", max_retries: 0}}
agents:
  assistant: {{}}
  ollama: {{llm: local}}
a2a:
  files: {{max_bytes: 4096, fetch_hosts: [127.0.0.1]}}
"""


class _Files(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body, kind = {"/pixel.png": (PNG, "image/png"), "/big.png": (PNG * 100, "image/png")}.get(
            self.path, (b"", "")
        )
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", kind or "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def files_host() -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 with a PNG (and one over the size cap)."""
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{http.server_address[1]}"
    http.shutdown()


@pytest.fixture(scope="module")
def server(openai_fake: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with configured_server(
        tmp_path_factory, "files", CONFIG.format(url=openai_fake.base_url)
    ) as server:
        yield server


def last_user(fake: FakeLLM) -> dict[str, Any]:
    """The last user message the fake OpenAI upstream received."""
    messages = fake.requests()[-1]["body"]["messages"]
    return next(m for m in reversed(messages) if m["role"] == "user")  # type: ignore[no-any-return]


def png_url(data: bytes = PNG) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize("version", DIALECTS)
def test_a2a_png_part_reaches_openai_as_image_url(
    server: Server, openai_fake: FakeLLM, version: str
) -> None:
    """The a2a-sdk client sends text and an inline PNG (v0.3: a FilePart with bytes)."""

    async def send() -> str:
        client = await sdk_client(server.url, version)
        parts = [
            Part(text="what is this?"),
            Part(raw=PNG, media_type="image/png", filename="p.png"),
        ]
        message = SdkMessage(message_id=f"png-{version}", role=Role.ROLE_USER, parts=parts)
        events = await collect(client.send_message(SendMessageRequest(message=message)))
        await client.close()
        return reply_text(events)

    assert run(send()) == "echo: what is this?"
    content = last_user(openai_fake)["content"]
    assert content == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": png_url()}},
    ]


def test_v03_file_by_uri_is_fetched_from_an_allowed_host(
    server: Server, openai_fake: FakeLLM, files_host: str
) -> None:
    part = {"kind": "file", "file": {"uri": f"{files_host}/pixel.png", "name": "pixel.png"}}
    params = {"message": {"kind": "message", "messageId": "u1", "role": "user", "parts": [part]}}
    result = call(f"{server.url}/agents/assistant", "message/send", params)
    assert result["result"]["status"]["state"] == "completed", result
    assert last_user(openai_fake)["content"] == [
        {"type": "image_url", "image_url": {"url": png_url()}}
    ]


def test_data_part_reaches_the_model_as_json_text(server: Server, openai_fake: FakeLLM) -> None:
    parts = [{"text": "ship this order"}, {"data": {"order": 42, "items": ["ABC-1"]}}]
    params = {"message": {"messageId": "d1", "role": "ROLE_USER", "parts": parts}}
    result = call(f"{server.url}/agents/assistant", "SendMessage", params)
    assert result["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED", result
    assert last_user(openai_fake)["content"] == 'ship this order\n{"order": 42, "items": ["ABC-1"]}'


def _refused(server: Server, part: dict[str, Any], agent: str = "assistant") -> dict[str, Any]:
    params = {"message": {"messageId": "bad", "role": "ROLE_USER", "parts": [{"text": "hi"}, part]}}
    error: dict[str, Any] = call(f"{server.url}/agents/{agent}", "SendMessage", params)["error"]
    return error


def test_bad_files_are_spec_errors_and_nothing_is_stuck(server: Server, files_host: str) -> None:
    wav = {"raw": base64.b64encode(b"RIFF0000WAVE").decode(), "mediaType": "audio/wav"}
    assert _refused(server, wav)["code"] == -32005  # ContentTypeNotSupported
    assert "audio/wav is not accepted" in _refused(server, wav)["message"]
    pdf = {"raw": base64.b64encode(PDF).decode(), "filename": "a.pdf"}
    assert _refused(server, pdf, agent="ollama")["code"] == -32005  # ollama takes images only
    forbidden = _refused(server, {"url": "http://169.254.169.254/latest/meta-data"})
    assert forbidden["code"] == -32602
    assert "host '169.254.169.254' is not in a2a.files.fetch_hosts" in forbidden["message"]
    big = _refused(server, {"url": f"{files_host}/big.png"})
    assert big["code"] == -32602 and "over the limit of 4096 bytes" in big["message"], big
    inline = {"raw": base64.b64encode(PNG * 100).decode(), "mediaType": "image/png"}
    assert "over the limit of 4096" in _refused(server, inline)["message"]
    garbled = _refused(server, {"raw": "%%%not base64", "mediaType": "image/png"})
    assert garbled["code"] == -32602 and "not valid base64" in garbled["message"]
    untyped = _refused(server, {"raw": base64.b64encode(PNG).decode()})
    assert untyped["code"] == -32005 and "media type is not given" in untyped["message"]
    # 50 MB is refused by the body limit before it is read, and the server keeps serving
    huge = httpx.post(
        f"{server.url}/agents/assistant",
        content=b'{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"x": "'
        + b"A" * 50_000_000
        + b'"}}',
        headers={"Content-Type": "application/json", "A2A-Version": "1.0"},
        timeout=30,
    )
    assert huge.status_code == 413
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
    tasks = call(f"{server.url}/agents/assistant", "ListTasks", {})["result"]["tasks"]
    assert all(t["status"]["state"] != "TASK_STATE_WORKING" for t in tasks)


def test_card_lists_the_input_types_the_model_takes(server: Server) -> None:
    card = httpx.get(f"{server.url}/agents/ollama/.well-known/agent-card.json", timeout=5).json()
    assert card["defaultInputModes"] == [
        "text/plain",
        "application/json",
        "image/jpeg",
        "image/png",
    ]


def test_v1_image_parts_reach_the_upstream(server: Server, openai_fake: FakeLLM) -> None:
    content = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": png_url()}},
    ]
    body = {"model": "assistant", "messages": [{"role": "user", "content": content}]}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    assert last_user(openai_fake)["content"] == content
    body["messages"][0]["content"][1]["image_url"]["url"] = "http://example.com/cat.png"
    refused = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "messages[0].content[1]"
    assert "not in a2a.files.fetch_hosts" in refused.json()["error"]["message"]


IMAGE = Attachment("image/png", PNG, "p.png")
DOC = Attachment("application/pdf", PDF, "a.pdf")
B64 = base64.b64encode(PNG).decode()


def _sent(provider: str, messages: tuple[Message, ...]) -> Any:
    async def go() -> Any:
        async with upstream(provider) as (llm, fake):
            await llm.complete(LLMRequest(messages))
            return fake.requests[-1].body

    return run(go())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_gets_files_in_its_native_form(provider: str) -> None:
    files = (IMAGE,) if provider == "ollama" else (IMAGE, DOC)
    body = _sent(provider, (Message("user", "look", attachments=files),))
    pdf = base64.b64encode(PDF).decode()
    if provider == "openai":
        assert body["messages"][0]["content"] == [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": png_url()}},
            {
                "type": "file",
                "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf}"},
            },
        ]
    elif provider == "anthropic":
        assert body["messages"][0]["content"] == [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}},
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
            },
        ]
    elif provider == "gemini":
        assert body["contents"][0]["parts"] == [
            {"text": "look"},
            {"inlineData": {"mimeType": "image/png", "data": B64}},
            {"inlineData": {"mimeType": "application/pdf", "data": pdf}},
        ]
    else:
        assert body["messages"][0] == {"role": "user", "content": "look", "images": [B64]}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_image_a_tool_returned_goes_with_its_result(provider: str) -> None:
    call_ = ToolCall("c1", "snapshot", {})
    messages = (
        Message("user", "take a picture"),
        Message("assistant", "", tool_calls=(call_,)),
        Message("tool", "done", tool_call_id="c1", name="snapshot", attachments=(IMAGE,)),
    )
    body = _sent(provider, messages)
    if provider == "openai":  # a tool message holds text only: the image follows as a user turn
        assert body["messages"][-2] == {"role": "tool", "tool_call_id": "c1", "content": "done"}
        assert body["messages"][-1]["content"][1] == {
            "type": "image_url",
            "image_url": {"url": png_url()},
        }
    else:
        result = body["messages"][-1]["content"][0]
        assert result["type"] == "tool_result" and result["content"][1]["type"] == "image"


def test_captured_payloads_name_files_but_never_hold_their_bytes() -> None:
    captured = input_attributes([Message("user", "look", attachments=(IMAGE,))], lambda t: t)
    parts = json.loads(captured["gen_ai.input.messages"])[0]["parts"]
    assert parts[1] == {"type": "file", "modality": "image", "mime_type": "image/png", "size": 68}
    assert B64 not in captured["gen_ai.input.messages"]
