"""A2A task semantics through the a2a-sdk client (both dialects) and raw JSON-RPC: follow-ups
by ``taskId``, streams that never kill a task, late subscribers, tenant-scoped tasks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import Client
from a2a.client.client import ClientCallContext
from a2a.helpers import new_text_message
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import TaskNotFoundError

from hector_py.agent.stores import ChatTurn, SqliteStore, Task
from hector_py.agent.stores import TaskState as StoredState
from hector_py.llm.base import Message
from tests.a2a_helpers import DIALECTS, call, collect, reply_text, sdk_client, v1_message
from tests.conftest import Server, v03_message

CONTEXT = ClientCallContext(timeout=30)
KEY_A, KEY_B = "tenant-a-key-123456", "tenant-b-key-654321"


def config(tmp_path: Path, delay: float, extra: str = "") -> str:
    path = tmp_path / "a2a.yaml"
    path.write_text(
        f"llms:\n  default:\n    provider: demo\n    stream_delay: {delay}\n"
        "server:\n  auth:\n    api_keys:\n"
        f"      - {{key: {KEY_A}, tenant: A}}\n      - {{key: {KEY_B}, tenant: B}}\n"
        f"storage:\n  type: sqlite\n  path: {tmp_path / 'tasks.db'}\n{extra}"
    )
    return str(path)


def seed_waiting_task(tmp_path: Path, tenant: str) -> Task:
    """A task waiting for input (as an approval step leaves it), in a fresh sqlite file."""
    task = Task(
        id="waiting-1",
        context_id="ctx-waiting",
        agent="assistant",
        tenant=tenant,
        state=StoredState.INPUT_REQUIRED,
        history=[ChatTurn("m-0", "user", "first question")],
    )

    async def seed() -> None:
        store = await SqliteStore.open(str(tmp_path / "tasks.db"))
        await store.save_task(task)
        await store.append(tenant, task.context_id, [Message("user", "first question")])
        await store.close()

    asyncio.run(seed())
    return task


@pytest.mark.parametrize("version", DIALECTS)
def test_task_id_follow_up_resumes_the_waiting_task(
    serve: Any, tmp_path: Path, version: str
) -> None:
    waiting = seed_waiting_task(tmp_path, "A")
    server: Server = serve("-c", config(tmp_path, 0))

    async def scenario() -> None:
        client = await sdk_client(server.url, version, KEY_A, streaming=False)
        async with client:
            message = new_text_message("the answer", task_id=waiting.id, role=Role.ROLE_USER)
            events = [
                e
                async for e in client.send_message(
                    SendMessageRequest(message=message), context=CONTEXT
                )
            ]
            task = events[-1].task
            assert task.id == waiting.id and task.context_id == waiting.context_id
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            assert "(turn 2)" in reply_text(events)  # the session's first turn was read
            assert [m.parts[0].text for m in task.history][:2] == ["first question", "the answer"]

    asyncio.run(scenario())


def test_task_id_follow_up_errors(serve: Any, tmp_path: Path) -> None:
    waiting = seed_waiting_task(tmp_path, "A")
    server: Server = serve("-c", config(tmp_path, 0))
    url = server.url + "/"
    unknown = call(url, "SendMessage", v1_message("hi", taskId="nope"), KEY_A)
    assert unknown["error"]["code"] == -32001
    assert unknown["error"]["data"][0]["reason"] == "TASK_NOT_FOUND"
    assert unknown["error"]["data"][0]["domain"] == "a2a-protocol.org"
    mismatch = call(
        url, "SendMessage", v1_message("hi", taskId=waiting.id, contextId="other"), KEY_A
    )
    assert mismatch["error"]["code"] == -32602 and "contextId" in mismatch["error"]["message"]
    done = call(url, "SendMessage", v1_message("first"), KEY_A)["result"]["task"]
    again = call(url, "SendMessage", v1_message("more", taskId=done["id"]), KEY_A)
    assert again["error"]["code"] == -32004
    assert again["error"]["data"][0]["reason"] == "UNSUPPORTED_OPERATION"
    legacy = call(url, "message/send", v03_message("more", taskId=done["id"]), KEY_A)
    assert legacy["error"]["code"] == -32004 and "data" not in legacy["error"]
    # the follow-up by contextId is the way to continue a finished task's conversation
    follow = call(url, "SendMessage", v1_message("more", contextId=done["contextId"]), KEY_A)
    assert "(turn 2)" in follow["result"]["task"]["artifacts"][0]["parts"][0]["text"]


async def _stream_start(client: Client, text: str) -> tuple[Any, StreamResponse]:
    """Start a streaming send; returns the open stream and its first event (the task)."""
    message = new_text_message(text, role=Role.ROLE_USER)
    stream = client.send_message(SendMessageRequest(message=message), context=CONTEXT)
    first = await anext(stream)
    assert first.HasField("task")
    return stream, first


@pytest.mark.parametrize("version", DIALECTS)
def test_a_watcher_leaving_changes_nothing_and_late_subscribers_get_the_whole_reply(
    serve: Any, tmp_path: Path, version: str
) -> None:
    """The originator and two watchers; one watcher leaves after two events: the others get
    every event, the task completes, and a watcher that joined late rebuilds the reply."""
    server: Server = serve("-c", config(tmp_path, 0.15))

    async def scenario() -> None:
        origin, watcher, leaver = [await sdk_client(server.url, version, KEY_A) for _ in range(3)]
        async with origin, watcher, leaver:
            stream, first = await _stream_start(origin, "one two three four five six")
            task_id = first.task.id
            originator = [first, *[await anext(stream) for _ in range(3)]]  # some text out
            request = SubscribeToTaskRequest(id=task_id)
            leaving = leaver.subscribe(request, context=CONTEXT)
            assert (await anext(leaving)).HasField("task")
            await anext(leaving)
            await leaving.aclose()  # this watcher hangs up mid-stream
            late = asyncio.create_task(collect(watcher.subscribe(request, context=CONTEXT)))
            originator += await collect(stream)
            watched = await late
            final = await origin.get_task(GetTaskRequest(id=task_id), context=CONTEXT)
        assert final.status.state == TaskState.TASK_STATE_COMPLETED
        reply = "".join(p.text for p in final.artifacts[0].parts)
        assert reply.startswith('You said: "one two three four five six"')
        assert reply_text(originator) == reply
        assert reply_text(watched) == reply  # started mid-way from the partial artifact
        assert watched[0].HasField("task") and watched[0].task.artifacts  # partial reply
        last = watched[-1].status_update.status.state
        assert last == TaskState.TASK_STATE_COMPLETED

    asyncio.run(scenario())


def test_originator_hanging_up_leaves_the_task_running(serve: Any, tmp_path: Path) -> None:
    server: Server = serve("-c", config(tmp_path, 0.1))

    async def scenario() -> str:
        client = await sdk_client(server.url, "1.0", KEY_A)
        async with client:
            stream, first = await _stream_start(client, "a b c d e f g")
            await anext(stream)
            await stream.aclose()
            return first.task.id

    task_id = asyncio.run(scenario())
    result = _wait_for_state(server, task_id, "TASK_STATE_COMPLETED")
    assert result["artifacts"][0]["parts"][0]["text"].startswith('You said: "a b c')


def _wait_for_state(server: Server, task_id: str, state: str) -> dict[str, Any]:
    for _ in range(400):  # bounded: 20 s
        task: dict[str, Any] = call(server.url + "/", "GetTask", {"id": task_id}, KEY_A)["result"]
        if task["status"]["state"] == state:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached {state}: {task}")


def test_quiet_streams_get_keep_alive_comments(serve: Any, tmp_path: Path) -> None:
    server: Server = serve("-c", config(tmp_path, 0.5, "a2a:\n  keepalive_seconds: 0.1\n"))
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendStreamingMessage",
        "params": v1_message("x y"),
    }
    headers = {"A2A-Version": "1.0", "X-API-Key": KEY_A}
    with httpx.stream("POST", server.url + "/", json=body, headers=headers, timeout=30) as reply:
        lines = [line for line in reply.iter_lines()][:2000]
    assert ": keep-alive" in lines
    assert any('"TASK_STATE_COMPLETED"' in line for line in lines)


def test_another_tenants_task_looks_unknown(serve: Any, tmp_path: Path) -> None:
    server: Server = serve("-c", config(tmp_path, 0.3))
    url = server.url + "/"
    mine = call(url, "SendMessage", v1_message("secret of A"), KEY_A)["result"]["task"]
    running = call(
        url,
        "SendMessage",
        {**v1_message("long one of A"), "configuration": {"returnImmediately": True}},
        KEY_A,
    )["result"]["task"]
    unknown = call(url, "GetTask", {"id": "no-such-task"}, KEY_B)["error"]
    for method, params in (
        ("GetTask", {"id": mine["id"]}),
        ("CancelTask", {"id": running["id"]}),
        ("SubscribeToTask", {"id": running["id"]}),
        ("SendMessage", v1_message("hi", taskId=mine["id"])),
        ("tasks/get", {"id": mine["id"]}),
        ("tasks/cancel", {"id": running["id"]}),
    ):
        error = call(url, method, params, KEY_B)["error"]
        assert error["code"] == unknown["code"] == -32001, (method, error)
        assert error["message"].replace(mine["id"], "X").replace(running["id"], "X") == (
            unknown["message"].replace("no-such-task", "X")
        )
    listed = call(url, "ListTasks", {"includeArtifacts": True}, KEY_B)["result"]
    assert listed["tasks"] == [] and listed["totalSize"] == 0
    # B writing to A's contextId gets a session of its own: A's history stays A's
    theirs = call(url, "SendMessage", v1_message("hello", contextId=mine["contextId"]), KEY_B)
    assert "(turn 1)" in theirs["result"]["task"]["artifacts"][0]["parts"][0]["text"]
    again = call(url, "SendMessage", v1_message("again", contextId=mine["contextId"]), KEY_A)
    assert "(turn 2)" in again["result"]["task"]["artifacts"][0]["parts"][0]["text"]
    assert _wait_for_state(server, running["id"], "TASK_STATE_COMPLETED")
    own = call(url, "ListTasks", {}, KEY_A)["result"]
    assert own["totalSize"] == 3  # A's two tasks and A's follow-up, none of B's


@pytest.mark.parametrize("version", DIALECTS)
def test_sdk_client_of_another_tenant_sees_an_unknown_task(
    serve: Any, tmp_path: Path, version: str
) -> None:
    server: Server = serve("-c", config(tmp_path, 0.3))

    async def scenario() -> None:
        owner = await sdk_client(server.url, version, KEY_A)
        other = await sdk_client(server.url, version, KEY_B)
        async with owner, other:
            stream, first = await _stream_start(owner, "private words of A")
            task_id = first.task.id
            takeover = new_text_message("mine now", task_id=task_id, role=Role.ROLE_USER)
            attempts = [
                other.get_task(GetTaskRequest(id=task_id), context=CONTEXT),
                other.cancel_task(CancelTaskRequest(id=task_id), context=CONTEXT),
                collect(other.subscribe(SubscribeToTaskRequest(id=task_id), context=CONTEXT)),
                collect(other.send_message(SendMessageRequest(message=takeover), context=CONTEXT)),
            ]
            for attempt in attempts:
                with pytest.raises(TaskNotFoundError):
                    await attempt
            if version == "1.0":
                listed = await other.list_tasks(ListTasksRequest(), context=CONTEXT)
                assert list(listed.tasks) == []
            rest = await collect(stream)  # A's own stream went on untouched
        assert rest[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED

    asyncio.run(scenario())
