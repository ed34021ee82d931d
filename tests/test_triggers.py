"""Schedule triggers (the real app in-process, on a clock the test moves) and webhook triggers
(the real server)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hector_py.config.model import Config
from hector_py.server.app import build_app
from hector_py.server.triggers import Clock
from tests.conftest import Server, clean_env, hector, rpc
from tests.fakes.background import BackgroundServer
from tests.fakes.trace_receivers import OTLPHttpReceiver, children, roots
from tests.metrics_helpers import scrape

TRIGGERS = "hector_scheduler_triggers_total"
SECRET = "hook-secret-123"


class FakeClock(Clock):
    """A clock that only moves when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.time = start
        self.sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self.time

    async def sleep_until(self, when: datetime) -> None:
        if when <= self.time:
            return
        future = asyncio.get_running_loop().create_future()
        self.sleepers.append((when, future))
        await future

    def advance(self, seconds: float) -> None:
        """Move on (call in the app's loop) and wake the sleepers that are due."""
        self.time += timedelta(seconds=seconds)
        for sleeper in [s for s in self.sleepers if s[0] <= self.time]:
            self.sleepers.remove(sleeper)
            if not sleeper[1].done():
                sleeper[1].set_result(None)


class InProcessServer(BackgroundServer):
    """``build_app(config, clock)`` served on 127.0.0.1 by a loop in a background thread."""

    def __init__(self, config: Config, clock: Clock) -> None:
        super().__init__(lambda: build_app(config, clock))

    def run(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` in the app's loop and wait until it ran."""

        async def call() -> None:
            fn()

        self.call(call(), 5)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def schedule_config(trigger: str, extra: str = "") -> Config:
    text = (
        "llms:\n  default:\n    provider: demo\n    stream_delay: 0\n"
        f"agents:\n  reporter:\n    trigger: {trigger}\n"
        "observability:\n  metrics:\n    enabled: true\n" + extra
    )
    return Config.model_validate(yaml.safe_load(text))


def test_every_minute_schedule_fires_on_the_minute(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 11, 59, 30, tzinfo=UTC))
    trigger = "{type: schedule, cron: '* * * * *', timezone: Europe/Paris, input: daily report}"
    with OTLPHttpReceiver() as receiver:
        tracing = (
            "  tracing:\n    enabled: true\n    protocol: http\n"
            f"    endpoint: 127.0.0.1:{receiver.port}\n"
        )
        with InProcessServer(schedule_config(trigger, tracing), clock) as server:
            metrics = server.url + "/metrics"

            def fired() -> float:
                return scrape(metrics).value(TRIGGERS, agent="reporter", type="schedule")

            wait_until(lambda: len(clock.sleepers) == 1, "the scheduler to sleep")
            assert clock.sleepers[0][0] == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
            server.run(lambda: clock.advance(20))  # 11:59:50: not yet
            assert fired() == 0
            server.run(lambda: clock.advance(10))  # 12:00:00
            wait_until(lambda: fired() == 1, "the first run")
            wait_until(lambda: len(clock.sleepers) == 1, "the next sleep")
            assert clock.sleepers[0][0] == datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
            server.run(lambda: clock.advance(60))  # 12:01:00
            wait_until(lambda: fired() == 2, "the second run")
            assert scrape(metrics).value(TRIGGERS, status="success") == 2

            def tasks() -> list[dict[str, Any]]:
                listed = rpc(server.url + "/agents/reporter", "ListTasks", {}, version="1.0")
                return listed["result"]["tasks"]  # type: ignore[no-any-return]

            wait_until(
                lambda: all(t["status"]["state"] == "TASK_STATE_COMPLETED" for t in tasks()),
                "the runs to complete",
            )
            assert len(tasks()) == 2
            assert len({t["contextId"] for t in tasks()}) == 2  # each run its own session
        spans = receiver.wait_for(
            lambda got: sum(s.name.startswith("invoke_agent") for s in got) >= 2,
            what="two agent runs",
        )
    triggers = [s for s in roots(spans) if s.name == "trigger schedule reporter"]
    assert len(triggers) == 2 and len({s.trace_id for s in triggers}) == 2
    for root in triggers:
        names = [c.name for c in children(spans, root)]
        assert "invoke_agent reporter" in names
        assert root.attributes["hector.trigger.status"] == "success"


def test_schedule_reads_cron_in_its_timezone() -> None:
    clock = FakeClock(datetime(2025, 12, 31, 23, 59, tzinfo=UTC))  # 08:59 in Tokyo
    trigger = "{type: schedule, cron: '0 9 * * *', timezone: Asia/Tokyo}"
    with InProcessServer(schedule_config(trigger), clock):
        wait_until(lambda: len(clock.sleepers) == 1, "the scheduler to sleep")
        assert clock.sleepers[0][0] == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ("{type: schedule, cron: '61 * * * *'}", "is not a five-field cron expression"),
        ("{type: schedule, cron: '* * * * *', timezone: Mars/Base}", "unknown time zone"),
        ("{type: webhook}", "agents.reporter.trigger.webhook.secret"),
        ("{type: cron}", "agents.reporter.trigger"),
    ],
)
def test_bad_triggers_are_config_errors(tmp_path: Path, trigger: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"agents:\n  reporter:\n    trigger: {trigger}\n")
    result = hector("validate", str(path))
    assert result.returncode == 1
    assert message in result.stdout


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes, secret: str = SECRET, stamp: str = "", **extra: str) -> dict[str, str]:
    """Hector's webhook headers: the signature of '{timestamp}.{body}' and the timestamp."""
    stamp = stamp or str(int(time.time()))
    signature = sign(stamp.encode() + b"." + body, secret)
    return {"X-Hector-Signature": signature, "X-Hector-Timestamp": stamp, **extra}


@pytest.fixture
def webhook_server(serve: Any, tmp_path: Path) -> Iterator[Server]:
    path = tmp_path / "hooks.yaml"
    path.write_text(
        "llms:\n  default:\n    provider: demo\n    stream_delay: 0\n"
        "agents:\n"
        "  triage:\n    trigger:\n      type: webhook\n      secret: ${HOOK_SECRET}\n"
        "      input: 'New issue {body.issue.title} by {body.user}'\n"
        "  ingest:\n    trigger:\n      type: webhook\n      secret: ${HOOK_SECRET}\n"
        "      path: /webhooks/github/ingest\n      signature_header: X-Hub-Signature-256\n"
        "      timestamp_header: null\n      delivery_header: X-GitHub-Delivery\n"
        "      response: async\n"
        "server:\n  auth:\n    api_keys: [an-api-key-0001]\n"
        "observability:\n  metrics:\n    enabled: true\n"
    )
    yield serve("-c", str(path), env=clean_env(HOOK_SECRET=SECRET))


def test_signed_webhook_runs_the_agent_sync(webhook_server: Server) -> None:
    body = json.dumps({"issue": {"title": "crash on start"}, "user": "ana"}).encode()
    url = webhook_server.url + "/webhooks/triage"
    response = httpx.post(url, content=body, headers=signed(body))
    assert response.status_code == 200, response.text  # signed: no API key needed
    result = response.json()
    assert result["state"] == "completed"
    assert result["reply"].startswith('You said: "New issue crash on start by ana"')
    bad = httpx.post(url, content=body, headers=signed(body, "wrong"))
    assert bad.status_code == 401
    missing = httpx.post(url, content=body)
    assert missing.status_code == 401
    other = httpx.post(webhook_server.url + "/webhooks/nobody", content=body)
    assert other.status_code == 404
    metrics = scrape(webhook_server.url + "/metrics")  # metrics stay open by default
    assert metrics.value(TRIGGERS, agent="triage", type="webhook", status="success") == 1
    assert metrics.value(TRIGGERS, agent="triage", type="webhook", status="rejected") == 2


def test_webhook_replays_are_refused(webhook_server: Server) -> None:
    url = webhook_server.url + "/webhooks/triage"
    body = json.dumps({"issue": {"title": "replayed"}, "user": "eve"}).encode()
    captured = signed(body)
    assert httpx.post(url, content=body, headers=captured).status_code == 200
    replay = httpx.post(url, content=body, headers=captured)
    assert replay.status_code == 409, replay.text  # the same signed request, again
    stale = signed(body, stamp=str(int(time.time()) - 3600))
    assert httpx.post(url, content=body, headers=stale).status_code == 401
    assert httpx.post(url, content=body, headers=signed(body, stamp="soon")).status_code == 401
    unstamped = {"X-Hector-Signature": sign(body)}  # the body alone is not what is signed
    assert httpx.post(url, content=body, headers=unstamped).status_code == 401
    other = json.dumps({"issue": {"title": "retried"}, "user": "ana"}).encode()
    first = signed(other, **{"X-Hector-Delivery": "d-1"})
    assert httpx.post(url, content=other, headers=first).status_code == 200
    retry = signed(other, stamp=str(int(time.time()) + 1), **{"X-Hector-Delivery": "d-1"})
    assert httpx.post(url, content=other, headers=retry).status_code == 409
    metrics = scrape(webhook_server.url + "/metrics")
    assert metrics.value(TRIGGERS, agent="triage", type="webhook", status="rejected") == 5


def test_unstamped_webhook_dedups_deliveries(webhook_server: Server) -> None:
    url = webhook_server.url + "/webhooks/github/ingest"
    body = b"push to dev"
    headers = {"X-Hub-Signature-256": sign(body), "X-GitHub-Delivery": "gh-1"}
    assert httpx.post(url, content=body, headers=headers).status_code == 202
    assert httpx.post(url, content=body, headers=headers).status_code == 409
    body = b"push to dev, later"
    headers = {"X-Hub-Signature-256": sign(body), "X-GitHub-Delivery": "gh-1"}
    assert httpx.post(url, content=body, headers=headers).status_code == 409


def test_async_webhook_answers_202_with_the_task(webhook_server: Server) -> None:
    body = b"push to main"
    response = httpx.post(
        webhook_server.url + "/webhooks/github/ingest",
        content=body,
        headers={"X-Hub-Signature-256": sign(body)},
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    headers = {"X-API-Key": "an-api-key-0001", "A2A-Version": "1.0"}

    def state() -> str:
        reply = httpx.post(
            webhook_server.url + "/agents/ingest",
            headers=headers,
            json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}},
        )
        return str(reply.json()["result"]["status"]["state"])

    wait_until(lambda: state() == "TASK_STATE_COMPLETED", "the async run")
    # the default route works for it too; the A2A endpoint itself still needs a key
    again = httpx.post(
        webhook_server.url + "/webhooks/ingest",
        content=body + b" again",
        headers={"X-Hub-Signature-256": sign(body + b" again")},
    )
    assert again.status_code == 202
    assert httpx.post(webhook_server.url + "/agents/ingest", json={}).status_code == 401
