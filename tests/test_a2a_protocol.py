"""A2A wire details: v1.0 error shapes, ListTasks, required message fields, the card's
security and URLs, Host and Content-Type checks, notifications, slow subscribers."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hector_py.agent.runner import TextDelta
from hector_py.agent.stores import Task
from hector_py.agent.tasks import OVERFLOWED, Execution
from tests.a2a_helpers import call, v1_message
from tests.conftest import Server, rpc, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("a2a-protocol")
    config = workdir / "a2a.yaml"
    config.write_text(
        "llms: {default: {provider: demo, stream_delay: 0}}\n"
        "server: {allowed_hosts: [agents.example.com]}\n"
    )
    running = start_server(workdir, "-c", str(config))
    yield running
    running.stop()


def error_of(reply: dict[str, Any]) -> tuple[int, str]:
    error = reply["error"]
    return error["code"], error.get("data", [{}])[0].get("reason", "")


@pytest.mark.parametrize(
    ("method", "code", "reason"),
    [
        ("CreateTaskPushNotificationConfig", -32602, "INVALID_PARAMS"),  # taskId required
        ("GetTaskPushNotificationConfig", -32602, "INVALID_PARAMS"),
        ("ListTaskPushNotificationConfigs", -32602, "INVALID_PARAMS"),
        ("DeleteTaskPushNotificationConfig", -32602, "INVALID_PARAMS"),
        ("GetExtendedAgentCard", -32004, "UNSUPPORTED_OPERATION"),
        ("GetTask", -32602, "INVALID_PARAMS"),
    ],
)
def test_v1_errors_carry_error_info(server: Server, method: str, code: int, reason: str) -> None:
    reply = call(server.url + "/", method, {})
    assert error_of(reply) == (code, reason)
    assert reply["error"]["data"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert reply["error"]["data"][0]["domain"] == "a2a-protocol.org"


@pytest.mark.parametrize(
    "method", ["tasks/pushNotificationConfig/set", "agent/getAuthenticatedExtendedCard"]
)
def test_v03_spec_methods_are_never_method_not_found(server: Server, method: str) -> None:
    assert call(server.url + "/", method, {})["error"]["code"] in (-32602, -32004)


def test_push_methods_answer_32003_when_push_is_off(tmp_path: Path) -> None:
    config = tmp_path / "off.yaml"
    config.write_text(
        "llms: {default: {provider: demo, stream_delay: 0}}\n"
        "a2a: {push_notifications: {enabled: false}}\n"
    )
    server = start_server(tmp_path, "-c", str(config))
    try:
        task = call(server.url + "/", "SendMessage", v1_message("hi"))["result"]["task"]
        for method in ("CreateTaskPushNotificationConfig", "ListTaskPushNotificationConfigs"):
            reply = call(server.url + "/", method, {"taskId": task["id"], "url": "https://x.io"})
            assert error_of(reply) == (-32003, "PUSH_NOTIFICATION_NOT_SUPPORTED")
        old = call(server.url + "/", "tasks/pushNotificationConfig/list", {"id": task["id"]})
        assert old["error"]["code"] == -32003
        card = httpx.get(server.url + "/.well-known/agent-card.json", timeout=5).json()
        assert card["capabilities"]["pushNotifications"] is False
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("parts", "code"),
    [
        ([{"url": "https://example.com/a.png", "mediaType": "image/png"}], -32602),  # host
        ([{"text": "look"}, {"raw": "aGk=", "mediaType": "audio/wav"}], -32005),
        ([{"text": "hi", "mediaType": "application/pdf"}], -32005),
        ([{"filename": "x"}], -32602),
    ],
)
def test_v1_parts_the_agent_cannot_read(server: Server, parts: Any, code: int) -> None:
    params = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": parts}}
    assert call(server.url + "/", "SendMessage", params)["error"]["code"] == code


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ({"role": "user", "parts": [{"kind": "text", "text": "hi"}]}, "messageId"),
        ({"messageId": "m", "parts": [{"kind": "text", "text": "hi"}]}, "role"),
        (
            {"messageId": "m", "role": "ROLE_USER", "parts": [{"kind": "text", "text": "hi"}]},
            "role",
        ),
        ({"messageId": "m", "role": "user", "parts": [{"text": "hi"}]}, "kind"),
        ({"messageId": "m", "role": "user"}, "parts"),
        ({"messageId": "x" * 257, "role": "user", "parts": [{"kind": "text", "text": "h"}]}, "256"),
    ],
)
def test_v03_required_message_fields(server: Server, message: Any, says: str) -> None:
    error = call(server.url + "/", "message/send", {"message": message})["error"]
    assert error["code"] == -32602 and says in error["message"]


def test_v03_file_part_of_a_type_the_model_cannot_take(server: Server) -> None:
    wav = {"bytes": "UklGRg==", "mimeType": "audio/wav"}
    parts = [{"kind": "text", "text": "see"}, {"kind": "file", "file": wav}]
    params = {"message": {"messageId": "m", "role": "user", "parts": parts}}
    assert call(server.url + "/", "message/send", params)["error"]["code"] == -32005


@pytest.mark.parametrize("field", ["contextId", "taskId"])
def test_overlong_ids_are_invalid_params(server: Server, field: str) -> None:
    error = call(server.url + "/", "SendMessage", v1_message("hi", **{field: "c" * 257}))["error"]
    assert error["code"] == -32602 and field in error["message"]


def test_list_tasks_order_filters_and_pages(server: Server) -> None:
    url = server.url + "/"
    context = "list-ctx"
    ids = []
    for index in range(3):
        task = call(url, "SendMessage", v1_message(f"n{index}", contextId=context))
        ids.append(task["result"]["task"]["id"])
        time.sleep(0.01)
    page = call(url, "ListTasks", {"contextId": context, "pageSize": 2})["result"]
    assert [t["id"] for t in page["tasks"]] == ids[::-1][:2] and page["totalSize"] == 3
    assert all("artifacts" not in t for t in page["tasks"])
    token = page["nextPageToken"]
    assert token and not token.isdigit()  # opaque
    rest = call(url, "ListTasks", {"contextId": context, "pageToken": token, "pageSize": 2})
    assert [t["id"] for t in rest["result"]["tasks"]] == [ids[0]]
    assert rest["result"]["nextPageToken"] == ""
    full = call(url, "ListTasks", {"contextId": context, "includeArtifacts": True})["result"]
    assert all(t["artifacts"][0]["parts"][0]["text"] for t in full["tasks"])
    cutoff = full["tasks"][1]["status"]["timestamp"]
    after = call(url, "ListTasks", {"contextId": context, "statusTimestampAfter": cutoff})
    assert [t["id"] for t in after["result"]["tasks"]] == [ids[2]]
    zero = call(url, "ListTasks", {"pageSize": 0})["error"]
    assert zero["code"] == -32602 and "pageSize" in zero["message"]
    forged = base64.urlsafe_b64encode(b"9999").decode()
    assert call(url, "ListTasks", {"pageToken": forged})["error"]["code"] == -32602
    no_history = call(url, "ListTasks", {"contextId": context, "historyLength": 0})["result"]
    assert all("history" not in t for t in no_history["tasks"])


def test_history_length_zero_omits_history(server: Server) -> None:
    params = {**v1_message("hi"), "configuration": {"historyLength": 0}}
    task = call(server.url + "/", "SendMessage", params)["result"]["task"]
    assert "history" not in task
    fetched = call(server.url + "/", "GetTask", {"id": task["id"], "historyLength": 0})
    assert "history" not in fetched["result"]


def test_notifications_get_no_body(server: Server) -> None:
    body = b'{"jsonrpc": "2.0", "method": "GetTask", "params": {"id": "nope"}}'
    headers = {"Content-Type": "application/json", "A2A-Version": "1.0"}
    reply = httpx.post(server.url + "/", content=body, headers=headers, timeout=10)
    assert reply.status_code == 204 and reply.content == b""


def test_json_rpc_needs_a_json_content_type(server: Server) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        reply = httpx.post(server.url + "/", content=body, headers=headers, timeout=10)
        assert reply.status_code == 415, (content_type, reply.text)
        assert reply.json()["error"]["code"] == -32005
    ok = httpx.post(
        server.url + "/agents/assistant/",  # the trailing slash some clients add
        content=body,
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=10,
    )
    assert ok.status_code == 200 and ok.json()["error"]["code"] == -32001


def test_foreign_hosts_are_refused_and_cards_use_trusted_ones(server: Server) -> None:
    port = server.url.rsplit(":", 1)[1]
    card = server.url + "/.well-known/agent-card.json"
    for host in ("evil.example.net", f"rebind.attacker.test:{port}"):
        reply = httpx.get(card, headers={"Host": host}, timeout=10)
        assert reply.status_code == 421, host
        rpc_reply = httpx.post(
            server.url + "/",
            json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}},
            headers={"Host": host},
            timeout=10,
        )
        assert rpc_reply.status_code == 421
    assert (
        httpx.get(server.url + "/health/live", headers={"Host": "10.1.2.3:80"}).status_code == 200
    )
    trusted = httpx.get(card, headers={"Host": f"agents.example.com:{port}"}, timeout=10).json()
    assert trusted["url"] == f"http://agents.example.com:{port}/agents/assistant"
    local = httpx.get(card, headers={"Host": f"localhost:{port}"}, timeout=10).json()
    assert local["url"].startswith(f"http://localhost:{port}/")
    assert "securitySchemes" not in local  # no auth configured: the card says so


def test_card_declares_security_and_public_url(tmp_path: Path, serve: Any) -> None:
    config = tmp_path / "secure.yaml"
    config.write_text(
        "server:\n  public_url: https://agents.example.org/base/\n"
        "  auth:\n    api_keys: [{key: some-key-1234567, tenant: A}]\n"
    )
    secure: Server = serve("-c", str(config))
    card = httpx.get(secure.url + "/.well-known/agent-card.json", timeout=10).json()
    assert card["url"] == "https://agents.example.org/base/agents/assistant"
    assert {i["url"] for i in card["supportedInterfaces"]} == {card["url"]}
    schemes = card["securitySchemes"]
    assert schemes["apiKey"]["apiKeySecurityScheme"] == {"location": "header", "name": "X-API-Key"}
    assert schemes["apiKey"]["type"] == "apiKey" and schemes["apiKey"]["in"] == "header"
    assert schemes["bearer"]["httpAuthSecurityScheme"]["scheme"] == "bearer"
    assert {"schemes": {"apiKey": {"list": []}}} in card["securityRequirements"]
    assert {"apiKey": []} in card["security"]
    # the public host is trusted; the key the card declares is what the server enforces
    host = {"Host": "agents.example.org"}
    assert httpx.get(secure.url + "/health/ready", headers=host).status_code == 200
    denied = httpx.post(secure.url + "/", json={}, headers=host, timeout=10)
    assert denied.status_code == 401
    allowed = rpc(
        secure.url + "/",
        "tasks/get",
        {"id": "x"},
        headers={**host, "X-API-Key": "some-key-1234567"},
    )
    assert allowed["error"]["code"] == -32001


def test_a_subscriber_that_falls_behind_is_dropped_and_the_others_go_on() -> None:
    async def scenario() -> None:
        execution = Execution(Task(id="t", context_id="c", agent="a"))
        slow = execution.subscribe(buffer=16)
        fast = execution.subscribe(buffer=16)
        received = []
        for index in range(40):
            execution.publish(TextDelta(f"w{index} "))
            received.append(await fast.next(1.0))
        execution.publish(None)
        assert await fast.next(1.0) is None and len(received) == 40
        assert await slow.next(1.0) is OVERFLOWED  # dropped, not grown past its bound
        late = execution.subscribe(buffer=16)
        assert late.snapshot[1] == "".join(f"w{i} " for i in range(40))

    asyncio.run(scenario())
