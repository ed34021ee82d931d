"""Per-tenant usage without budgets: tokens and estimated cost carry the tenant when it is
configured (an API key's tenant or a budget's), every other tenant is ``other``, so labels
stay bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, v03_message
from tests.metrics_helpers import scrape

ACME, PLAIN = "key-acme-0123456789", "key-plain-0123456789"
TOKENS = "hector_tenant_tokens_total"
COST = "hector_tenant_cost_usd_total"


def test_tokens_are_counted_per_configured_tenant_and_others_are_other(
    serve: Any, tmp_path: Path
) -> None:
    config = tmp_path / "tenants.yaml"
    config.write_text(
        "llms:\n  default: {provider: demo, stream_delay: 0,"
        " pricing: {input_per_million: 1000000, output_per_million: 2000000}}\n"
        "server:\n  auth:\n"
        f"    api_keys:\n      - {{key: {ACME}, tenant: acme}}\n      - {PLAIN}\n"
        "    tenant_header: X-Tenant\n"
        "observability:\n  metrics: {enabled: true}\n"
    )
    server: Server = serve("-c", str(config))
    chat = httpx.post(
        server.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {ACME}"},
        json={"model": "assistant", "messages": [{"role": "user", "content": "hello there"}]},
        timeout=10,
    ).json()
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")}
    headers = {"Authorization": f"Bearer {PLAIN}", "X-Tenant": "mallory"}
    task = httpx.post(server.url + "/", headers=headers, json=body, timeout=10).json()
    assert task["result"]["status"]["state"] == "completed"
    metrics = scrape(server.url + "/metrics")  # metrics stay open unless protect_metrics
    usage = chat["usage"]
    assert metrics.value(TOKENS, tenant="acme", type="prompt") == usage["prompt_tokens"]
    assert metrics.value(TOKENS, tenant="acme", type="completion") == usage["completion_tokens"]
    assert metrics.value(TOKENS, tenant="other", type="prompt") > 0
    assert metrics.label_values("tenant", TOKENS) == {"acme", "other"}
    # $1 per prompt token, $2 per completion token
    cost = usage["prompt_tokens"] + 2 * usage["completion_tokens"]
    assert metrics.value(COST, tenant="acme") == cost
    task_usage = task["result"]["metadata"]["usage"]
    expected = task_usage["promptTokens"] + 2 * task_usage["completionTokens"]
    assert task_usage["costUsd"] == expected
    assert metrics.value(COST, tenant="other") == expected
