"""GenAI answers as the provider gave them: ``/v1/chat/completions`` passes the model's
real finish reason through, and the OTel GenAI client metrics are scraped (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, rpc, start_fake_llm, v03_message
from tests.fakes.trace_receivers import OTLPHttpReceiver
from tests.metrics_helpers import scrape


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_v1_passes_the_real_finish_reason_through(
    serve: Any, tmp_path: Path, provider: str
) -> None:
    fake = start_fake_llm(provider)
    try:
        config = tmp_path / "v1.yaml"
        config.write_text(
            f"llms:\n  default: {{provider: {provider}, model: m, api_key: k, "
            f'base_url: "{fake.base_url}", max_retries: 0}}\n'
            "agents:\n  assistant: {}\n"
        )
        server: Server = serve("-c", str(config))
        url = server.url + "/v1/chat/completions"
        ask = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}
        finishes = []
        for truncated in (True, False):
            fake.script({"text": "a long answer", "truncated": truncated})
            blocking = httpx.post(url, json=ask, timeout=20).json()
            finishes.append(blocking["choices"][0]["finish_reason"])
            fake.script({"text": "a long answer", "truncated": truncated})
            streamed = httpx.post(url, json={**ask, "stream": True}, timeout=20).text
            events = [
                json.loads(line[len("data: ") :])
                for line in streamed.splitlines()
                if line.startswith("data: {")
            ]
            finishes += [
                c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]
            ]
    finally:
        fake.stop()
    assert finishes == ["length", "length", "stop", "stop"]


def test_genai_client_metrics_in_prometheus_form(serve: Any, tmp_path: Path) -> None:
    fake = start_fake_llm("openai", "--usage", "11,7")
    try:
        config = tmp_path / "m.yaml"
        config.write_text(
            f"llms:\n  default: {{provider: openai, model: m, api_key: k, "
            f'base_url: "{fake.base_url}", max_retries: 0}}\n'
            "agents:\n  assistant: {}\n"
            "observability:\n  metrics: {enabled: true}\n"
        )
        server: Server = serve("-c", str(config))
        fake.script({"text": "ok", "model": "m-2024"}, {"status": 429})
        for _ in range(2):
            rpc(server.url + "/", "message/send", v03_message("hi"))
        metrics = scrape(server.url + "/metrics")
    finally:
        fake.stop()
    call = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai"}
    call["gen_ai_request_model"] = "m"
    answered = {**call, "gen_ai_response_model": "m-2024"}
    tokens = "gen_ai_client_token_usage"
    assert metrics.value(f"{tokens}_sum", **answered, gen_ai_token_type="input") == 11
    assert metrics.value(f"{tokens}_sum", **answered, gen_ai_token_type="output") == 7
    assert metrics.value(f"{tokens}_count", **answered, gen_ai_token_type="output") == 1
    duration = "gen_ai_client_operation_duration_seconds_count"
    assert metrics.value(duration, **answered, error_type="") == 1
    # the refused call: a duration with its cause, no response model and no token counts
    failed = {**call, "gen_ai_response_model": ""}
    assert metrics.value(duration, **failed, error_type="429") == 1
    assert not metrics.matching(f"{tokens}_count", **failed)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True], ids=["blocking", "streamed"])
def test_cached_and_reasoning_tokens_are_counted(
    serve: Any, tmp_path: Path, stream: bool, provider: str
) -> None:
    fake = start_fake_llm(provider, "--usage", "11,7")
    try:
        with OTLPHttpReceiver() as receiver:
            config = tmp_path / "d.yaml"
            config.write_text(
                f"llms:\n  default: {{provider: {provider}, model: m, api_key: k, "
                f'base_url: "{fake.base_url}", max_retries: 0}}\n'
                "agents:\n  assistant: {}\n"
                "observability:\n  metrics: {enabled: true}\n"
                f"  tracing: {{enabled: true, endpoint: {receiver.traces_url}}}\n"
            )
            server: Server = serve("-c", str(config))
            fake.script({"text": "ok", "details": [5, 3]})
            method = "message/stream" if stream else "message/send"
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": v03_message("hi")}
            httpx.post(server.url + "/", json=body, timeout=20).raise_for_status()
            spans = receiver.wait_for(lambda got: any(s.kind == "SERVER" for s in got))
            metrics = scrape(server.url + "/metrics")
    finally:
        fake.stop()
    chat = next(s for s in spans if s.name == "chat m")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 11  # cached ones included
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 5
    details = "hector_llm_token_details_total"
    assert metrics.value(details, model="m", type="cached") == 5
    reasoning = 0 if provider == "anthropic" else 3  # Anthropic reports none apart
    assert chat.attributes.get("gen_ai.usage.reasoning.output_tokens", 0) == reasoning
    assert metrics.value(details, model="m", type="reasoning") == reasoning
