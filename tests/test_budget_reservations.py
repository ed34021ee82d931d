"""Budgets under concurrency: a run reserves ``reserve_tokens`` when it starts and settles
with its real count when it ends, so runs at once overshoot by at most one reservation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import FakeLLM, Server, start_fake_llm, start_server, v03_message
from tests.metrics_helpers import scrape

LIMIT, RESERVE, RUN = 100, 70, 50  # tokens: acme's daily budget, its reservation, one run
CONFIG = """\
llms:
  default: {{provider: openai, model: gpt-fake, base_url: "{url}", max_retries: 0}}
server:
  auth: {{tenant_header: X-Tenant}}
observability:
  metrics: {{enabled: true}}
budgets:
  acme: {{daily_tokens: {limit}, reserve_tokens: {reserve}}}
  beta: {{daily_tokens: 1000, reserve_tokens: {reserve}}}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLM]:
    fake = start_fake_llm("openai", "--usage", "30,20", "--delay", "1")  # RUN tokens, slowly
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(upstream: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("reservations")
    config = workdir / "hector.yaml"
    config.write_text(CONFIG.format(url=upstream.base_url, limit=LIMIT, reserve=RESERVE))
    server = start_server(workdir, "-c", str(config))
    yield server
    server.stop()


def chat(server: Server, tenant: str) -> int:
    response = httpx.post(
        server.url + "/v1/chat/completions",
        headers={"X-Tenant": tenant},
        json={"model": "assistant", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    return response.status_code


def used(server: Server, tenant: str) -> float:
    metrics = scrape(server.url + "/metrics")
    return metrics.value("hector_token_budget_used_total", tenant=tenant, period="daily")


def remaining(server: Server, tenant: str) -> float:
    metrics = scrape(server.url + "/metrics")
    return metrics.value("hector_token_budget_remaining", tenant=tenant, period="daily")


def test_concurrent_runs_overshoot_by_at_most_one_reservation(server: Server) -> None:
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: chat(server, "acme"), range(8)))
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) >= 1, statuses  # without reservations all 8 ran: 400 tokens
    assert used(server, "acme") == RUN * statuses.count(200) <= LIMIT + RESERVE
    assert chat(server, "acme") == 429
    # what is stored is what the runs used: the refused ones gave their reservation back
    assert remaining(server, "acme") == max(LIMIT - RUN * statuses.count(200), 0)


def test_an_a2a_run_settles_its_reservation_when_it_ends(server: Server) -> None:
    headers = {"X-Tenant": "beta"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")}
    response = httpx.post(server.url + "/", headers=headers, json=body, timeout=30)
    assert response.json()["result"]["status"]["state"] == "completed"
    deadline = time.monotonic() + 10  # settled in the background once the task ended
    while remaining(server, "beta") != 1000 - RUN:
        assert time.monotonic() < deadline, remaining(server, "beta")
        time.sleep(0.05)
    assert used(server, "beta") == RUN


def test_a_refused_run_gives_its_reservation_back(server: Server) -> None:
    assert chat(server, "acme") == 429
    before = remaining(server, "acme")
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")}
    for _ in range(3):
        response = httpx.post(server.url + "/", headers={"X-Tenant": "acme"}, json=body, timeout=30)
        assert response.json()["error"]["code"] == -32011
        assert chat(server, "acme") == 429
    assert remaining(server, "acme") == before


def test_an_invalid_request_holds_nothing(server: Server) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "message/send",
        "params": {**v03_message("hi"), "configuration": "not an object"},
    }
    for _ in range(3):
        response = httpx.post(server.url + "/", headers={"X-Tenant": "beta"}, json=body, timeout=30)
        assert response.json()["error"]["code"] == -32602
    assert remaining(server, "beta") == 1000 - RUN  # as the earlier run left it
