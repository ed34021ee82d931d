"""Shared fixtures: run the real ``hector`` CLI and server as subprocesses."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest_plugins = ["tests.postgres_server"]  # the session's real PostgreSQL (``postgres``)

START_TIMEOUT_S = 20.0
# --workers N needs a store the workers share (the memory store is a config error there);
# sqlite's default file lands in the server's working directory, the test's tmp_path.
SHARED_STORE = {"HECTOR_STORAGE__TYPE": "sqlite"}
_LISTENING = re.compile(r"listening on (http://[^\s\"]+)")
# Provider keys in the developer's env would change zero-config behaviour.
_SCRUBBED = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


def clean_env(**extra: str) -> dict[str, str]:
    """The test process env without provider keys or HECTOR_* settings, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith("HECTOR_")
    }
    env.update(extra)
    return env


def hector(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the ``hector`` CLI to completion."""
    return subprocess.run(
        [sys.executable, "-m", "hector_py", *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    """A running ``hector serve`` process and where it listens."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    stopped: bool = field(default=False)

    def log_lines(self) -> list[str]:
        """Every line the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8").splitlines()

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait; returns the exit code."""
        if not self.stopped:
            self.stopped = True
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start_server(
    workdir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    log_file: Path | None = None,
    module: str = "hector_py",
) -> Server:
    """Start ``hector serve --host 127.0.0.1 --port 0 ARGS`` (``python -m module``) and
    wait for its banner (on stdout/stderr, or in ``log_file`` when the server logs to a
    file)."""
    log_path = workdir / f"serve-{time.monotonic_ns()}.log"
    with log_path.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *args,
            ],
            cwd=workdir,
            env=env or clean_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        banner_source = log_file if log_file and log_file.exists() else log_path
        match = _LISTENING.search(banner_source.read_text(encoding="utf-8"))
        if match:
            server.url = match.group(1)
            return server
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log_path.read_text()}")
        time.sleep(0.05)
    server.stop()
    raise AssertionError(f"server did not start: {log_path.read_text()}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    """Factory fixture: ``serve(*args, env=...)`` starts a server, stopped after the test."""
    servers: list[Server] = []

    def factory(
        *args: str,
        env: dict[str, str] | None = None,
        log_file: Path | None = None,
        module: str = "hector_py",
    ) -> Server:
        server = start_server(tmp_path, *args, env=env, log_file=log_file, module=module)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def serve_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One zero-config server shared by a module's read-only tests."""
    server = start_server(tmp_path_factory.mktemp("serve"))
    yield server
    server.stop()


def rpc(
    url: str,
    method: str,
    params: Any = None,
    *,
    version: str | None = None,
    raw: bytes | None = None,
    request_id: Any = 1,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST one JSON-RPC request; JSON-RPC errors must still be HTTP 200."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    if version:
        headers["A2A-Version"] = version
    body = (
        raw
        if raw is not None
        else json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        ).encode()
    )
    response = httpx.post(url, content=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert "Traceback" not in response.text
    return response.json()  # type: ignore[no-any-return]


def v03_message(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "message": {
            "kind": "message",
            "messageId": "m-1",
            "role": "user",
            "parts": [{"kind": "text", "text": text}],
            **extra,
        }
    }


FAKE_START_S = 15.0


@dataclass
class FakeLLM:
    """A standalone fake upstream (tests/fakes/llm_servers.py) in a subprocess."""

    provider: str
    proc: subprocess.Popen[str]
    base_url: str

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT`` without the provider's path."""
        return self.base_url.removesuffix("/v1")

    def requests(self) -> list[dict[str, Any]]:
        """Every request received so far (headers, JSON body, how its answer went)."""
        response = httpx.get(f"{self.origin}/_fake/requests", timeout=5)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def script(self, *replies: dict[str, Any]) -> int:
        """Make ``replies`` the next answers (dropping any left over); returns how many
        requests the fake has seen so far, to slice the new ones off ``requests()``."""
        response = httpx.post(f"{self.origin}/_fake/script", json=list(replies), timeout=5)
        response.raise_for_status()
        return len(self.requests())

    def stop(self) -> None:
        """Terminate the process."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_fake_llm(provider: str, *flags: str) -> FakeLLM:
    """``python -m tests.fakes.llm_servers --provider P --port 0 FLAGS``; waits (with a
    deadline) for the base URL it prints as its first stdout line."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.llm_servers",
            "--provider",
            provider,
            "--port",
            "0",
            *flags,
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    stdout = proc.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=FAKE_START_S).strip()
    except queue.Empty:
        line = ""
    if not line.startswith("http://127.0.0.1:"):
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"fake {provider} upstream did not start: {line!r}")
    return FakeLLM(provider, proc, line)


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeLLM]:
    """A fake OpenAI upstream shared by a module's tests."""
    fake = start_fake_llm("openai")
    yield fake
    fake.stop()


@contextmanager
def configured_server(factory: pytest.TempPathFactory, name: str, config: str) -> Iterator[Server]:
    """``hector serve -c`` on ``config`` (YAML text) in a fresh directory, the test tree
    importable (for custom providers), stopped at the end."""
    workdir = factory.mktemp(name)
    path = workdir / "hector.yaml"
    path.write_text(config)
    repo = str(Path(__file__).resolve().parent.parent)
    server = start_server(workdir, "-c", str(path), env=clean_env(PYTHONPATH=repo))
    try:
        yield server
    finally:
        server.stop()
