"""GenAI answers as the provider gave them: ``/v1/chat/completions`` passes the model's
real finish reason through, blocking and streamed (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_fake_llm


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
