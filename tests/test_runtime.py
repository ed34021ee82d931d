"""The agent runtime through the real server: A2A streaming, tasks, sqlite, OpenAI API, call."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
from a2a.client import ClientConfig, create_client
from a2a.client.client import ClientCallContext
from a2a.helpers import new_text_message
from a2a.types.a2a_pb2 import Role, SendMessageRequest, TaskState

from tests.conftest import Server, clean_env, rpc, v03_message

V1 = "1.0"


def slow_config(tmp_path: Path, delay: float, extra: str = "") -> Path:
    path = tmp_path / "slow.yaml"
    path.write_text(f"llms:\n  default:\n    provider: demo\n    stream_delay: {delay}\n{extra}")
    return path


def sse_events(
    url: str, method: str, params: dict[str, Any], version: str | None = V1, limit: int = 500
) -> list[dict[str, Any]]:
    """POST a streaming JSON-RPC call and collect every SSE ``data:`` body (bounded)."""
    headers = {"A2A-Version": version} if version else {}
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    events: list[dict[str, Any]] = []
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
            assert len(events) < limit
    return events


def v1_params(text: str, **message: Any) -> dict[str, Any]:
    return {
        "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": text}], **message}
    }


def test_v1_stream_sends_task_then_deltas_then_completed(serve: Any) -> None:
    server: Server = serve()
    events = [
        e["result"]
        for e in sse_events(server.url + "/", "SendStreamingMessage", v1_params("one two three"))
    ]
    assert "task" in events[0]
    deltas = [e["artifactUpdate"] for e in events if "artifactUpdate" in e]
    reply = 'You said: "one two three". This is the offline demo model (turn 1).'
    assert "".join(p["text"] for d in deltas for p in d["artifact"]["parts"]) == reply
    assert len(deltas) > 5  # word by word, not one final chunk
    assert deltas[0]["append"] is False and all(d["append"] for d in deltas[1:])
    assert all(d["artifact"]["parts"][0]["text"] for d in deltas)  # no empty last chunk
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


def test_v03_stream_has_kinds_and_final_flag(serve: Any) -> None:
    server: Server = serve()
    events = [
        e["result"]
        for e in sse_events(server.url + "/", "message/stream", v03_message("hi"), version=None)
    ]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "task" and kinds[-1] == "status-update"
    assert "artifact-update" in kinds
    assert events[-1]["final"] is True and events[-1]["status"]["state"] == "completed"
    assert all(e["final"] is False for e in events[1:-1] if e["kind"] == "status-update")


async def _sdk_stream(url: str) -> list[Any]:
    client = await create_client(url, client_config=ClientConfig(streaming=True))
    async with client:
        request = SendMessageRequest(message=new_text_message("stream me", role=Role.ROLE_USER))
        context = ClientCallContext(timeout=20)
        return [event async for event in client.send_message(request, context=context)]


def test_a2a_sdk_streaming_gets_incremental_updates(serve: Any) -> None:
    server: Server = serve()
    events = asyncio.run(_sdk_stream(server.url))
    updates = [e for e in events if e.HasField("artifact_update")]
    assert len(updates) > 3
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED


def test_demo_tool_call_streams_tool_events(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "tools.yaml"
    config.write_text("agents:\n  assistant:\n    tools: [calculator]\n")
    server: Server = serve("-c", str(config))
    events = [
        e["result"]
        for e in sse_events(
            server.url + "/",
            "SendStreamingMessage",
            v1_params('use calculator {"expression": "6*7"}'),
        )
    ]
    tool_data = [
        p["data"]
        for e in events
        if "statusUpdate" in e
        for p in e["statusUpdate"]["status"].get("message", {}).get("parts", [])
        if "data" in p
    ]
    assert [d["type"] for d in tool_data] == ["tool_call", "tool_result"]
    assert tool_data[1]["ok"] is True and "42" in tool_data[1]["output"]
    text = "".join(
        p["text"]
        for e in events
        if "artifactUpdate" in e
        for p in e["artifactUpdate"]["artifact"]["parts"]
    )
    assert "42" in text


def test_cancel_stops_a_running_task_and_list_tasks(serve: Any, tmp_path: Path) -> None:
    server: Server = serve("-c", str(slow_config(tmp_path, 0.5)))
    params = {**v1_params("a slow answer please"), "configuration": {"returnImmediately": True}}
    reply = rpc(server.url + "/", "SendMessage", params, version=V1)
    task = reply["result"]["task"]
    assert task["status"]["state"] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
    canceled = rpc(server.url + "/", "CancelTask", {"id": task["id"]}, version=V1)["result"]
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    again = rpc(server.url + "/", "CancelTask", {"id": task["id"]}, version=V1)
    assert again["error"]["code"] == -32002
    listed = rpc(server.url + "/", "ListTasks", {"status": "TASK_STATE_CANCELED"}, version=V1)
    assert [t["id"] for t in listed["result"]["tasks"]] == [task["id"]]
    assert listed["result"]["totalSize"] == 1


def test_card_has_etag_and_cache_control(serve_once: Server) -> None:
    first = httpx.get(serve_once.url + "/.well-known/agent-card.json")
    assert first.headers["Cache-Control"].startswith("public, max-age=")
    assert first.json()["capabilities"]["streaming"] is True
    cached = httpx.get(
        serve_once.url + "/.well-known/agent-card.json",
        headers={"If-None-Match": first.headers["ETag"]},
    )
    assert cached.status_code == 304


def test_sqlite_tasks_and_history_survive_restart(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "sqlite.yaml"
    config.write_text(f"storage:\n  type: sqlite\n  path: {tmp_path / 'db' / 'hector.db'}\n")
    first: Server = serve("-c", str(config))
    task = rpc(first.url + "/", "message/send", v03_message("remember me"))["result"]
    assert first.stop() == 0
    second: Server = serve("-c", str(config))
    fetched = rpc(second.url + "/", "tasks/get", {"id": task["id"]})["result"]
    assert fetched == task
    follow_up = rpc(
        second.url + "/", "message/send", v03_message("and again", contextId=task["contextId"])
    )["result"]
    assert "(turn 2)" in follow_up["artifacts"][0]["parts"][0]["text"]


def test_openai_sdk_non_streaming_and_streaming(serve_once: Server) -> None:
    client = openai.OpenAI(base_url=serve_once.url + "/v1", api_key="unused", timeout=20)
    assert [m.id for m in client.models.list()] == ["assistant"]
    completion = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "hello there"}]
    )
    assert 'You said: "hello there"' in (completion.choices[0].message.content or "")
    assert completion.usage is not None and completion.usage.total_tokens > 0
    stream = client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == completion.usage.completion_tokens
    try:
        client.chat.completions.create(model="ghost", messages=[{"role": "user", "content": "x"}])
    except openai.NotFoundError as exc:
        assert "ghost" in str(exc)
    else:
        raise AssertionError("an unknown model must be a 404")


def test_hector_call_streams_from_a_running_server(serve_once: Server) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hector_py",
            "call",
            "assistant",
            "hi from call",
            "--url",
            serve_once.url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert 'You said: "hi from call"' in result.stdout
    assert "completed" in result.stderr


def test_hector_call_reports_unreachable_server() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "hector_py", "call", "hi", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach http://127.0.0.1:9/")
    assert time.monotonic() - started < 20
