"""Per-tenant rate limits (``rate_limits:``): a tenant over its requests per minute gets
429 with ``Retry-After`` and OpenAI's ``x-ratelimit-*`` headers on ``/v1`` (the official
``openai`` SDK waits and succeeds) and -32013 with a retry hint over A2A, while another
tenant is untouched; tokens per minute count the real usage after each run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI

from tests.conftest import Server
from tests.metrics_helpers import scrape

ACME, BETA, TOKY = "key-acme-0123456789", "key-beta-0123456789", "key-toky-0123456789"
CONFIG = f"""\
llms:
  default: {{provider: demo, stream_delay: 0}}
server:
  auth:
    api_keys:
      - {{key: {ACME}, tenant: acme}}
      - {{key: {BETA}, tenant: beta}}
      - {{key: {TOKY}, tenant: toky}}
rate_limits:
  tenants:
    acme: {{requests_per_minute: 60}}
    toky: {{tokens_per_minute: 40}}
observability:
  metrics: {{enabled: true}}
"""


def chat(server: Server, key: str, text: str = "hello") -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "assistant", "messages": [{"role": "user", "content": text}]},
        timeout=10,
    )


def test_tenant_limits(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "limits.yaml"
    config.write_text(CONFIG)
    server: Server = serve("-c", str(config))
    with httpx.Client(timeout=10) as client:
        codes = []
        for _ in range(70):
            answer = client.post(
                f"{server.url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {ACME}"},
                json={"model": "assistant", "messages": [{"role": "user", "content": "hi"}]},
            )
            codes.append(answer.status_code)
            if answer.status_code == 429:
                refused = answer
    assert codes.count(429) >= 5 and set(codes) == {200, 429}, codes
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["x-ratelimit-limit-requests"] == "60"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "retry after" in error["message"]
    # another tenant is not affected
    assert all(chat(server, BETA).status_code == 200 for _ in range(10))
    # A2A: -32013 with the retry hint in ErrorInfo
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}},
    }
    answer = httpx.post(
        server.url + "/",
        json=body,
        headers={"Authorization": f"Bearer {ACME}", "A2A-Version": "1.0"},
        timeout=10,
    ).json()
    assert answer["error"]["code"] == -32013, answer
    assert int(answer["error"]["data"][0]["metadata"]["retryAfterSeconds"]) >= 1
    # the official SDK honours Retry-After and gets through once the bucket refills
    sdk = OpenAI(base_url=f"{server.url}/v1", api_key=ACME, max_retries=5)
    reply = sdk.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "patience"}]
    )
    assert "patience" in (reply.choices[0].message.content or "")
    # tokens per minute: the real usage of earlier runs is charged, then requests wait
    statuses = [chat(server, TOKY, "a few words of text here").status_code for _ in range(6)]
    assert 429 in statuses and statuses[0] == 200, statuses
    metrics = scrape(f"{server.url}/metrics")
    assert metrics.value("hector_rate_limited_total", kind="requests") >= 6
    assert metrics.value("hector_rate_limited_total", kind="tokens") >= 1
