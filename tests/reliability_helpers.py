"""Helpers shared by the reliability and security suites (faults, bad input, fuzz,
secrets, restart): metrics lookups, JSON log lines, trace ids, fake-upstream scripts."""

from __future__ import annotations

import atexit
import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FakeLLM, Server

HTTP = httpx.Client(timeout=30)
"""One client for the suites, shared by threads: a new client per request costs an SSL
context, which adds up to seconds on a loaded machine."""
atexit.register(HTTP.close)


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` (e.g. ``hector_llm_requests_total``) in a
    Prometheus text scrape whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def scrape(server: Server) -> str:
    response = HTTP.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def json_logs(server: Server) -> list[dict[str, Any]]:
    """The server's JSON log records (lines that are not JSON objects are skipped)."""
    records = []
    for line in server.log_lines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def new_trace() -> tuple[str, dict[str, str]]:
    """A fresh trace id and the ``traceparent`` header that makes it the parent."""
    trace_id = secrets.token_hex(16)
    return trace_id, {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}


def set_script(fake: FakeLLM, replies: list[dict[str, Any]]) -> None:
    """Replace the fake upstream's script (``Reply`` fields as JSON); ``[]`` = echo."""
    origin = fake.base_url.split("/v1")[0].rstrip("/")
    response = HTTP.post(f"{origin}/_fake/script", json=replies, timeout=5)
    assert response.status_code == 200, response.text


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def sse_data(response: httpx.Response) -> Iterator[str]:
    """The ``data:`` payloads of a (fully read) server-sent-event response."""
    for line in response.text.splitlines():
        if line.startswith("data:"):
            yield line[5:].strip()


def rpc_body(method: str, params: Any, request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def v1_message(text: str, **configuration: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "message": {
            "messageId": secrets.token_hex(4),
            "role": "ROLE_USER",
            "parts": [{"text": text}],
        }
    }
    if configuration:
        params["configuration"] = configuration
    return params
