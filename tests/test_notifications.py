"""Outbound notifications through the real server, to a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

from tests.conftest import Server, clean_env, hector, rpc, v03_message
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.metrics_helpers import scrape

NOTIFICATIONS = "hector_notifications_total"


def write_config(tmp_path: Path, hook: str, agent_extra: str = "") -> Path:
    path = tmp_path / "notify.yaml"
    path.write_text(
        "llms:\n  default:\n    provider: demo\n    stream_delay: 0\n"
        "agents:\n  assistant:\n    tools: [calculator]\n" + agent_extra + "    notifications:\n"
        f"      - {hook}\n"
        "observability:\n  metrics:\n    enabled: true\n"
    )
    return path


def wait_metric(url: str, name: str, value: float, **labels: str) -> None:
    deadline = time.monotonic() + 10
    while (got := scrape(url).value(name, **labels)) != value:
        assert time.monotonic() < deadline, f"{name}{labels} is {got}, not {value}"
        time.sleep(0.05)


def test_completed_task_is_delivered_signed(serve: Any, tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        hook = (
            f"{{url: '{receiver.url}', secret: '${{HOOK_SECRET}}',"
            " headers: {X-Team: ops}, events: [task.started, task.completed]}"
        )
        env = clean_env(HOOK_SECRET="s3cret-value")
        server: Server = serve("-c", str(write_config(tmp_path, hook)), env=env)
        result = rpc(server.url + "/", "message/send", v03_message("hello"))["result"]
        got = receiver.wait_for(2)
    by_event = {r.headers["x-hector-event"]: r for r in got}
    assert set(by_event) == {"task.started", "task.completed"}
    done = by_event["task.completed"]
    body = done.json()
    assert body["event"] == "task.completed" and body["agent"] == "assistant"
    assert body["task"]["id"] == result["id"]
    assert body["task"]["context_id"] == result["contextId"]
    assert body["task"]["state"] == "completed"
    assert body["task"]["reply"].startswith('You said: "hello"')
    assert body["task"]["usage"]["completion_tokens"] > 0
    assert by_event["task.started"].json()["task"]["state"] == "working"
    expected = hmac.new(b"s3cret-value", done.body, hashlib.sha256).hexdigest()
    assert done.headers["x-hector-signature"] == f"sha256={expected}"
    assert done.headers["x-team"] == "ops"
    assert done.headers["content-type"] == "application/json"
    wait_metric(server.url + "/metrics", NOTIFICATIONS, 1, event="task.completed", status="success")


def test_retried_until_the_third_attempt(serve: Any, tmp_path: Path) -> None:
    with WebhookReceiver(fail_first=2) as receiver:
        hook = (
            f"{{url: '{receiver.url}', events: [task.completed],"
            " retry: {max_attempts: 3, initial_delay: 0.05, max_delay: 0.1}}"
        )
        server: Server = serve("-c", str(write_config(tmp_path, hook)))
        rpc(server.url + "/", "message/send", v03_message("hello"))
        attempts = receiver.wait_for(3)
        wait_metric(server.url + "/metrics", NOTIFICATIONS, 1, status="success")
    assert len({a.headers["x-hector-delivery"] for a in attempts}) == 1  # one delivery
    assert {a.json()["event"] for a in attempts} == {"task.completed"}
    assert scrape(server.url + "/metrics").value(NOTIFICATIONS, status="error") == 0


def test_failed_task_and_a_dead_receiver_never_block_the_run(serve: Any, tmp_path: Path) -> None:
    with WebhookReceiver(fail_first=10, hold=True) as receiver:
        hook = (
            f"{{url: '{receiver.url}', events: [task.failed],"
            " retry: {max_attempts: 2, initial_delay: 0.01}}"
        )
        config = write_config(tmp_path, hook, agent_extra="    max_iterations: 1\n")
        server: Server = serve("-c", str(config))
        ask = v03_message('use calculator {"expression": "1+1"}')
        result = rpc(server.url + "/", "message/send", ask)["result"]
        assert result["status"]["state"] == "failed"  # answered while the receiver holds
        first = receiver.wait_for(1)[0]
        assert first.json()["task"]["error"].startswith("no final answer")
        receiver.release()
        receiver.wait_for(2)
        wait_metric(server.url + "/metrics", NOTIFICATIONS, 1, event="task.failed", status="error")
    assert server.stop() == 0
    assert any("notification task.failed" in line for line in server.log_lines())


def test_webhook_secrets_are_masked(tmp_path: Path) -> None:
    hook = "{url: 'http://127.0.0.1:9/x', secret: hush-hush-1, headers: {Authorization: tok-9876}}"
    result = hector("validate", str(write_config(tmp_path, hook)), "--print-config")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hush-hush-1" not in result.stdout and "tok-9876" not in result.stdout
