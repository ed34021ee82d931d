"""Spans are encoded and sent by a child process of the server (``tracing.export_process``):
the OTLP receiver gets the same spans; a child that is killed is started again (and
said so in the log) without losing the next batches; the child ends with the server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import configured_server
from tests.fakes.trace_receivers import OTLPHttpReceiver

CONFIG = """\
observability:
  tracing:
    enabled: true
    protocol: http
    endpoint: "127.0.0.1:{port}"
    export_process: {in_child}
"""
ROOT = "POST /v1/chat/completions"


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                found.append(int(entry.name))
    return found


def export_children(pid: int) -> list[int]:
    """``pid``'s children running the export process."""
    return [
        child
        for child in children(pid)
        if b"export_process" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def gone(pid: int) -> bool:
    """Whether ``pid`` exits (or is a zombie) within 5 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def chat(url: str, text: str) -> None:
    body = {"model": "assistant", "messages": [{"role": "user", "content": text}]}
    assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=15).is_success


def test_spans_leave_through_a_child_that_comes_back_when_killed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with OTLPHttpReceiver() as receiver:
        config = CONFIG.format(port=receiver.port, in_child="true")
        with configured_server(tmp_path_factory, "export-child", config) as server:
            (child,) = export_children(server.proc.pid)
            chat(server.url, "one")
            spans = receiver.wait_for(lambda got: any(s.name == ROOT for s in got))
            names = {s.name for s in spans}
            assert "invoke_agent assistant" in names and any(n.startswith("chat ") for n in names)
            time.sleep(1.0)  # the child has answered for that batch: it is idle when killed
            os.kill(child, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while child in children(server.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            chat(server.url, "two")
            receiver.wait_for(lambda got: sum(s.name == ROOT for s in got) == 2, timeout=10)
            (again,) = export_children(server.proc.pid)
            assert again != child
            lines = server.log_lines()
            exported = [line for line in lines if "export" in line]
            assert any("trace export process exited (-9); starting" in x for x in exported)
            assert not any("is failing" in line for line in exported), exported  # none lost
            health = httpx.get(f"{server.url}/health").json()
            assert health["components"]["tracing"]["status"] == "ok", health
        assert gone(again)  # ended with the server


def test_export_process_false_exports_in_the_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with OTLPHttpReceiver() as receiver:
        config = CONFIG.format(port=receiver.port, in_child="false")
        with configured_server(tmp_path_factory, "export-thread", config) as server:
            chat(server.url, "one")
            receiver.wait_for(lambda got: any(s.name == ROOT for s in got))
            assert export_children(server.proc.pid) == []
