"""``hector top`` against a real loaded server: one view (``--once``) with non-zero rates,
latency and tokens by model, and the live view driven in tmux; a dead URL is one line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hector_py.observability.top_stats import quantile
from tests.conftest import Server, clean_env, hector

KEY = "top-key-0123456789"
CONFIG = f"""\
llms: {{default: {{provider: demo, stream_delay: 0}}}}
server:
  auth:
    api_keys: [{{key: {KEY}, tenant: ops}}]
observability:
  metrics: {{enabled: true}}
  console: {{enabled: true}}
"""


class Load:
    """Requests to the server from a thread until stopped."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        body = {"model": "assistant", "messages": [{"role": "user", "content": "hello there"}]}
        with httpx.Client(headers={"X-API-Key": KEY}, timeout=10) as client:
            while not self.stop.is_set():
                client.post(f"{self.server.url}/v1/chat/completions", json=body)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(15)


def test_top_once_shows_the_load(serve: Any, tmp_path: Path) -> None:
    (tmp_path / "hector.yaml").write_text(CONFIG)
    server: Server = serve("-c", str(tmp_path / "hector.yaml"))
    with Load(server):
        time.sleep(0.5)
        shown = hector("top", "--url", server.url, "--api-key", KEY, "--once", "--interval", "1")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    rate = float(re.search(r"req/s (\d+\.\d)", text).group(1))  # type: ignore[union-attr]
    assert rate > 0, text
    assert re.search(r"assistant\s+│\s+\d+ ms\s+│\s+\d+ ms", text), text  # p50, p95
    assert re.search(r"demo/demo\s+│\s+[1-9][\d.]*\s+│", text), text  # tokens/s
    assert "runs in flight" in text

    dead = hector("top", "--url", "http://127.0.0.1:9", "--once")
    assert dead.returncode == 1
    assert dead.stderr.strip().startswith("error: cannot reach http://127.0.0.1:9/metrics")


def test_top_live_in_tmux(serve: Any, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    (tmp_path / "hector.yaml").write_text(CONFIG)
    server: Server = serve("-c", str(tmp_path / "hector.yaml"))
    session = f"hector-top-{time.monotonic_ns()}"
    command = f"{sys.executable} -m hector_py top --url {server.url} --api-key {KEY} --interval 0.5"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", command],
        check=True,
        env=clean_env(),
    )
    try:
        with Load(server):
            deadline = time.monotonic() + 20
            screen = ""
            while time.monotonic() < deadline:
                time.sleep(0.5)
                screen = subprocess.run(
                    ["tmux", "capture-pane", "-p", "-t", session],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                found = re.search(r"req/s (\d+\.\d)", screen)
                if found and float(found.group(1)) > 0:
                    break
        assert found and float(found.group(1)) > 0, screen
        assert "latency by agent" in screen and "assistant" in screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def test_quantiles_from_cumulative_buckets() -> None:
    buckets = [(0.1, 10.0), (0.5, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (40 / 80))
    assert quantile(0.95, buckets) == pytest.approx(0.5 + 0.5 * 0.5)
    assert quantile(0.5, [(float("inf"), 0.0)]) != quantile(0.5, [(float("inf"), 0.0)])  # nan


def test_top_against_workers(serve: Any, tmp_path: Path) -> None:
    """--workers 2: the merged metrics give the whole server's rate."""
    config = tmp_path / "workers.yaml"
    config.write_text(CONFIG + f"storage: {{type: sqlite, path: '{tmp_path / 'hector.db'}'}}\n")
    server: Server = serve("-c", str(config), "--workers", "2")
    with Load(server):
        time.sleep(0.5)
        shown = hector("top", "--url", server.url, "--api-key", KEY, "--once", "--interval", "1")
    assert shown.returncode == 0, shown.stderr
    rate = float(re.search(r"req/s (\d+\.\d)", shown.stdout).group(1))  # type: ignore[union-attr]
    assert rate > 0, shown.stdout
