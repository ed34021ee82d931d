"""The run console (``/console``) through a real server and a real headless Chromium: the
page lists a run while it is in flight (agent, step, tokens so far) and opens a kept trace
as a waterfall of its spans with their log lines; the JSON APIs behind it; auth like the
API; off unless enabled."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server

CONFIG = """\
llms: {default: {provider: demo, stream_delay: 0.2}}
observability:
  metrics: {enabled: true}
  console: {enabled: true, max_traces: 5}
  tracing: {enabled: true, protocol: http, endpoint: "127.0.0.1:9"}
"""
WORDS = " ".join(f"word{i}" for i in range(30))  # 30 words at 0.2 s: a run of 6 s


def chat(server: Server, text: str, key: str | None = None) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    body = {"model": "assistant", "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def render(url: str, screenshot: Path | None = None) -> str:
    """The DOM of ``url`` once its scripts ran (headless Chromium), or with ``screenshot``
    a PNG of it there."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    done = subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=3000",
            "--window-size=1280,760",
            f"--screenshot={screenshot}" if screenshot else "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_console_shows_runs_in_flight_and_kept_traces(serve: Any, tmp_path: Path) -> None:
    (tmp_path / "hector.yaml").write_text(CONFIG)
    server: Server = serve("-c", str(tmp_path / "hector.yaml"))
    assert chat(server, "hello").status_code == 200
    slow = threading.Thread(target=chat, args=(server, WORDS))
    slow.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = httpx.get(f"{server.url}/console/api/runs", timeout=5).json()
            if data["runs"] and data["runs"][0]["completion_tokens"] == 0:
                break
            time.sleep(0.05)
        (run,) = data["runs"]
        assert run["agent"] == "assistant" and run["step"] == "model call 1"
        assert run["tenant"] == "anonymous" and run["trace_id"]
        (first,) = [t for t in data["traces"] if t["root"] == "POST /v1/chat/completions"]
        assert data["counters"]["runs"] >= 1 and data["tracing"] is True

        trace = httpx.get(f"{server.url}/console/api/traces/{first['trace_id']}", timeout=5).json()
        names = {span["name"] for span in trace["spans"]}
        assert {"POST /v1/chat/completions", "invoke_agent assistant", "chat demo"} <= names
        (access,) = [line for line in trace["logs"] if line["logger"] == "hector.access"]
        assert access["trace_id"] == first["trace_id"] and access["status"] == 200
        dom = render(f"{server.url}/console#trace={first['trace_id']}")
        assert '<tr class="run"><td>assistant</td>' in dom  # the run in flight, rendered
        assert "model call 1" in dom
        for name in ("POST /v1/chat/completions", "invoke_agent assistant", "chat demo"):
            assert f">{name}</div>" in dom  # a waterfall row per span
        assert "request completed" in dom  # the trace's log lines
        shot = tmp_path / "console.png"  # the test's artifact
        render(f"{server.url}/console#trace={first['trace_id']}", shot)
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    finally:
        slow.join(30)
    after = httpx.get(f"{server.url}/console/api/runs", timeout=5).json()
    assert after["runs"] == []  # the run ended: off the board
    assert httpx.get(f"{server.url}/console/api/traces/{'0' * 32}", timeout=5).status_code == 404
    # the console's own requests are not traced (they would drown the runs)
    assert not any(t["root"].startswith("GET /console") for t in after["traces"])
    assert len(after["traces"]) <= 5  # max_traces


def test_the_console_needs_the_api_key_and_is_off_by_default(serve: Any, tmp_path: Path) -> None:
    (tmp_path / "secure.yaml").write_text(
        CONFIG + "server:\n  auth:\n    api_keys: [{key: console-key-123456, tenant: ops}]\n"
    )
    secure: Server = serve("-c", str(tmp_path / "secure.yaml"))
    for path in ("/console", "/console/api/runs", "/console/app.js"):
        assert httpx.get(secure.url + path, timeout=5).status_code == 401, path
    page = httpx.get(secure.url + "/console", headers={"X-API-Key": "console-key-123456"})
    assert (
        page.status_code == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]
    )
    assert '<script src="/console/app.js"></script>' in page.text  # no CDN, no inline script

    plain: Server = serve()
    assert httpx.get(plain.url + "/console", timeout=5).status_code == 404


def test_a_trace_over_max_trace_kb_is_cut(serve: Any, tmp_path: Path) -> None:
    """Captured payloads past ``max_trace_kb`` (4): the trace is held with the spans that fit
    and says it is ``cut``; a small one is whole."""
    config = CONFIG.replace("max_traces: 5}", "max_traces: 5, max_trace_kb: 4}").replace(
        '"127.0.0.1:9"}', '"127.0.0.1:9", capture_payloads: true}'
    )
    (tmp_path / "hector.yaml").write_text(config.replace("stream_delay: 0.2", "stream_delay: 0"))
    server: Server = serve("-c", str(tmp_path / "hector.yaml"))
    assert chat(server, "hi").is_success
    assert chat(server, "long " * 1200).is_success  # 6 KB in, echoed back: over 4 KB
    traces = httpx.get(f"{server.url}/console/api/runs", timeout=5).json()["traces"]
    long, short = traces[0], traces[1]  # newest first
    assert (short["cut"], long["cut"]) == (False, True), traces
    whole = httpx.get(f"{server.url}/console/api/traces/{short['trace_id']}", timeout=5).json()
    assert len(whole["spans"]) == short["spans"] >= 3
    part = httpx.get(f"{server.url}/console/api/traces/{long['trace_id']}", timeout=5).json()
    assert len(part["spans"]) == long["spans"] < short["spans"]


def test_under_the_flight_recorder_only_kept_traces_have_log_lines(
    serve: Any, tmp_path: Path
) -> None:
    """With the recorder (sampling 0, no ordinary traces kept) a flagged request's trace is
    shown with its log lines, which waited with its spans; an ordinary one is dropped."""
    config = CONFIG.replace("stream_delay: 0.2", "stream_delay: 0").replace(
        '"127.0.0.1:9"}',
        '"127.0.0.1:9", sampling_rate: 0.0, keep: {enabled: true, ordinary_per_second: 0}}',
    )
    (tmp_path / "hector.yaml").write_text(config)
    server: Server = serve("-c", str(tmp_path / "hector.yaml"))
    ordinary = chat(server, "ordinary")
    body = {"model": "assistant", "messages": [{"role": "user", "content": "flagged"}]}
    flagged = httpx.post(
        f"{server.url}/v1/chat/completions", json=body, headers={"X-Hector-Trace": "keep"}
    )
    assert ordinary.is_success and flagged.is_success
    (kept,) = httpx.get(f"{server.url}/console/api/runs", timeout=5).json()["traces"]
    assert kept["kept"] == "flagged"
    trace = httpx.get(f"{server.url}/console/api/traces/{kept['trace_id']}", timeout=5).json()
    (access,) = [line for line in trace["logs"] if line["logger"] == "hector.access"]
    assert access["trace_id"] == kept["trace_id"] and access["status"] == 200
