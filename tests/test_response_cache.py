"""The exact-match response cache (``llms.<name>.cache``): a repeated deterministic request
is answered without an upstream call or tokens (blocking and streamed alike), counted and
marked on its span; another temperature is not cached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import FakeLLM, Server, configured_server
from tests.metrics_helpers import scrape

CONFIG = """\
llms:
  cold:
    {{provider: openai, model: gpt-cold, base_url: "{url}", temperature: 0,
      cache: {{enabled: true}}}}
  warm:
    {{provider: openai, model: gpt-warm, base_url: "{url}", temperature: 0.7,
      cache: {{enabled: true}}}}
agents:
  cold: {{llm: cold}}
  warm: {{llm: warm}}
observability:
  metrics: {{enabled: true}}
"""


@pytest.fixture(scope="module")
def server(openai_fake: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with configured_server(
        tmp_path_factory, "cache", CONFIG.format(url=openai_fake.base_url)
    ) as server:
        yield server


def chat(server: Server, agent: str, text: str, **extra: Any) -> httpx.Response:
    body = {"model": agent, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)


def streamed_text(server: Server, agent: str, text: str) -> str:
    body = {"model": agent, "messages": [{"role": "user", "content": text}], "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=10) as r:
        lines = [
            line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")
        ]
    chunks = [json.loads(line) for line in lines if line != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_a_repeated_request_is_answered_from_the_cache(
    server: Server, openai_fake: FakeLLM
) -> None:
    seen = len(openai_fake.requests())
    first = chat(server, "cold", "the same question")
    second = chat(server, "cold", "the same question")
    assert len(openai_fake.requests()) == seen + 1  # one upstream call for both
    assert first.json()["choices"][0]["message"] == second.json()["choices"][0]["message"]
    assert first.json()["usage"]["total_tokens"] > 0
    assert second.json()["usage"]["total_tokens"] == 0  # nothing to charge
    assert streamed_text(server, "cold", "the same question") == "echo: the same question"
    assert len(openai_fake.requests()) == seen + 1
    chat(server, "cold", "another question")
    assert len(openai_fake.requests()) == seen + 2
    metrics = scrape(f"{server.url}/metrics")
    labels = {"provider": "openai", "model": "gpt-cold"}
    assert metrics.value("hector_llm_cache_hits_total", **labels) == 2
    assert metrics.value("hector_llm_cache_misses_total", **labels) == 2


def test_another_temperature_is_not_cached(server: Server, openai_fake: FakeLLM) -> None:
    seen = len(openai_fake.requests())
    chat(server, "warm", "again and again")
    chat(server, "warm", "again and again")
    assert len(openai_fake.requests()) == seen + 2
    metrics = scrape(f"{server.url}/metrics")
    assert "gpt-warm" not in metrics.label_values("model", "hector_llm_cache_misses_total")
