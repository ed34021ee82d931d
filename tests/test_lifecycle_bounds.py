"""Bounded start-up and shutdown: a server that cannot start exits non-zero (never
hangs), alone or under ``--workers``; a drain ends every kind of run in time."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, hector, v03_message
from tests.reliability_helpers import metric, scrape, wait_until


def not_a_database(tmp_path: Path) -> Path:
    (tmp_path / "bad.db").write_bytes(b"this is not an sqlite file " * 200)
    config = tmp_path / "bad.yaml"
    config.write_text("storage:\n  type: sqlite\n  path: bad.db\n")
    return config


def test_store_that_cannot_open_exits_1_with_one_line(tmp_path: Path) -> None:
    config = not_a_database(tmp_path)
    result = hector("serve", "-c", str(config), "--host", "127.0.0.1", "--port", "0", cwd=tmp_path)
    assert result.returncode == 1  # before: a traceback, then a process that never exited
    output = result.stdout + result.stderr
    assert "start-up failed: DatabaseError: file is not a database" in output
    assert "Traceback" not in output


def test_workers_with_a_store_that_cannot_open_exit_1_with_one_line(tmp_path: Path) -> None:
    """The supervisor opens (and migrates) the store once before forking, so a store the
    workers could not open ends ``--workers`` at once, not after N crashing workers."""
    config = not_a_database(tmp_path)
    args = ("serve", "-c", str(config), "--host", "127.0.0.1", "--port", "0", "--workers", "2")
    result = hector(*args, cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "start-up failed: DatabaseError: file is not a database" in output
    assert "Traceback" not in output and "starting another" not in output


@pytest.fixture
def dead_jwks() -> Iterator[str]:
    """A JWKS URL that accepts connections and never answers (start-up waits for it)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/jwks.json"
    listener.close()


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_sigterm_ends_a_worker_still_starting(serve: Any, tmp_path: Path, dead_jwks: str) -> None:
    """A worker is forked with the supervisor's SIGTERM handler; before the fix it ignored
    SIGTERM until it served (and so was never replaced)."""
    config = tmp_path / "slow-start.yaml"
    config.write_text(
        f"server:\n  auth:\n    jwt:\n      jwks_url: {dead_jwks}\n"
        f"storage:\n  type: sqlite\n  path: {tmp_path / 'workers.db'}\n"
    )
    server: Server = serve("-c", str(config), "--workers", "2")
    wait_until(lambda: len(children(server.proc.pid)) == 2, 10, "two workers")
    victim = children(server.proc.pid)[0]
    os.kill(victim, signal.SIGTERM)  # while it waits for the JWKS
    wait_until(lambda: not alive(victim), 30, "the worker to end")
    replaced = "exited with -15; starting another"
    wait_until(lambda: replaced in "\n".join(server.log_lines()), 10, "a replacement")


def test_shutdown_drains_v1_runs_with_a2a_tasks(serve: Any, tmp_path: Path) -> None:
    """A ``/v1`` run is drained like an A2A task: both get ``shutdown_timeout``, then
    stop (before, ``/v1`` requests got another ``shutdown_timeout`` after the tasks)."""
    config = tmp_path / "slow.yaml"
    config.write_text(
        "server:\n  shutdown_timeout: 1\n"
        "llms:\n  default:\n    provider: demo\n    stream_delay: 0.5\n"
        "observability:\n  metrics: {enabled: true}\n"
    )
    server: Server = serve("-c", str(config))
    long_text = " ".join(["word"] * 200)  # the demo echoes it word by word: 100 s

    def chat() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                server.url + "/v1/chat/completions",
                json={"model": "assistant", "messages": [{"role": "user", "content": long_text}]},
                timeout=60,
            )

    def send() -> None:
        params = v03_message(long_text)
        body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": params}
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(server.url + "/", json=body, timeout=60)

    clients = [threading.Thread(target=work, daemon=True) for work in (chat, send)]
    for client in clients:
        client.start()
    wait_until(lambda: metric(scrape(server), "hector_active_agent_runs") == 2, 20, "two runs")
    assert server.stop(timeout=30) == 0
    lines = server.log_lines()
    assert any("2 run(s) did not finish within 1.0 s of shutdown" in line for line in lines)
    for client in clients:
        client.join(10)
