"""Prometheus metrics through the real server: exact counts, names, labels, formats, lint.

Most tests share one server (agents ``x``, ``y`` with the calculator, ``r`` whose model
retries once) in front of one fake OpenAI upstream, and compare two scrapes: every check
is a delta, so the tests do not depend on each other's traffic.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hector_py import __version__
from tests.conftest import (
    SHARED_STORE,
    FakeLLM,
    Server,
    clean_env,
    hector,
    rpc,
    start_fake_llm,
    start_server,
    v03_message,
)
from tests.metrics_helpers import (
    OPENMETRICS,
    Scrape,
    delta,
    scrape,
)

P, C = 11, 7  # the fake upstream's usage: prompt and completion tokens per call
N = 5
V1 = "1.0"
MODEL = "gpt-4o"
LLM = {"agent": "x", "provider": "openai", "model": MODEL}
README = Path(__file__).resolve().parent.parent / "README.md"

HUB_CONFIG = """\
llms:
  default: {{provider: openai, model: {model}, base_url: "{url}", max_retries: 0}}
  retrying:
    provider: openai
    model: gpt-4o-retry
    base_url: "{url}"
    max_retries: 1
    retry_backoff: 0
agents:
  x: {{}}
  y: {{tools: [calculator]}}
  r: {{llm: retrying}}
observability:
  metrics: {{enabled: true}}
"""

# The families of the metric set (default namespace), as a text-format scrape names them.
FAMILIES = {
    "hector_requests_total": "counter",
    "hector_request_duration_seconds": "histogram",
    "hector_active_requests": "gauge",
    "hector_agent_requests_total": "counter",
    "hector_agent_request_duration_seconds": "histogram",
    "hector_agent_invocations_total": "counter",
    "hector_active_agent_runs": "gauge",
    "hector_llm_requests_total": "counter",
    "hector_llm_request_duration_seconds": "histogram",
    "hector_llm_time_to_first_token_seconds": "histogram",
    "hector_llm_tokens_total": "counter",
    "hector_llm_retries_total": "counter",
    "hector_llm_cost_usd_total": "counter",
    "hector_tool_calls_total": "counter",
    "hector_tool_call_duration_seconds": "histogram",
    "hector_auth_failures_total": "counter",
    "hector_errors_total": "counter",
    "hector_build_info": "gauge",
}

Expectation = tuple[str, dict[str, str], float]


# --- fixtures and traffic ------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLM]:
    """One fake OpenAI upstream answering every call with usage (P, C)."""
    fake = start_fake_llm("openai", "--usage", f"{P},{C}")
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def hub(upstream: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared server: metrics on, agents x, y (calculator) and r (retrying model)."""
    workdir = tmp_path_factory.mktemp("metrics-hub")
    config = workdir / "hub.yaml"
    config.write_text(HUB_CONFIG.format(model=MODEL, url=upstream.base_url))
    server = start_server(workdir, "-c", str(config))
    yield server
    server.stop()


def metrics_url(server: Server) -> str:
    return server.url + "/metrics"


def v1_params(text: str) -> dict[str, Any]:
    return {
        "message": {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": text}]}
    }


def send_v03(url: str, text: str = "hello", **message: Any) -> dict[str, Any]:
    """message/send; returns the task."""
    reply = rpc(url, "message/send", v03_message(text, **message))
    assert "result" in reply, reply
    return reply["result"]  # type: ignore[no-any-return]


def send_v1(url: str, text: str = "hello") -> None:
    reply = rpc(url, "SendMessage", v1_params(text), version=V1)
    assert reply["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED", reply


def stream_v1(url: str, text: str = "hello", limit: int = 500) -> None:
    """SendStreamingMessage, read to the end (bounded); the last event completes the task."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": v1_params(text)}
    events: list[dict[str, Any]] = []
    with httpx.stream("POST", url, json=body, headers={"A2A-Version": V1}, timeout=10) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
            assert len(events) < limit
    final = events[-1]["result"]["statusUpdate"]["status"]["state"]
    assert final == "TASK_STATE_COMPLETED", events[-1]


def chat(base: str, model: str = "x", *, stream: bool, expect: int = 200) -> str:
    """/v1/chat/completions; returns the body (an SSE stream is read to ``[DONE]``)."""
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == expect, response.text
    if stream and expect == 200:
        assert response.text.rstrip().endswith("data: [DONE]")
    return response.text


def settle(url: str, before: Scrape, expected: list[Expectation], timeout: float = 10) -> Scrape:
    """Scrape until every expected delta is reached (streams may finish their bookkeeping
    just after the client read the last byte), then require each to be exact."""
    deadline = time.monotonic() + timeout
    while True:
        after = scrape(url)
        got = [delta(before, after, name, **labels) for name, labels, _ in expected]
        reached = all(g >= want for g, (_, _, want) in zip(got, expected, strict=True))
        if reached or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    wrong = [
        f"{name}{labels}: {g:g}, expected {want:g}"
        for g, (name, labels, want) in zip(got, expected, strict=True)
        if g != want
    ]
    assert not wrong, "\n".join(wrong)
    return after


def llm_calls(agent: str, calls: int, *, model: str = MODEL, ok: bool = True) -> list[Expectation]:
    """What ``calls`` LLM calls of ``agent`` add (each with the fake's usage if ok)."""
    llm = {"agent": agent, "provider": "openai", "model": model}
    return [
        ("hector_llm_requests_total", {**llm, "status": "success"}, calls if ok else 0),
        ("hector_llm_requests_total", {**llm, "status": "error"}, 0 if ok else calls),
        ("hector_llm_request_duration_seconds_count", llm, calls),
        ("hector_llm_tokens_total", {**llm, "type": "prompt"}, calls * P if ok else 0),
        ("hector_llm_tokens_total", {**llm, "type": "completion"}, calls * C if ok else 0),
    ]


# --- exact counts --------------------------------------------------------------------


def _send_v03(base: str) -> None:
    send_v03(base + "/agents/x")


def _chat(base: str) -> None:
    chat(base, stream=False)


def _chat_stream(base: str) -> None:
    chat(base, stream=True)


# name: (route, one request to the server at a base URL, streamed)
MODES: dict[str, tuple[str, Callable[[str], None], bool]] = {
    "message/send": ("/agents/{name}", _send_v03, False),
    "SendMessage": ("/", lambda base: send_v1(base + "/"), False),
    "SendStreamingMessage": ("/agents/{name}", lambda base: stream_v1(base + "/agents/x"), True),
    "chat": ("/v1/chat/completions", _chat, False),
    "chat-stream": ("/v1/chat/completions", _chat_stream, True),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_exact_counts_after_n_requests(hub: Server, mode: str) -> None:
    route, send, streamed = MODES[mode]
    before = scrape(metrics_url(hub))
    for _ in range(N):
        send(hub.url)
    http = {"method": "POST", "route": route}
    settle(
        metrics_url(hub),
        before,
        [
            ("hector_requests_total", {**http, "code": "200", "status": "success"}, N),
            ("hector_requests_total", {**http, "status": "error"}, 0),
            ("hector_request_duration_seconds_count", http, N),
            ("hector_agent_requests_total", {"agent": "x", "status": "success"}, N),
            ("hector_agent_invocations_total", {"agent": "x", "status": "success"}, N),
            ("hector_agent_request_duration_seconds_count", {"agent": "x"}, N),
            *llm_calls("x", N),
            # time to first token is a property of streams only
            ("hector_llm_time_to_first_token_seconds_count", LLM, N if streamed else 0),
            ("hector_tool_calls_total", {}, 0),
            ("hector_errors_total", {}, 0),
        ],
    )
    after = scrape(metrics_url(hub))
    assert after.value("hector_active_agent_runs", agent="x") == 0
    assert after.value("hector_active_requests") == 1  # the scrape itself


def test_tool_calls_are_counted(hub: Server, upstream: FakeLLM) -> None:
    usage = [P, C]
    ok_call = {"tool_calls": [["calculator", {"expression": "6*7"}]], "usage": usage}
    bad_call = {"tool_calls": [["calculator", {"expression": "1/0"}]], "usage": usage}
    runs = [ok_call, ok_call, ok_call, bad_call]
    # each run: the model asks for one tool call, then quotes the tool's result
    upstream.script(*[reply for call in runs for reply in (call, {"usage": usage})])
    before = scrape(metrics_url(hub))
    answers = [send_v03(hub.url + "/agents/y", "compute") for _ in runs]
    assert all(a["status"]["state"] == "completed" for a in answers)
    assert "42" in json.dumps(answers[0]["artifacts"])
    tool = {"agent": "y", "tool": "calculator"}
    settle(
        metrics_url(hub),
        before,
        [
            ("hector_tool_calls_total", {**tool, "status": "success"}, 3),
            ("hector_tool_calls_total", {**tool, "status": "error"}, 1),
            ("hector_tool_call_duration_seconds_count", tool, 4),
            ("hector_errors_total", {"component": "tool", "error_type": "ToolError"}, 1),
            *llm_calls("y", 2 * len(runs)),
            ("hector_agent_invocations_total", {"agent": "y", "status": "success"}, 4),
            ("hector_agent_request_duration_seconds_count", {"agent": "y"}, 4),
        ],
    )


def test_upstream_errors_are_counted(hub: Server, upstream: FakeLLM) -> None:
    """500, 400, 500 (no retries): LLM status=error, errors_total, HTTP 5xx = error."""
    upstream.script({"status": 500}, {"status": 400}, {"status": 500})
    before = scrape(metrics_url(hub))
    task = send_v03(hub.url + "/agents/x")
    assert task["status"]["state"] == "failed"
    chat(hub.url, stream=False, expect=502)
    # a stream the model refuses fails as a blocking call does: it never started
    body = {"model": "x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    streamed = httpx.post(f"{hub.url}/v1/chat/completions", json=body, timeout=10)
    assert streamed.status_code == 502 and '"upstream_error"' in streamed.text
    unknown = rpc(hub.url + "/agents/x", "no/such/method", {})  # no LLM call
    assert unknown["error"]["code"] == -32601
    chat_route = {"method": "POST", "route": "/v1/chat/completions"}
    settle(
        metrics_url(hub),
        before,
        [
            *llm_calls("x", 3, ok=False),
            ("hector_errors_total", {"component": "llm", "error_type": "500"}, 2),
            ("hector_errors_total", {"component": "llm", "error_type": "400"}, 1),
            ("hector_agent_invocations_total", {"agent": "x", "status": "error"}, 3),
            ("hector_errors_total", {"component": "agent"}, 3),
            ("hector_requests_total", {**chat_route, "code": "502", "status": "error"}, 2),
            ("hector_requests_total", {**chat_route, "code": "200", "status": "success"}, 0),
            # protocol level: the two 502s and the JSON-RPC error are errors; an
            # A2A task that failed is a valid answer (agent_invocations_total{status="error"})
            ("hector_agent_requests_total", {"agent": "x", "status": "error"}, 3),
            ("hector_llm_time_to_first_token_seconds_count", {}, 0),
        ],
    )


def test_failed_chat_stream_is_an_agent_request_error(hub: Server, upstream: FakeLLM) -> None:
    upstream.script({"status": 500})
    before = scrape(metrics_url(hub))
    body = {"model": "x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    streamed = httpx.post(f"{hub.url}/v1/chat/completions", json=body, timeout=10)
    assert '"upstream_error"' in streamed.text
    settle(
        metrics_url(hub),
        before,
        [
            ("hector_llm_requests_total", {**LLM, "status": "error"}, 1),
            ("hector_agent_requests_total", {"agent": "x", "status": "error"}, 1),
        ],
        timeout=1,
    )


def test_retry_is_counted_once_and_the_call_succeeds(hub: Server, upstream: FakeLLM) -> None:
    upstream.script({"status": 429, "retry_after": "0"})
    upstream_calls = len(upstream.requests())
    before = scrape(metrics_url(hub))
    assert send_v03(hub.url + "/agents/r")["status"]["state"] == "completed"
    assert len(upstream.requests()) == upstream_calls + 2
    settle(
        metrics_url(hub),
        before,
        [
            (
                "hector_llm_retries_total",
                {"provider": "openai", "model": "gpt-4o-retry", "reason": "429"},
                1,
            ),
            *llm_calls("r", 1, model="gpt-4o-retry"),
            ("hector_errors_total", {}, 0),
        ],
    )


# --- labels ----------------------------------------------------------------------------


def test_routes_are_patterns_and_methods_are_bounded(hub: Server) -> None:
    before = scrape(metrics_url(hub))
    for name in ("x", "y", "nobody"):
        httpx.get(f"{hub.url}/agents/{name}", timeout=5)
    for name in ("x", "y"):
        send_v03(f"{hub.url}/agents/{name}")
    assert httpx.get(f"{hub.url}/no/such/path", timeout=5).status_code == 404
    assert httpx.request("PROPFIND", f"{hub.url}/health", timeout=5).status_code == 405
    after = settle(
        metrics_url(hub),
        before,
        [
            ("hector_requests_total", {"method": "GET", "route": "/agents/{name}"}, 3),
            ("hector_requests_total", {"route": "/agents/{name}", "code": "404"}, 1),
            ("hector_requests_total", {"method": "POST", "route": "/agents/{name}"}, 2),
            ("hector_requests_total", {"method": "GET", "route": "unmatched", "code": "404"}, 1),
            ("hector_requests_total", {"method": "OTHER", "code": "405"}, 1),
            ("hector_request_duration_seconds_count", {"method": "OTHER"}, 1),
        ],
    )
    routes = after.label_values("route")
    assert {r for r in routes if r.startswith("/agents/")} == {"/agents/{name}"}
    assert all(r == "unmatched" or r.startswith("/") for r in routes)
    assert not {r for r in routes if re.search(r"/(x|y|nobody|no)(/|$)", r)}
    assert after.label_values("method") <= {"GET", "HEAD", "POST", "OTHER"}
    assert not re.search(r'method="PROPFIND"', after.text)


def test_random_paths_and_sessions_add_no_series(hub: Server) -> None:
    """50 requests with distinct paths, request ids and sessions: not one new series."""
    url = metrics_url(hub)
    tokens = [uuid.uuid4().hex for _ in range(51)]

    def message(token: str) -> dict[str, Any]:
        params = v03_message("hello", contextId=token, messageId=token)
        return {"jsonrpc": "2.0", "id": token, "method": "message/send", "params": params}

    with httpx.Client(base_url=hub.url, timeout=10) as client:
        # one of each kind first, so that the series they need exist
        assert client.get(f"/{tokens[50]}").status_code == 404
        assert "result" in client.post("/agents/x", json=message(tokens[50])).json()
        scrape(url)
        before = scrape(url)
        for token in tokens[:25]:
            response = client.get(f"/{token}/{token[:8]}", headers={"X-Request-ID": token})
            assert response.status_code == 404
        for token in tokens[25:50]:
            reply = client.post("/agents/x", json=message(token), headers={"X-Request-ID": token})
            assert reply.json()["result"]["contextId"] == token
    after = settle(
        url,
        before,
        [
            ("hector_requests_total", {"method": "GET", "route": "unmatched", "code": "404"}, 25),
            ("hector_requests_total", {"method": "POST", "route": "/agents/{name}"}, 25),
            ("hector_llm_requests_total", {"agent": "x", "status": "success"}, 25),
        ],
    )
    assert len(after.series()) == len(before.series())
    assert after.series() == before.series()
    assert not any(token in after.text for token in tokens)
    assert "unmatched" in after.label_values("route")


def test_cancel_is_counted_as_canceled_not_error(hub: Server, upstream: FakeLLM) -> None:
    upstream.script({"delay": 3})  # the model call is in flight when we cancel
    before = scrape(metrics_url(hub))
    params = {**v1_params("slow please"), "configuration": {"returnImmediately": True}}
    task = rpc(hub.url + "/agents/x", "SendMessage", params, version=V1)["result"]["task"]
    canceled = rpc(hub.url + "/agents/x", "CancelTask", {"id": task["id"]}, version=V1)
    assert canceled["result"]["status"]["state"] == "TASK_STATE_CANCELED"
    settle(
        metrics_url(hub),
        before,
        [
            ("hector_llm_requests_total", {**LLM, "status": "canceled"}, 1),
            ("hector_llm_requests_total", {**LLM, "status": "error"}, 0),
            ("hector_agent_invocations_total", {"agent": "x", "status": "canceled"}, 1),
            ("hector_agent_invocations_total", {"agent": "x", "status": "error"}, 0),
            ("hector_errors_total", {}, 0),
        ],
    )
    assert scrape(metrics_url(hub)).value("hector_active_agent_runs", agent="x") == 0


# --- formats and lint ----------------------------------------------------------------


def test_promtool_finds_no_problems_after_mixed_traffic(hub: Server, upstream: FakeLLM) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (CI installs Debian's prometheus package)")
    send_v03(hub.url + "/agents/x")
    stream_v1(hub.url + "/agents/x")
    chat(hub.url, stream=False)
    chat(hub.url, stream=True)
    upstream.script(
        *[
            {"tool_calls": [["calculator", {"expression": "6*7"}]]},
            {},
            {"status": 500},
            {"status": 429, "retry_after": "0"},
        ],
    )
    send_v03(hub.url + "/agents/y")  # a tool call
    send_v03(hub.url + "/agents/x")  # an upstream error
    send_v03(hub.url + "/agents/r")  # a retry
    httpx.get(hub.url + "/not-here", timeout=5)
    text = httpx.get(metrics_url(hub), timeout=5).text
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), (
        lint.stdout + lint.stderr
    )
    scraped = Scrape.parse(text)
    assert {n: scraped.families.get(n) for n in FAMILIES} == FAMILIES
    # cost is declared (HELP/TYPE) but has no samples without llms.*.pricing
    assert not scraped.matching("hector_llm_cost_usd_total")


def test_workers_scrape_is_valid_and_has_no_process_metrics(serve: Any) -> None:
    """--workers 2: the aggregated (multiprocess) scrape lints clean too."""
    server: Server = serve("--workers", "2", "--metrics", env=clean_env(**SHARED_STORE))
    for _ in range(3):
        send_v03(server.url + "/")
    httpx.get(server.url + "/not-here", timeout=5)
    text = httpx.get(server.url + "/metrics", timeout=5).text
    metrics = Scrape.parse(text)
    assert metrics.value("hector_llm_requests_total", status="success") == 3
    assert metrics.families["hector_build_info"] == "gauge"
    assert not {n for n in metrics.families if n.startswith(("process_", "python_"))}
    om = scrape(server.url + "/metrics", accept=OPENMETRICS)
    assert om.text.endswith("# EOF\n")
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (CI installs Debian's prometheus package)")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), (
        lint.stdout + lint.stderr
    )


def test_openmetrics_is_negotiated(hub: Server) -> None:
    send_v03(hub.url + "/agents/x")
    plain = httpx.get(metrics_url(hub), timeout=5)
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in plain.text
    om = httpx.get(metrics_url(hub), headers={"Accept": OPENMETRICS}, timeout=5)
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    parsed = Scrape.parse(om.text, openmetrics=True)  # raises if not valid OpenMetrics
    assert parsed.families["hector_requests_total"] == "counter"
    assert parsed.value("hector_llm_requests_total", agent="x") >= 1
    # without tracing there are no exemplars
    assert not any(s.exemplar for _, s in parsed.samples)


def test_build_info_and_process_metrics(hub: Server) -> None:
    metrics = scrape(metrics_url(hub))
    [info] = metrics.matching("hector_build_info")
    assert info.labels == {"version": __version__, "python": platform.python_version()}
    assert info.value == 1
    # prometheus_client's process and platform collectors keep their standard names
    assert metrics.value("process_resident_memory_bytes") > 0
    assert metrics.value("process_start_time_seconds") > 0
    assert metrics.matching("process_cpu_seconds_total")
    assert metrics.matching("process_open_fds")
    assert metrics.matching("python_info", implementation=platform.python_implementation())


def test_readme_lists_every_metric_and_its_promql_parses(hub: Server, tmp_path: Path) -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {name for line in table for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])}
    metrics = scrape(metrics_url(hub))
    # the table documents exactly the metrics a scrape declares, the contract's among them
    assert {n for n in listed if n.startswith("hector_")} == {
        n for n in metrics.families if n.startswith("hector_")
    }
    assert set(FAMILIES) <= listed
    assert {n for n in listed if not n.startswith("hector_")} <= set(metrics.families)
    for line in table:  # the labels column names each metric's labels, in order
        name = re.findall(r"`([a-z_]+)`", line.split("|")[1])[0]
        if name in FAMILIES:
            documented = re.findall(r"`([a-z_]+)`", line.split("|")[3])
            exposed = {
                label
                for sample in metrics.matching(name.removesuffix("_total") + "_total")
                + metrics.matching(name + "_count")
                + metrics.matching(name)
                for label in sample.labels
            }
            assert exposed <= set(documented), (name, exposed, documented)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (CI installs Debian's prometheus package)")
    block = section.split("```promql\n", 1)[1].split("```", 1)[0]
    queries = [q for q in block.splitlines() if q.strip() and not q.startswith("#")]
    assert len(queries) >= 4
    rules = tmp_path / "readme_rules.yml"
    rules.write_text(
        json.dumps(
            {
                "groups": [
                    {
                        "name": "readme",
                        "rules": [
                            {"record": f"readme:q{i}", "expr": q} for i, q in enumerate(queries)
                        ],
                    }
                ]
            }
        )
    )
    check = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr


# --- configuration -------------------------------------------------------------------


def test_namespace_subsystem_const_labels_and_endpoint(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "named.yaml"
    config.write_text(
        "llms:\n  default: {provider: demo, stream_delay: 0}\n"
        "observability:\n  metrics:\n    enabled: true\n    namespace: mycompany\n"
        "    subsystem: agents\n    endpoint: /custom-metrics\n"
        "    const_labels: {environment: production, region: us-east-1}\n"
    )
    server: Server = serve("-c", str(config))
    send_v03(server.url + "/")
    assert httpx.get(server.url + "/metrics", timeout=5).status_code == 404
    metrics = scrape(server.url + "/custom-metrics")
    labels = {"agent": "assistant", "provider": "demo", "model": "demo", "status": "success"}
    const = {"environment": "production", "region": "us-east-1"}
    assert metrics.value("mycompany_agents_llm_requests_total", **labels, **const) == 1
    assert 'mycompany_agents_llm_requests_total{agent="assistant"' in metrics.text
    assert metrics.matching("mycompany_agents_llm_tokens_total", type="prompt", **const)
    # the OTel GenAI client metrics keep their standard names under any namespace
    standard = ("process_", "python_", "gen_ai_client_")
    names = {n for n in metrics.families if not n.startswith(standard)}
    assert names >= {"mycompany_agents_" + n.removeprefix("hector_") for n in FAMILIES}
    assert all(n.startswith("mycompany_agents_") for n in names)
    # const_labels reach every series, process metrics included
    assert all(s.labels.items() >= const.items() for _, s in metrics.samples)
    assert metrics.value("process_resident_memory_bytes", **const) > 0


def test_const_labels_that_would_break_the_scrape_are_config_errors(tmp_path: Path) -> None:
    """``le`` makes the whole text format unparseable, ``__*`` is reserved, a metric's own
    label would silently drop the constant from those series, and ``a-b`` is no name."""
    config = tmp_path / "bad-labels.yaml"
    config.write_text(
        "observability:\n  metrics:\n    enabled: true\n"
        '    const_labels: {le: "1", __meta: x, model: y, a-b: z, environment: ok}\n'
    )
    result = hector("serve", "--host", "127.0.0.1", "--port", "0", "-c", str(config))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    problems = {
        line.removeprefix("error: ").split(":")[0]
        for line in result.stderr.splitlines()
        if "const_labels" in line
    }
    assert problems == {
        f"observability.metrics.const_labels.{name}" for name in ("le", "__meta", "model", "a-b")
    }


def test_metrics_are_off_by_default_and_on_with_the_flag(serve: Any, serve_once: Server) -> None:
    assert httpx.get(serve_once.url + "/metrics", timeout=5).status_code == 404
    server: Server = serve("--metrics")
    send_v03(server.url + "/")
    metrics = scrape(server.url + "/metrics")
    assert metrics.value("hector_agent_invocations_total", status="success") == 1
    assert metrics.matching("hector_build_info")


def test_observe_alone_serves_metrics_with_trace_exemplars(serve: Any) -> None:
    """--observe: metrics plus OTLP to localhost:4317 (nothing listens there in tests)."""
    server: Server = serve("--observe")
    for _ in range(2):
        assert send_v03(server.url + "/")["status"]["state"] == "completed"
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    metrics = scrape(server.url + "/metrics", accept=OPENMETRICS)
    assert metrics.value("hector_llm_requests_total", status="success") == 2
    exemplars = {
        s.name: s.exemplar.labels["trace_id"]
        for _, s in metrics.samples
        if s.name.endswith("_bucket") and s.exemplar is not None
    }
    assert {
        "hector_request_duration_seconds_bucket",
        "hector_agent_request_duration_seconds_bucket",
        "hector_llm_request_duration_seconds_bucket",
    } <= set(exemplars)
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in exemplars.values())
    # probes and scrapes are not traced, so they carry no exemplar
    assert not [
        s
        for s in metrics.matching("hector_request_duration_seconds_bucket")
        if s.labels["route"] in ("/health", "/metrics") and s.exemplar
    ]
    # Its spans would now take the bounded 5 s flush to the dead collector on SIGTERM
    # (test_tracing covers that); kill it instead.
    server.proc.kill()
    server.proc.wait(5)


def test_metrics_port_and_tokens_of_unsampled_traces(
    serve: Any, upstream: FakeLLM, tmp_path: Path
) -> None:
    """``observability.metrics.port`` is a listener of its own; with tracing on but
    nothing sampled, tokens still count (and no exemplar points at a missing trace)."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config = tmp_path / "port.yaml"
    config.write_text(
        f'llms:\n  default: {{provider: openai, model: {MODEL}, base_url: "{upstream.base_url}"}}\n'
        "agents:\n  x: {}\n"
        "observability:\n  metrics: {enabled: true, port: 0}\n"
        f"  tracing: {{enabled: true, endpoint: '127.0.0.1:{closed}', sampling_rate: 0}}\n"
    )
    server: Server = serve("-c", str(config), "--log-format", "json")
    banner = next(json.loads(line) for line in server.log_lines() if "listening on" in line)
    url = banner["metrics"]
    assert url.endswith("/metrics") and not url.startswith(server.url + "/")
    assert httpx.get(server.url + "/metrics", timeout=5).status_code == 404
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    for _ in range(3):
        send_v03(server.url + "/")
    metrics = scrape(url, accept=OPENMETRICS)
    assert metrics.value("hector_requests_total", route="/health", code="200") == 1
    # the main port's 404 for /metrics is an ordinary unmatched request there
    assert metrics.value("hector_requests_total", route="unmatched", code="404") == 1
    assert metrics.value("hector_llm_tokens_total", **LLM, type="prompt") == 3 * P
    assert metrics.value("hector_llm_tokens_total", **LLM, type="completion") == 3 * C
    assert metrics.value("hector_llm_request_duration_seconds_count", **LLM) == 3
    assert not any(s.exemplar for _, s in metrics.samples)  # nothing sampled
    # scrapes on the metrics listener are not HTTP traffic of the service
    assert not scrape(url).matching("hector_requests_total", route="/metrics")
