"""Fallback chains and circuit breakers against real fake upstreams: a primary that fails
(retryably) hands the call to the next model, converted for its provider; a 400 or a stream
that already sent text does not fall back; after ``failure_threshold`` failures the
primary's circuit opens and it is skipped, as ``/health`` and the metrics show."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FakeLLM, Server, clean_env, start_fake_llm, start_server
from tests.metrics_helpers import scrape

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """\
llms:
  primary:
    provider: openai
    model: gpt-primary
    base_url: "{primary}"
    max_retries: 0
    fallbacks: [backup]
    circuit_breaker: {{failure_threshold: 3, cooldown_seconds: 600}}
  backup: {{provider: anthropic, model: claude-backup, base_url: "{backup}", api_key: k}}
agents:
  assistant: {{llm: primary, tools: [calculator]}}
observability:
  metrics: {{enabled: true}}
"""
REQUESTS = "hector_llm_requests_total"


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeLLM, FakeLLM]]:
    primary, backup = start_fake_llm("openai"), start_fake_llm("anthropic")
    yield primary, backup
    primary.stop()
    backup.stop()


@pytest.fixture(scope="module")
def server(
    fakes: tuple[FakeLLM, FakeLLM], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    primary, backup = fakes
    workdir = tmp_path_factory.mktemp("fallbacks")
    config = workdir / "hector.yaml"
    config.write_text(CONFIG.format(primary=primary.base_url, backup=backup.origin))
    server = start_server(workdir, "-c", str(config), env=clean_env(PYTHONPATH=str(ROOT)))
    yield server
    server.stop()


def chat(server: Server, text: str, **extra: Any) -> httpx.Response:
    body = {"model": "assistant", "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=15)


def health(server: Server) -> dict[str, Any]:
    return httpx.get(f"{server.url}/health", timeout=5).json()["components"]  # type: ignore[no-any-return]


def test_the_upstreams_rate_limit_headroom_is_a_gauge(
    server: Server, fakes: tuple[FakeLLM, FakeLLM]
) -> None:
    primary, _ = fakes
    left = {"x-ratelimit-remaining-requests": "42", "x-ratelimit-remaining-tokens": "9000"}
    primary.script({"text": "fine", "headers": left})
    assert chat(server, "hi").status_code == 200
    metrics = scrape(f"{server.url}/metrics")
    gauge = "hector_llm_ratelimit_remaining"
    assert metrics.value(gauge, provider="openai", model="gpt-primary", kind="requests") == 42
    assert metrics.value(gauge, provider="openai", model="gpt-primary", kind="tokens") == 9000


def test_a_400_fails_at_once_and_does_not_fall_back(
    server: Server, fakes: tuple[FakeLLM, FakeLLM]
) -> None:
    primary, backup = fakes
    before = len(backup.requests())
    primary.script({"status": 400, "error": "bad request from the caller"})
    answer = chat(server, "hi")
    assert answer.status_code == 502 and "bad request from the caller" in answer.text
    assert len(backup.requests()) == before
    assert health(server)["llm.primary"]["state"] == "ok"  # the request's fault, not the model's


def test_a_stream_that_sent_text_does_not_fall_back(
    server: Server, fakes: tuple[FakeLLM, FakeLLM]
) -> None:
    primary, backup = fakes
    before = len(backup.requests())
    primary.script({"text": "one two three four five six", "fault": "cut", "chunk_size": 4})
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json={
            "model": "assistant",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
        timeout=15,
    ) as response:
        body = response.read().decode()
    assert response.status_code == 200 and '"error"' in body, body
    assert len(backup.requests()) == before


def test_tool_conversation_falls_back_to_anthropic_then_the_circuit_opens(
    server: Server, fakes: tuple[FakeLLM, FakeLLM]
) -> None:
    primary, backup = fakes
    # 1: the primary asks for a tool, then fails: Anthropic gets the whole conversation
    primary.script(
        {"tool_calls": [["calculator", {"expression": "6*7"}]]},
        {"status": 503, "error": "overloaded"},
    )
    seen = len(backup.requests())
    answer = chat(server, "what is 6*7?")
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Hector-Model"] == "anthropic/claude-backup"
    assert answer.json()["choices"][0]["message"]["content"] == "The tool returned: 42"
    converted = backup.requests()[seen]["body"]["messages"]
    use = converted[1]["content"][0]
    assert use["type"] == "tool_use" and use["name"] == "calculator"
    assert use["input"] == {"expression": "6*7"}
    result = converted[2]["content"][0]
    assert result == {"type": "tool_result", "tool_use_id": use["id"], "content": "42"}
    assert health(server)["llm.primary"]["state"] == "degraded"
    assert health(server)["llm.primary"]["last_error"] == "503"
    # 2, 3: two more refused calls reach the threshold (3 in the window): the circuit opens
    primary.script({"fault": "reset"}, {"status": 429, "error": "slow down"})
    assert chat(server, "again").status_code == 200
    assert chat(server, "and again").status_code == 200
    assert health(server)["llm.primary"] == {
        "status": "degraded",
        "state": "open",
        "last_error": "429",
    }
    metrics = scrape(f"{server.url}/metrics")
    assert metrics.value("hector_llm_circuit_state", provider="openai", model="gpt-primary") == 2
    assert (
        metrics.value("hector_llm_circuit_state", provider="anthropic", model="claude-backup") == 0
    )
    calls = metrics.value(
        REQUESTS, agent="assistant", provider="openai", model="gpt-primary", status="error"
    )
    # 4: while open, the primary is not called at all
    asked = len(primary.requests())
    assert chat(server, "once more").status_code == 200
    assert len(primary.requests()) == asked
    after = scrape(f"{server.url}/metrics")
    assert (
        after.value(
            REQUESTS, agent="assistant", provider="openai", model="gpt-primary", status="error"
        )
        == calls
    )
    assert httpx.get(f"{server.url}/health/ready", timeout=5).status_code == 200


def test_a_half_open_fallback_keeps_its_trial_while_the_primary_answers() -> None:
    """A fallback's half-open trial is claimed only by a call that goes to it: while the
    primary answers, the fallback stays ready for its one trial (it was stuck before)."""
    from hector_py.agent.calls import ModelCaller, Step, UsageMeter
    from hector_py.config.llm import CircuitBreakerConfig
    from hector_py.config.model import ObservabilityConfig
    from hector_py.llm.base import LLMRequest, Message
    from hector_py.llm.breaker import Breaker, Model
    from hector_py.llm.demo import DemoLLM
    from hector_py.observability.telemetry import Telemetry

    now = [0.0]
    config = CircuitBreakerConfig(failure_threshold=1, cooldown_seconds=1)
    breaker = Breaker("backup", config, clock=lambda: now[0])
    breaker.failure("timeout")  # open
    now[0] = 5.0  # the cooldown is over: one trial is due
    caller = ModelCaller(
        "assistant",
        [Model("primary", DemoLLM(stream_delay=0)), Model("backup", DemoLLM(), breaker)],
        Telemetry(ObservabilityConfig()),
        10_000,
    )

    async def ask() -> str:
        step = Step()
        request = LLMRequest(messages=(Message("user", "hi"),))
        async for _ in caller.call(request, step, stream=False, hold=False, meter=UsageMeter()):
            pass
        return "".join(step.text)

    for _ in range(3):
        assert asyncio.run(ask()).startswith('You said: "hi"')
    assert breaker.allow()  # the trial is still the backup's to take
