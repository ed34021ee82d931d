"""Token budgets per tenant through the real server: refusals, gauges, sqlite persistence."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, start_fake_llm, v03_message
from tests.metrics_helpers import scrape

ACME, BETA = "acme-key-0001", "beta-key-0002"
REMAINING, USED = "hector_token_budget_remaining", "hector_token_budget_used_total"


def write_config(tmp_path: Path, server: str, daily: int = 80) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(
        "llms:\n  default:\n    provider: demo\n    stream_delay: 0\n"
        f"server:\n{server}"
        f"storage:\n  type: sqlite\n  path: {tmp_path / 'hector.db'}\n"
        "observability:\n  metrics:\n    enabled: true\n"
        f"budgets:\n  acme: {{daily_tokens: {daily}, monthly_tokens: 100000}}\n"
    )
    return path


AUTH = (
    "  auth:\n    api_keys:\n"
    f"      - {{key: {ACME}, tenant: acme}}\n      - {{key: {BETA}, tenant: beta}}\n"
)


def chat(server: Server, key: str, text: str = "hello there") -> httpx.Response:
    return httpx.post(
        server.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "assistant", "messages": [{"role": "user", "content": text}]},
        timeout=10,
    )


def send(server: Server, headers: dict[str, str]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")}
    response = httpx.post(server.url + "/", headers=headers, json=body, timeout=10)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def remaining(server: Server, period: str) -> float:
    return scrape(server.url + "/metrics").value(REMAINING, tenant="acme", period=period)


def test_over_budget_tenant_is_refused_and_it_survives_a_restart(
    serve: Any, tmp_path: Path
) -> None:
    config = str(write_config(tmp_path, AUTH))
    server: Server = serve("-c", config)
    assert remaining(server, "daily") == 80 and remaining(server, "monthly") == 100000
    limits = scrape(server.url + "/metrics")
    assert limits.value("hector_token_budget_limit", tenant="acme", period="daily") == 80
    first = chat(server, ACME)
    assert first.status_code == 200
    spent = first.json()["usage"]["total_tokens"]
    assert remaining(server, "daily") == 80 - spent
    assert remaining(server, "monthly") == 100000 - spent
    assert scrape(server.url + "/metrics").value(USED, tenant="acme", period="daily") == spent
    for _ in range(80):  # bounded: every run costs at least one token
        response = chat(server, ACME)
        if response.status_code != 200:
            break
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "budget_exceeded" and error["type"] == "insufficient_quota"
    assert "tenant 'acme' has used its daily budget of 80 tokens" in error["message"]
    assert remaining(server, "daily") == 0
    refused = send(server, {"X-API-Key": ACME})
    assert refused["error"]["code"] == -32011
    assert chat(server, BETA).status_code == 200  # a tenant without a budget
    assert set(scrape(server.url + "/metrics").label_values("tenant", REMAINING)) == {"acme"}
    assert server.stop() == 0

    again: Server = serve("-c", config)
    assert remaining(again, "daily") == 0  # read back from sqlite at start
    assert chat(again, ACME).status_code == 429


def test_a2a_runs_are_charged_and_the_tenant_header_names_the_tenant(
    serve: Any, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "  auth:\n    tenant_header: X-Tenant\n", daily=1000)
    server: Server = serve("-c", str(config))
    result = send(server, {"X-Tenant": "acme"})["result"]
    assert result["status"]["state"] == "completed"
    deadline = time.monotonic() + 10
    while remaining(server, "daily") == 1000:  # charged once the task ended
        assert time.monotonic() < deadline, "the run was never charged"
        time.sleep(0.05)
    assert remaining(server, "daily") < 1000
    send(server, {})  # no tenant: not budgeted, not charged
    assert scrape(server.url + "/metrics").label_values("tenant", USED) == {"acme"}


def test_triggered_runs_are_charged_to_the_triggers_tenant(serve: Any, tmp_path: Path) -> None:
    secret = "hook-secret-for-test"
    config = write_config(tmp_path, "  max_body_bytes: 1048576\n", daily=60)
    config.write_text(
        config.read_text()
        + "agents:\n  assistant:\n    trigger:\n      type: webhook\n"
        + f"      secret: {secret}\n      tenant: acme\n"
    )
    server: Server = serve("-c", str(config))
    fired = itertools.count()

    def fire() -> httpx.Response:
        body = json.dumps({"event": "push", "n": next(fired)}).encode()  # replays get 409
        stamp = str(int(time.time()))
        signed = stamp.encode() + b"." + body
        signature = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        headers = {"X-Hector-Signature": signature, "X-Hector-Timestamp": stamp}
        return httpx.post(server.url + "/webhooks/assistant", content=body, headers=headers)

    first = fire()
    assert first.status_code == 200 and first.json()["state"] == "completed"
    deadline = time.monotonic() + 10
    while remaining(server, "daily") == 60:  # charged once the task ended
        assert time.monotonic() < deadline, "the triggered run was never charged"
        time.sleep(0.05)
    for _ in range(60):  # bounded: every run costs at least one token
        response = fire()
        if response.status_code != 200:
            break
    assert response.status_code == 429
    assert (
        "tenant 'acme' has used its daily budget of 60 tokens"
        in response.json()["error"]["message"]
    )


def test_a_failed_run_pays_for_the_model_calls_it_made(serve: Any, tmp_path: Path) -> None:
    # three runs, each one model call (11 + 7 tokens) answered with a tool call: no final answer
    fake = start_fake_llm("openai", *["--tool-call", 'calculator:{"expression":"1+1"}'] * 3)
    try:
        config = tmp_path / "failing.yaml"
        config.write_text(
            f"llms:\n  default:\n    provider: openai\n    api_key: sk-test\n"
            f"    base_url: {fake.base_url}\n"
            "agents:\n  assistant:\n    tools: [calculator]\n    max_iterations: 1\n"
            "server:\n  auth:\n    tenant_header: X-Tenant\n"
            "observability:\n  metrics:\n    enabled: true\n"
            "budgets:\n  acme: {daily_tokens: 1000}\n"
        )
        server: Server = serve("-c", str(config))
        result = send(server, {"X-Tenant": "acme"})["result"]
        assert result["status"]["state"] == "failed"
        deadline = time.monotonic() + 10
        while remaining(server, "daily") == 1000:
            assert time.monotonic() < deadline, "the failed run was never charged"
            time.sleep(0.05)
        assert remaining(server, "daily") == 1000 - 18
        for stream in (False, True):  # the same failure through /v1: a 502, and charged
            body = {
                "model": "assistant",
                "stream": stream,
                "messages": [{"role": "user", "content": "hi"}],
            }
            failed = httpx.post(
                server.url + "/v1/chat/completions", headers={"X-Tenant": "acme"}, json=body
            )
            assert failed.status_code == (200 if stream else 502)
            assert "no final answer" in failed.text
        assert remaining(server, "daily") == 1000 - 3 * 18
    finally:
        fake.stop()
