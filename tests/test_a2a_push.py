"""A2A push notifications through a real server: configs created, read, listed and deleted
with the a2a-sdk client (1.0) and raw v0.3 calls, every state change delivered in order
to a receiver on 127.0.0.1 with its token and credentials (retried when it fails), kept
in sqlite across a restart, scoped to the tenant, and refused for a URL into the
server's own network unless its host is allowed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from a2a.types.a2a_pb2 import (
    AuthenticationInfo,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigsRequest,
    TaskPushNotificationConfig,
)

from tests.a2a_helpers import call, sdk_client, v1_message
from tests.conftest import Server, v03_message
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.metrics_helpers import scrape

CONFIG = """\
llms: {default: {provider: demo, stream_delay: 0}}
server:
  auth:
    api_keys: [{key: key-a, tenant: a}, {key: key-b, tenant: b}]
a2a:
  push_notifications:
    allowed_hosts: [127.0.0.1]
    retry: {max_attempts: 3, initial_delay: 0.05}
storage: {type: sqlite, path: hector.db}
observability: {metrics: {enabled: true}}
"""


def states(received: list[Any]) -> list[str]:
    out = []
    for item in received:
        event = item.json()
        status = (event.get("statusUpdate") or event.get("task") or event)["status"]
        out.append(status["state"])
    return out


def test_push_configs_round_trip_and_every_state_change_is_delivered(
    serve: Any, tmp_path: Path
) -> None:
    (tmp_path / "hector.yaml").write_text(CONFIG)
    server: Server = serve("-c", str(tmp_path / "hector.yaml"))
    url = f"{server.url}/agents/assistant"
    with WebhookReceiver(fail_first=1) as receiver:
        # a send that carries its push config: the first delivery fails once and is retried
        config = {"url": receiver.url, "token": "tok-1", "id": "first"}
        params = {**v1_message("hello"), "configuration": {"taskPushNotificationConfig": config}}
        task = call(url, "SendMessage", params, key="key-a")["result"]["task"]
        got = receiver.wait_for(3)  # working (failed once, then retried), completed
        delivered = got[1:]
        assert states(delivered) == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
        assert all(r.headers["x-a2a-notification-token"] == "tok-1" for r in got)
        final = delivered[-1].json()["task"]
        assert final["id"] == task["id"]
        assert final["artifacts"][0]["parts"][0]["text"].startswith('You said: "hello"')

        async def sdk_round_trip() -> tuple[Any, Any, Any]:
            client = await sdk_client(server.url, "1.0", key="key-a")
            created = await client.create_task_push_notification_config(
                TaskPushNotificationConfig(
                    task_id=task["id"],
                    id="second",
                    url=receiver.url + "/2",
                    authentication=AuthenticationInfo(scheme="Bearer", credentials="s3cret"),
                )
            )
            fetched = await client.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=task["id"], id="second")
            )
            await client.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=task["id"], id="first")
            )
            listed = await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task["id"])
            )
            return created, fetched, listed

        created, fetched, listed = asyncio.run(sdk_round_trip())
        assert created.id == "second" and created.task_id == task["id"]
        assert fetched.authentication.scheme == "Bearer" and fetched.url.endswith("/2")
        assert [c.id for c in listed.configs] == ["second"]

        # another tenant: the task and its configs read as unknown
        other = call(url, "ListTaskPushNotificationConfigs", {"taskId": task["id"]}, key="key-b")
        assert other["error"]["code"] == -32001
        # a URL into the server's own network without permission: -32602 naming it
        refused = call(
            url,
            "CreateTaskPushNotificationConfig",
            {"taskId": task["id"], "url": "http://10.1.2.3/hook"},
            key="key-a",
        )
        assert refused["error"]["code"] == -32602
        assert "params.url: host '10.1.2.3' is a loopback, private" in refused["error"]["message"]
        # proto field names are accepted as ProtoJSON parsers must; a name that does not
        # resolve yet is taken (each delivery checks it again)
        later = call(
            url,
            "CreateTaskPushNotificationConfig",
            {"task_id": task["id"], "id": "later", "url": "https://hooks.invalid/h"},
            key="key-a",
        )
        assert later["result"]["url"] == "https://hooks.invalid/h", later
        call(
            url,
            "DeleteTaskPushNotificationConfig",
            {"task_id": task["id"], "id": "later"},
            key="key-a",
        )
        unknown = call(
            url, "GetTaskPushNotificationConfig", {"taskId": task["id"], "id": "x"}, key="key-a"
        )
        assert unknown["error"]["code"] == -32001

        # the v0.3 dialect: set, then a continued conversation's task is announced as a task
        v03 = call(url, "message/send", v03_message("again"), key="key-a")["result"]
        old = {
            "url": receiver.url + "/old",
            "token": "tok-3",
            "authentication": {"schemes": ["Basic"], "credentials": "dTpw"},
        }
        done = call(
            url,
            "tasks/pushNotificationConfig/set",
            {"taskId": v03["id"], "pushNotificationConfig": old},
            key="key-a",
        )["result"]
        assert done == {
            "taskId": v03["id"],
            "pushNotificationConfig": {"id": v03["id"], **old},
        }
        got = call(url, "tasks/pushNotificationConfig/list", {"id": v03["id"]}, key="key-a")
        assert got["result"] == [done]

    metrics = scrape(f"{server.url}/metrics")
    name = "hector_notifications_total"
    assert metrics.value(name, agent="assistant", event="push.completed", status="success") == 1

    # kept in sqlite: after a restart the configs are still there
    assert server.stop() == 0
    server = serve("-c", str(tmp_path / "hector.yaml"))
    url = f"{server.url}/agents/assistant"
    after = call(url, "ListTaskPushNotificationConfigs", {"taskId": task["id"]}, key="key-a")
    assert [c["id"] for c in after["result"]["configs"]] == ["second"]
    assert after["result"]["configs"][0]["authentication"] == {
        "scheme": "Bearer",
        "credentials": "s3cret",
    }


def test_a_v03_config_hears_the_task_with_its_credentials(serve: Any, tmp_path: Path) -> None:
    memory = CONFIG.replace("storage: {type: sqlite, path: hector.db}\n", "")
    assert memory != CONFIG
    (tmp_path / "hector.yaml").write_text(memory)  # the memory store's own quick path
    server: Server = serve("-c", str(tmp_path / "hector.yaml"))
    url = f"{server.url}/agents/assistant"
    with WebhookReceiver() as receiver:
        hook = {
            "url": receiver.url,
            "token": "t",
            "authentication": {"schemes": ["Bearer"], "credentials": "abc"},
        }
        params = {**v03_message("hi there"), "configuration": {"pushNotificationConfig": hook}}
        task = call(url, "message/send", params, key="key-a")["result"]
        got = receiver.wait_for(2)
        deadline = time.monotonic() + 5
        while states(got)[-1] != "completed" and time.monotonic() < deadline:
            time.sleep(0.05)
            got = list(receiver.received)
        assert states(got) == ["working", "completed"]
        body = got[-1].json()
        assert body["kind"] == "task" and body["id"] == task["id"]
        assert got[-1].headers["authorization"] == "Bearer abc"


def test_push_urls_into_the_network_are_refused_by_default(serve: Any, tmp_path: Path) -> None:
    (tmp_path / "hector.yaml").write_text("llms: {default: {provider: demo, stream_delay: 0}}\n")
    server: Server = serve("-c", str(tmp_path / "hector.yaml"))
    url = f"{server.url}/agents/assistant"
    card = httpx.get(url, timeout=5).json()
    assert card["capabilities"]["pushNotifications"] is True
    for target in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "ftp://x.example"):
        params = {
            **v1_message("hi"),
            "configuration": {"taskPushNotificationConfig": {"url": target}},
        }
        refused = call(url, "SendMessage", params)
        assert refused["error"]["code"] == -32602, refused
        assert refused["error"]["message"].startswith(
            "params.configuration.taskPushNotificationConfig.url:"
        )
