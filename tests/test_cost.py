"""``llm_cost_usd_total`` from ``llms.<name>.pricing``, through the real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def test_cost_follows_pricing_and_usage(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "priced.yaml"
    config.write_text(
        "llms:\n  default:\n    provider: demo\n    stream_delay: 0\n"
        "    pricing: {input_per_million: 2.5, output_per_million: 10}\n"
        "  free:\n    provider: demo\n    model: demo-free\n    stream_delay: 0\n"
        "agents:\n  assistant: {}\n  gratis: {llm: free}\n"
        "observability:\n  metrics: {enabled: true}\n"
    )
    server: Server = serve("-c", str(config))
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    for model in ("assistant", "assistant", "gratis"):
        reply = httpx.post(
            f"{server.url}/v1/chat/completions",
            timeout=10,
            json={"model": model, "messages": [{"role": "user", "content": "price this please"}]},
        )
        if model == "assistant":
            for key in usage:
                usage[key] += reply.json()["usage"][key]
    scrape = httpx.get(f"{server.url}/metrics").text
    [(labels, value)] = _samples(scrape, "hector_llm_cost_usd_total")
    assert labels == {"agent": "assistant", "provider": "demo", "model": "demo"}
    expected = (usage["prompt_tokens"] * 2.5 + usage["completion_tokens"] * 10) / 1e6
    assert abs(value - expected) < 1e-12
