"""``--workers N``: several processes on one port, one set of metrics that adds up."""

from __future__ import annotations

import json
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server, v03_message

MAX_REQUESTS = 300


def _value(scrape: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(scrape)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_two_workers_share_the_port_and_their_counts_add_up(serve: Any) -> None:
    server: Server = serve("--workers", "2", "--metrics", "--log-format", "json")
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")}
    sent = 0
    pids: set[int] = set()
    while sent < MAX_REQUESTS and (len(pids) < 2 or sent < 40):
        # a new connection each time, so the kernel can hand it to either worker
        reply = httpx.post(server.url + "/", json=body, headers={"Connection": "close"})
        assert reply.json()["result"]["status"]["state"] == "completed"
        sent += 1
        if sent % 10 == 0:
            records = [json.loads(line) for line in server.log_lines()]
            pids = {r["pid"] for r in records if r["logger"] == "hector.access"}
    assert len(pids) == 2, f"only one worker served {sent} requests"
    scrape = httpx.get(server.url + "/metrics").text
    assert _value(scrape, "hector_requests_total", route="/") == sent
    assert _value(scrape, "hector_llm_requests_total", status="success") == sent
    assert _value(scrape, "hector_agent_invocations_total") == sent
    assert _value(scrape, "hector_active_requests") == 1  # just this scrape
    assert server.stop() == 0
    records = [json.loads(line) for line in server.log_lines()]
    assert sum(1 for r in records if r["msg"] == "stopped") == 2
