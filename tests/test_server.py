"""The real ``hector serve`` process: health, cards, A2A in both dialects, errors, logs, drain."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.client import ClientCallContext
from a2a.helpers import get_stream_response_text, new_text_message
from a2a.types.a2a_pb2 import (
    AgentCard,
    AgentInterface,
    GetTaskRequest,
    Role,
    SendMessageRequest,
    TaskState,
)

from hector_py import __version__
from tests.conftest import Server, clean_env, rpc, v03_message


def test_health_probes(serve: Any) -> None:
    server: Server = serve()
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok"
    assert health["version"] == __version__
    assert health["uptime_s"] >= 0
    assert health["components"]["agents"]["status"] == "ok"
    assert httpx.get(f"{server.url}/health/live").status_code == 200
    assert httpx.get(f"{server.url}/health/ready").json() == {"status": "ready"}


def test_zero_config_announces_demo_and_banner_has_real_host(serve: Any) -> None:
    server: Server = serve()
    log = "\n".join(server.log_lines())
    assert "using the offline demo model" in log
    assert server.url.startswith("http://127.0.0.1:")
    assert f"{server.url}/agents/assistant" in log and f"{server.url}/health" in log
    assert "0.0.0.0" not in log


def test_message_send_without_version_header_is_v03(serve: Any) -> None:
    server: Server = serve()
    reply = rpc(server.url + "/", "message/send", v03_message("hello"))
    task = reply["result"]
    assert reply["id"] == 1
    assert task["kind"] == "task"
    assert task["status"]["state"] == "completed"
    [artifact] = task["artifacts"]
    assert artifact["parts"] == [{"kind": "text", "text": artifact["parts"][0]["text"]}]
    assert '"hello"' in artifact["parts"][0]["text"] and "demo" in artifact["parts"][0]["text"]
    assert [m["role"] for m in task["history"]] == ["user", "agent"]


def test_session_continues_by_context_id(serve: Any) -> None:
    server: Server = serve()
    first = rpc(server.url + "/agents/assistant", "message/send", v03_message("one"))["result"]
    second = rpc(
        server.url + "/agents/assistant",
        "message/send",
        v03_message("two", contextId=first["contextId"]),
    )["result"]
    assert second["contextId"] == first["contextId"]
    assert "(turn 2)" in second["artifacts"][0]["parts"][0]["text"]
    fetched = rpc(server.url + "/", "tasks/get", {"id": first["id"]})["result"]
    assert fetched["id"] == first["id"] and fetched["status"]["state"] == "completed"


def test_v10_send_message_over_plain_http(serve: Any) -> None:
    server: Server = serve()
    params = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}
    response = httpx.post(
        server.url + "/",
        headers={"A2A-Version": "1.0"},
        json={"jsonrpc": "2.0", "id": "x", "method": "SendMessage", "params": params},
    )
    assert response.headers["A2A-Version"] == "1.0"
    task = response.json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["status"]["timestamp"].endswith("Z")
    assert "kind" not in task and task["history"][1]["role"] == "ROLE_AGENT"


async def _ask_with_sdk(client_target: str | AgentCard, text: str) -> tuple[str, str, int]:
    config = ClientConfig(streaming=False)
    client = await create_client(client_target, client_config=config)
    async with client:
        request = SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))
        context = ClientCallContext(timeout=20)
        events = [event async for event in client.send_message(request, context=context)]
        assert len(events) == 1 and events[0].HasField("task")
        task = events[0].task
        fetched = await client.get_task(GetTaskRequest(id=task.id), context=context)
        assert fetched.id == task.id
        return (
            type(client._transport).__name__,
            get_stream_response_text(events[0]),
            task.status.state,
        )


def test_a2a_sdk_client_speaks_v10_from_our_card(serve: Any) -> None:
    server: Server = serve()
    transport, text, state = asyncio.run(_ask_with_sdk(server.url, "hello"))
    assert transport == "JsonRpcTransport"
    assert state == TaskState.TASK_STATE_COMPLETED
    assert 'You said: "hello"' in text


def test_a2a_sdk_client_speaks_v03(serve: Any) -> None:
    server: Server = serve()
    card = AgentCard(
        name="assistant",
        supported_interfaces=[
            AgentInterface(
                url=f"{server.url}/agents/assistant",
                protocol_binding="JSONRPC",
                protocol_version="0.3",
            )
        ],
    )
    transport, text, state = asyncio.run(_ask_with_sdk(card, "hello"))
    assert transport == "CompatJsonRpcTransport"
    assert state == TaskState.TASK_STATE_COMPLETED
    assert 'You said: "hello"' in text


def test_agent_cards_and_listing(serve: Any) -> None:
    server: Server = serve()
    response = httpx.get(f"{server.url}/.well-known/agent-card.json")
    card = response.json()
    assert response.headers["Last-Modified"].endswith(" GMT") and response.headers["ETag"]
    url = f"{server.url}/agents/assistant"
    assert card["url"] == url and card["protocolVersion"].startswith("0.3")
    assert {
        (i["url"], i["protocolBinding"], i["protocolVersion"]) for i in card["supportedInterfaces"]
    } == {(url, "JSONRPC", "1.0"), (url, "JSONRPC", "0.3"), (url, "HTTP+JSON", "1.0")}
    assert httpx.get(url).json() == card
    listing = httpx.get(f"{server.url}/agents").json()
    assert listing["total"] == 1 and listing["agents"][0]["name"] == "assistant"
    missing = httpx.get(f"{server.url}/agents/ghost")
    assert missing.status_code == 404 and "ghost" in missing.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "params", "version", "raw", "code"),
    [
        ("", None, None, b"{not json", -32700),
        ("", None, None, b"[1, 2]", -32600),
        ("", None, None, b'{"jsonrpc": "1.0", "id": 1, "method": "message/send"}', -32600),
        ("", None, None, b'{"jsonrpc": "2.0", "id": true, "method": "message/send"}', -32600),
        ("tasks/explode", {}, None, None, -32601),
        ("message/send", [], None, None, -32602),
        ("message/send", {"message": "hi"}, None, None, -32602),
        ("message/send", {"message": {"role": "user", "parts": []}}, None, None, -32602),
        ("message/send", {"message": {"parts": [{"kind": "text", "text": 5}]}}, None, None, -32602),
        (
            "message/send",
            {"message": {"parts": [{"kind": "text", "text": "  "}]}},
            None,
            None,
            -32602,
        ),
        ("tasks/get", {"id": "nope"}, None, None, -32001),
        ("SendMessage", {"message": {"parts": [{"text": "x"}]}}, "2.0", None, -32009),
        ("SendMessage", {"message": {"parts": [{"text": "x"}]}}, None, None, -32009),
    ],
)
def test_jsonrpc_errors(
    serve_once: Server, method: str, params: Any, version: str | None, raw: bytes | None, code: int
) -> None:
    reply = rpc(serve_once.url + "/", method, params, version=version, raw=raw)
    assert reply["jsonrpc"] == "2.0"
    assert reply["error"]["code"] == code, reply
    assert set(reply["error"]) == {"code", "message"}
    assert reply["error"]["message"]


def test_request_id_is_kept_or_generated(serve: Any) -> None:
    server: Server = serve()
    kept = httpx.get(f"{server.url}/health", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["X-Request-ID"] == "abc-123"
    made = httpx.get(f"{server.url}/health", headers={"X-Request-ID": "bad id\twith tabs"})
    assert len(made.headers["X-Request-ID"]) == 32
    assert httpx.get(f"{server.url}/nowhere").headers["X-Request-ID"]


def test_json_logs_every_line_parses(serve: Any) -> None:
    server: Server = serve("--log-format", "json", "--log-level", "debug")
    rpc(server.url + "/", "message/send", v03_message("hello"))
    httpx.get(f"{server.url}/health", headers={"X-Request-ID": "trace-me"})
    assert server.stop() == 0
    records = [json.loads(line) for line in server.log_lines()]
    assert all({"time", "level", "msg", "logger"} <= set(r) for r in records)
    assert all(r["time"].endswith("Z") for r in records)
    access = [r for r in records if r["logger"] == "hector.access"]
    assert len(access) == 2
    assert {r["route"] for r in access} == {"/", "/health"}
    assert any(r["request_id"] == "trace-me" for r in access)
    run = next(r for r in records if r["msg"] == "agent run completed")
    assert run["agent"] == "assistant" and run["session_id"] and run["request_id"]
    assert isinstance(run["duration_ms"], float)


def test_log_level_and_file_from_env(tmp_path: Path, serve: Any) -> None:
    log_file = tmp_path / "hector.log"
    env = clean_env(
        HECTOR_LOG_FORMAT="json", HECTOR_LOG_LEVEL="warn", HECTOR_LOG_FILE=str(log_file)
    )
    server: Server = serve("--log-level", "info", env=env, log_file=log_file)  # flag beats env
    httpx.get(f"{server.url}/health")
    assert server.stop() == 0
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(r["logger"] == "hector.access" for r in records)


def test_sigterm_lets_a_slow_request_finish(tmp_path: Path, serve: Any) -> None:
    config = tmp_path / "slow.yaml"
    config.write_text("llms:\n  default:\n    provider: demo\n    stream_delay: 0.25\n")
    server: Server = serve("-c", str(config), "--log-level", "debug")
    result: dict[str, Any] = {}

    def send() -> None:
        result["reply"] = rpc(server.url + "/", "message/send", v03_message("take your time"))

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 5
    while "agent run started" not in "".join(server.log_lines()):
        assert time.monotonic() < deadline, "the request never reached the agent"
        time.sleep(0.02)
    # the request is now in flight: the demo reply takes ~3 s at 0.25 s per word
    started = time.monotonic()
    assert server.stop() == 0
    sender.join(10)
    assert result["reply"]["result"]["status"]["state"] == "completed"
    assert time.monotonic() - started < 10
