"""Rate limits that hold across replicas and per model: two real ``hector serve`` replicas on
one real PostgreSQL share each tenant's and each model's buckets (the 6th request of a
5-per-minute tenant is refused whichever replica gets it), and a model over its own
``rate_limit`` hands the call to its fallback, or, with none left, the caller gets 429 with
``Retry-After`` (``/v1``) or a failed task naming the limit (A2A)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, rpc, start_server, v03_message
from tests.postgres_server import Postgres, new_schema

KEY = "key-acme-0123456789"
SHARED = """\
storage: {{type: postgres, dsn: '{dsn}', schema: {schema}}}
llms:
  default: {{provider: demo, stream_delay: 0}}
  capped: {{provider: demo, model: capped, stream_delay: 0, rate_limit: {{requests_per_minute: 3}}}}
agents:
  assistant: {{}}
  frugal: {{llm: capped}}
server:
  auth:
    api_keys: [{{key: {key}, tenant: acme}}, {{key: key-free-0123456789, tenant: free}}]
rate_limits:
  tenants:
    acme: {{requests_per_minute: 5}}
"""
PER_MODEL = """\
llms:
  primary:
    {provider: demo, model: primary, stream_delay: 0, rate_limit: {requests_per_minute: 2},
     fallbacks: [backup]}
  backup: {provider: demo, model: backup, stream_delay: 0}
  lonely: {provider: demo, model: lonely, stream_delay: 0, rate_limit: {requests_per_minute: 1}}
agents:
  assistant: {llm: primary}
  solo: {llm: lonely}
"""


def chat(server: Server, agent: str = "assistant", key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        headers=headers,
        json={"model": agent, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def test_limits_hold_across_two_replicas(postgres: Postgres, tmp_path: Path) -> None:
    config = tmp_path / "hector.yaml"
    config.write_text(SHARED.format(dsn=postgres.dsn, schema=new_schema(), key=KEY))
    a = start_server(tmp_path, "-c", str(config))
    b = start_server(tmp_path, "-c", str(config))
    try:
        codes = [chat(server, key=KEY).status_code for server in (a, b, a, b, a, b, a)]
        assert codes == [200] * 5 + [429] * 2, codes  # one bucket of 5, not 5 per replica
        refused = chat(b, key=KEY)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        over = rpc(
            f"{a.url}/agents/assistant",
            "message/send",
            v03_message("hi"),
            headers={"X-API-Key": KEY},
        )
        assert over["error"]["code"] == -32013

        # a model's limit is shared too (tenant free has no limit of its own)
        free = "key-free-0123456789"
        frugal = [chat(server, "frugal", free).status_code for server in (a, b, a, b)]
        assert frugal == [200, 200, 200, 429], frugal
    finally:
        assert a.stop() == 0 and b.stop() == 0


def test_a_model_over_its_limit_hands_over_to_its_fallback(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "hector.yaml"
    config.write_text(PER_MODEL)
    server: Server = serve("-c", str(config))
    answered = [chat(server).headers["X-Hector-Model"] for _ in range(4)]
    assert answered == ["demo/primary", "demo/primary", "demo/backup", "demo/backup"]

    assert chat(server, "solo").status_code == 200
    refused = chat(server, "solo")  # no fallback left: the caller hears the limit
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "rate limit of 1 requests per minute reached for model 'lonely'" in refused.text
    task = rpc(
        f"{server.url}/agents/solo",
        "message/send",
        v03_message("hi"),
    )["result"]
    assert task["status"]["state"] == "failed"
    assert "reached for model 'lonely'" in task["status"]["message"]["parts"][0]["text"]


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (.ci/run installs Debian's)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, "redis-server exited"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def test_limits_hold_across_replicas_through_redis(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "hector.yaml"
    config.write_text(
        "llms: {default: {provider: demo, stream_delay: 0}}\n"
        f"server:\n  auth:\n    api_keys: [{{key: {KEY}, tenant: acme}}]\n"
        f"rate_limits:\n  backend: '{redis_url}'\n  tenants: {{acme: {{requests_per_minute: 5}}}}\n"
    )
    a = start_server(tmp_path, "-c", str(config))  # memory stores: only Redis is shared
    b = start_server(tmp_path, "-c", str(config))
    try:
        codes = [chat(server, key=KEY).status_code for server in (a, b, a, b, a, b)]
        assert codes == [200] * 5 + [429], codes
        refused = chat(a, key=KEY)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    finally:
        assert a.stop() == 0 and b.stop() == 0
