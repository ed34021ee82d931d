"""The HTTP+JSON binding of A2A 1.0 through the a2a-sdk client's REST transport (chosen
from our card's ``supportedInterfaces``) and raw HTTP: send, stream, get, list, cancel,
subscribe, push configs, approval round trips and errors as HTTP statuses with a
``google.rpc.ErrorInfo``, against a real server on the demo model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.types.a2a_pb2 import (
    AgentCard,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import TaskNotFoundError
from google.protobuf.json_format import ParseDict

from tests.a2a_helpers import collect, reply_text
from tests.conftest import Server

CONFIG = """\
llms: {default: {provider: demo, stream_delay: 0}}
tools:
  calculator: {require_approval: true}
agents:
  assistant: {tools: [calculator]}
server:
  auth:
    api_keys: [{key: key-a, tenant: a}, {key: key-b, tenant: b}]
a2a:
  push_notifications: {allowed_hosts: [hooks.example.com]}
"""


def message(text: str, **extra: Any) -> Message:
    return Message(
        message_id=f"m-{time.monotonic_ns()}", role=Role.ROLE_USER, parts=[Part(text=text)], **extra
    )


async def rest_client(server: Server, key: str, *, streaming: bool = False) -> Any:
    raw = httpx.get(f"{server.url}/.well-known/agent-card.json", timeout=5).json()
    card = ParseDict(raw, AgentCard(), ignore_unknown_fields=True)
    http = httpx.AsyncClient(headers={"X-API-Key": key}, timeout=30)
    config = ClientConfig(
        streaming=streaming, httpx_client=http, supported_protocol_bindings=["HTTP+JSON"]
    )
    return await create_client(card, client_config=config)


@pytest.fixture
def server(serve: Any, tmp_path: Path) -> Server:
    (tmp_path / "hector.yaml").write_text(CONFIG)
    return serve("-c", str(tmp_path / "hector.yaml"))  # type: ignore[no-any-return]


def test_the_sdk_rest_transport_drives_every_method(server: Server) -> None:
    async def go() -> dict[str, Any]:
        client = await rest_client(server, "key-a")
        (sent,) = await collect(client.send_message(SendMessageRequest(message=message("hello"))))
        task = sent.task
        got = await client.get_task(GetTaskRequest(id=task.id))
        listed = await client.list_tasks(ListTasksRequest())
        created = await client.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task.id, url="https://hooks.example.com/h")
        )
        configs = await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )
        streaming = await rest_client(server, "key-a", streaming=True)
        events = await collect(
            streaming.send_message(SendMessageRequest(message=message("stream me")))
        )
        # approval through input-required, answered on the same task
        (paused,) = await collect(
            client.send_message(SendMessageRequest(message=message("calculate 6*7")))
        )
        answer = message("yes", task_id=paused.task.id)
        (done,) = await collect(client.send_message(SendMessageRequest(message=answer)))
        other = await rest_client(server, "key-b")
        try:
            await other.get_task(GetTaskRequest(id=task.id))
            foreign = "visible"
        except TaskNotFoundError as exc:
            foreign = type(exc).__name__
        return {
            "task": task,
            "got": got,
            "listed": listed,
            "created": created,
            "configs": configs,
            "events": events,
            "paused": paused.task,
            "done": done.task,
            "foreign": foreign,
        }

    out = asyncio.run(go())
    task = out["task"]
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.artifacts[0].parts[0].text.startswith('You said: "hello"')
    assert out["got"].id == task.id and out["got"].status.state == TaskState.TASK_STATE_COMPLETED
    assert task.id in [t.id for t in out["listed"].tasks]
    assert out["created"].id == task.id and out["created"].url == "https://hooks.example.com/h"
    assert [c.url for c in out["configs"].configs] == ["https://hooks.example.com/h"]
    assert reply_text(out["events"]).startswith('You said: "stream me"')
    assert out["events"][-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert out["paused"].status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert out["done"].artifacts[0].parts[0].text == "The tool returned: 42"
    assert out["foreign"] == "TaskNotFoundError"  # another tenant: an unknown task


def test_rest_errors_are_http_statuses_with_error_info(server: Server) -> None:
    base = f"{server.url}/agents/assistant"
    key = {"X-API-Key": "key-a"}
    missing = httpx.get(f"{base}/tasks/nope", headers=key, timeout=5)
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["status"] == "NOT_FOUND" and error["code"] == 404
    assert error["details"][0]["reason"] == "TASK_NOT_FOUND"
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"

    bad = httpx.post(f"{base}/message:send", headers=key, json={"message": {}}, timeout=5)
    assert (
        bad.status_code == 400 and bad.json()["error"]["details"][0]["reason"] == "INVALID_PARAMS"
    )
    form = httpx.post(
        f"{base}/message:send",
        headers={**key, "Content-Type": "text/plain"},
        content=b"{}",
        timeout=5,
    )
    assert form.status_code == 415  # the spec's mapping (section 5.4)
    assert form.json()["error"]["details"][0]["reason"] == "CONTENT_TYPE_NOT_SUPPORTED"
    future = httpx.post(
        f"{base}/message:send", headers={**key, "A2A-Version": "99.0"}, json={}, timeout=5
    )
    assert future.status_code == 400
    assert future.json()["error"]["details"][0]["reason"] == "VERSION_NOT_SUPPORTED"
    anonymous = httpx.get(f"{base}/tasks", timeout=5)
    assert anonymous.status_code == 401

    sent = httpx.post(
        f"{base}/message:send",
        headers=key,
        json={"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
        timeout=10,
    ).json()["task"]
    cancel = httpx.post(f"{base}/tasks/{sent['id']}:cancel", headers=key, timeout=5)
    assert cancel.status_code == 409
    assert cancel.json()["error"]["details"][0]["reason"] == "TASK_NOT_CANCELABLE"
    listed = httpx.get(
        f"{base}/tasks",
        headers=key,
        params={"pageSize": "1", "includeArtifacts": "true"},
        timeout=5,
    ).json()
    assert listed["tasks"][0]["artifacts"] and listed["pageSize"] == 1
    bad_size = httpx.get(f"{base}/tasks", headers=key, params={"pageSize": "many"}, timeout=5)
    assert bad_size.status_code == 400
    private = httpx.post(
        f"{base}/tasks/{sent['id']}/pushNotificationConfigs",
        headers=key,
        json={"url": "http://192.168.1.1/hook"},
        timeout=5,
    )
    assert private.status_code == 400 and "private" in private.json()["error"]["message"]
