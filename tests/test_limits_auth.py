"""Limits, overload, hang-ups, drain and API-key auth, through the real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.conftest import Server, clean_env, rpc, v03_message


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    return path


def test_body_and_message_limits(serve: Any, tmp_path: Path) -> None:
    config = write(tmp_path, "server:\n  max_body_bytes: 2048\n  max_message_chars: 50\n")
    server: Server = serve("-c", str(config))
    json_type = {"Content-Type": "application/json"}
    huge = httpx.post(server.url + "/", content=b"x" * 5000, headers=json_type)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == 413
    long = rpc(server.url + "/", "message/send", v03_message("y" * 51))
    assert long["error"]["code"] == -32602
    assert "server.max_message_chars" in long["error"]["message"]
    chat = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "assistant", "messages": [{"role": "user", "content": "z" * 51}]},
    )
    assert chat.status_code == 400 and chat.json()["error"]["param"] == "messages"


async def _burst(url: str, count: int) -> list[tuple[int, str | None]]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one() -> tuple[int, str | None]:
            async with session.post(url, json=body) as response:
                await response.read()
                return response.status, response.headers.get("Retry-After")

        return await asyncio.gather(*(one() for _ in range(count)))


def test_overload_gets_503_with_retry_after_and_server_stays_healthy(
    serve: Any, tmp_path: Path
) -> None:
    config = write(
        tmp_path,
        "server:\n  max_concurrent_runs: 2\n"
        "llms:\n  default:\n    provider: demo\n    stream_delay: 0.1\n",
    )
    server: Server = serve("-c", str(config), "--metrics")
    results = asyncio.run(_burst(server.url + "/", 8))  # 4x the limit
    statuses = sorted(status for status, _ in results)
    assert statuses.count(200) >= 2 and statuses.count(503) >= 1
    assert set(statuses) <= {200, 503}
    assert all(retry == "1" for status, retry in results if status == 503)
    assert httpx.get(server.url + "/health/ready").status_code == 200
    follow_up = rpc(server.url + "/", "message/send", v03_message("after the storm"))
    assert follow_up["result"]["status"]["state"] == "completed"
    scrape = httpx.get(server.url + "/metrics").text
    assert (
        f'hector_errors_total{{component="server",error_type="overloaded"}} '
        f"{float(statuses.count(503))}" in scrape
    )


def test_queue_waits_for_a_slot_instead_of_refusing(serve: Any, tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "server:\n  max_concurrent_runs: 1\n  queue_timeout: 20\n"
        "llms:\n  default:\n    provider: demo\n    stream_delay: 0.02\n",
    )
    server: Server = serve("-c", str(config))
    results = asyncio.run(_burst(server.url + "/", 2))  # the queue holds one waiter per slot
    assert [status for status, _ in results] == [200, 200]


@pytest.mark.parametrize(
    ("cancel_on_disconnect", "outcome"),
    [(False, "TASK_STATE_COMPLETED"), (True, "TASK_STATE_CANCELED")],
)
def test_client_hang_up_cancels_the_run_only_if_configured(
    serve: Any, tmp_path: Path, cancel_on_disconnect: bool, outcome: str
) -> None:
    """A client leaving a blocking send leaves its task running (the A2A spec), unless
    ``a2a.cancel_on_disconnect``."""
    config = write(
        tmp_path,
        "llms:\n  default:\n    provider: demo\n    stream_delay: 0.2\n"
        f"a2a:\n  cancel_on_disconnect: {str(cancel_on_disconnect).lower()}\n",
    )
    server: Server = serve("-c", str(config), "--log-level", "debug", "--log-format", "json")

    async def hang_up() -> None:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "message/send",
            "params": v03_message("a long answer"),
        }
        async with aiohttp.ClientSession() as session:
            with contextlib.suppress(TimeoutError):
                await session.post(
                    server.url + "/", json=body, timeout=aiohttp.ClientTimeout(total=1.0)
                )

    asyncio.run(hang_up())
    deadline = time.monotonic() + 20
    while True:
        listed = rpc(server.url + "/", "ListTasks", {}, version="1.0")["result"]["tasks"]
        if listed and listed[0]["status"]["state"] == outcome:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)


def test_sigterm_turns_readiness_off_while_draining(serve: Any, tmp_path: Path) -> None:
    config = write(tmp_path, "server:\n  drain_delay: 3\n")
    server: Server = serve("-c", str(config))
    assert httpx.get(server.url + "/health/ready").status_code == 200
    server.proc.terminate()
    deadline = time.monotonic() + 3
    while httpx.get(server.url + "/health/ready").status_code != 503:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # still serving work while balancers take the pod out
    reply = rpc(server.url + "/", "message/send", v03_message("one more"))
    assert reply["result"]["status"]["state"] == "completed"
    assert server.stop() == 0


def test_api_keys(serve: Any, tmp_path: Path) -> None:
    config = write(
        tmp_path,
        (
            "server:\n  auth:\n    api_keys:\n"
            "      - ${KEY_ONE}\n"
            '      - {key: "${KEY_TWO}", tenant: acme}\n'
            "observability:\n  metrics: {enabled: true}\n"
            "logging:\n  format: json\n"
        ),
    )
    env = clean_env(KEY_ONE="plain-key-123456", KEY_TWO="acme-key-987654")
    server: Server = serve("-c", str(config), env=env)
    url = server.url + "/"
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")}
    missing = httpx.post(url, json=body)
    wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer nope"})
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.json() == {"error": {"code": 401, "message": "missing or invalid API key"}}
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    bearer = httpx.post(url, json=body, headers={"Authorization": "Bearer plain-key-123456"})
    header = httpx.post(url, json=body, headers={"X-API-Key": "acme-key-987654"})
    assert bearer.status_code == header.status_code == 200
    for open_path in (
        "/health",
        "/health/live",
        "/health/ready",
        "/.well-known/agent-card.json",
        "/metrics",
    ):
        assert httpx.get(server.url + open_path).status_code == 200, open_path
    scrape = httpx.get(server.url + "/metrics").text
    assert 'hector_auth_failures_total{reason="missing"} 1.0' in scrape
    assert 'hector_auth_failures_total{reason="invalid"} 1.0' in scrape
    assert server.stop() == 0
    log = "\n".join(server.log_lines())
    assert "plain-key-123456" not in log and "acme-key-987654" not in log
    records = [json.loads(line) for line in server.log_lines()]
    assert any(r.get("tenant") == "acme" for r in records)


def test_metrics_can_require_a_key(serve: Any, tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "server:\n  auth:\n    api_keys: [k-123456]\n"
        "    protect_metrics: true\nobservability:\n  metrics: {enabled: true}\n",
    )
    server: Server = serve("-c", str(config))
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.get(server.url + "/metrics", headers={"X-API-Key": "k-123456"}).status_code == 200


async def _burst_messages(url: str, count: int) -> list[str]:
    """The error messages of ``count`` concurrent sends (``""`` for a success)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one() -> str:
            async with session.post(url, json=body) as response:
                answer = await response.json()
                return "" if response.status == 200 else str(answer["error"]["message"])

        return await asyncio.gather(*(one() for _ in range(count)))


def test_overload_names_the_limit_that_was_hit(serve: Any, tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "server:\n  max_concurrent_runs: 2\n"
        "llms:\n  default:\n    provider: demo\n    stream_delay: 0.2\n"
        "agents:\n  capped:\n    max_concurrent_runs: 1\n  free: {}\n",
    )
    server: Server = serve("-c", str(config))
    free = [m for m in asyncio.run(_burst_messages(server.url + "/agents/free", 6)) if m]
    assert free and all("server.max_concurrent_runs" in m for m in free), free
    capped = [m for m in asyncio.run(_burst_messages(server.url + "/agents/capped", 4)) if m]
    assert capped and all("agents.capped.max_concurrent_runs" in m for m in capped), capped
