"""Spans are encoded and sent by a child process of the server (``tracing.export_process``):
the OTLP receiver gets the same spans; a child that is killed is started again (and
said so in the log) without losing the next batches; one that cannot start says why and
is not restarted in a loop; the child ends with the server."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState

from hector_py.config.observability import TracingConfig
from hector_py.observability.export_process import ExportProcessError, ProcessExporter
from hector_py.observability.exporters import resolve_target
from hector_py.observability.light import LightTracer
from hector_py.observability.tracing import build_tracing
from tests.conftest import Server, configured_server
from tests.fakes.trace_receivers import OTLPHttpReceiver

CONFIG = """\
observability:
  tracing:
    enabled: true
    protocol: http
    endpoint: "127.0.0.1:{port}"
    sampling_rate: {rate}
    export_process: {in_child}
"""
ROOT = "POST /v1/chat/completions"


def alive_parent(pid: int | str) -> int | None:
    """The parent of ``pid`` while it runs; ``None`` once it is gone or a zombie."""
    try:
        state, parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except (OSError, ValueError):
        return None
    return None if state == "Z" else int(parent)


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    entries = (e.name for e in Path("/proc").iterdir() if e.name.isdigit())
    return [int(name) for name in entries if alive_parent(name) == pid]


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
    while alive_parent(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def chat(url: str, text: str) -> None:
    """One request in a sampled caller's trace (kept at any sampling rate)."""
    body = {"model": "assistant", "messages": [{"role": "user", "content": text}]}
    caller = {"traceparent": f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers=caller, timeout=15)
    assert answer.is_success


@contextmanager
def traced_server(
    factory: pytest.TempPathFactory, in_child: str, rate: float = 1.0
) -> Iterator[tuple[Server, OTLPHttpReceiver]]:
    """A server tracing to a live receiver, its first request's spans received."""
    with OTLPHttpReceiver() as receiver:
        config = CONFIG.format(port=receiver.port, in_child=in_child, rate=rate)
        with configured_server(factory, "export", config) as server:
            chat(server.url, "one")
            receiver.wait_for(lambda got: any(s.name == ROOT for s in got))
            yield server, receiver


def test_spans_leave_through_a_child_that_comes_back_when_killed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with traced_server(tmp_path_factory, "true") as (server, receiver):
        (child,) = export_children(server.proc.pid)
        names = {s.name for s in receiver.spans}
        assert "invoke_agent assistant" in names and any(n.startswith("chat ") for n in names)
        time.sleep(1.0)  # the child has answered for that batch: it is idle when killed
        os.kill(child, signal.SIGKILL)
        assert gone(child)
        chat(server.url, "two")
        receiver.wait_for(lambda got: sum(s.name == ROOT for s in got) == 2, timeout=10)
        (again,) = export_children(server.proc.pid)
        assert again != child
        exported = [line for line in server.log_lines() if "export" in line]
        assert any("export process exited (-9); starting it again" in x for x in exported)
        assert not any("is failing" in line for line in exported), exported  # none lost
        health = httpx.get(f"{server.url}/health").json()
        assert health["components"]["tracing"]["status"] == "ok", health
    assert gone(again)  # ended with the server


@pytest.mark.parametrize(
    ("in_child", "rate", "children"),
    [("false", 1.0, 0), ("null", 1.0, 1), ("null", 0.2, 0)],
)
def test_where_spans_leave_from(
    tmp_path_factory: pytest.TempPathFactory, in_child: str, rate: float, children: int
) -> None:
    """``export_process`` says; unset, a child from ``sampling_rate`` 0.5 on."""
    with traced_server(tmp_path_factory, in_child, rate) as (server, _):
        assert len(export_children(server.proc.pid)) == children


def test_a_child_that_cannot_start_is_reported_and_not_restarted_in_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export process that dies before answering (here: a stand-in for a Python that
    cannot import the exporter) fails the batch with its exit code and last stderr line,
    and is not started again for every batch."""
    starts = tmp_path / "starts"
    broken = tmp_path / "python"
    broken.write_text(
        f"#!/bin/sh\necho started >> {starts}\n"
        "echo 'ModuleNotFoundError: No module named grpc' >&2\nexit 3\n"
    )
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    config = TracingConfig(enabled=True, protocol="http", endpoint="127.0.0.1:9")
    exporter = ProcessExporter(resolve_target(config, {}), config, {})
    span = ReadableSpan(
        name="s", context=SpanContext(1, 2, False, TraceFlags(1)), start_time=1, end_time=2
    )
    try:
        for _ in range(3):
            with pytest.raises(ExportProcessError) as failed:
                exporter.export([span])
            assert str(failed.value) == (
                "the export process exited (3): ModuleNotFoundError: No module named grpc"
            )
    finally:
        exporter.shutdown()
    assert starts.read_text().count("started") == 1  # paused, not a crash loop


def test_kept_light_spans_leave_the_child_as_the_sdk_sees_them() -> None:
    """The flight recorder's kept spans, sent as values to the export process, reach the
    receiver as the SDK's own spans show them in process: ids, parents (a remote caller's,
    with a trace state), kinds, attributes (the root's ``hector.trace.kept`` only on
    the root), events, links, status, times, resource and scope."""
    memory = InMemorySpanExporter()
    with OTLPHttpReceiver() as receiver:
        config = TracingConfig.model_validate(
            {
                "enabled": True,
                "protocol": "http",
                "endpoint": f"127.0.0.1:{receiver.port}",
                "export_process": True,
                "keep": {"enabled": True},
            }
        )
        tracing = build_tracing(config, {})
        keeper = tracing.keeper
        assert keeper is not None
        both = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        both.add_span_processor(keeper.inner)
        both.add_span_processor(SimpleSpanProcessor(memory))
        keeper.inner = both
        tracer = LightTracer(keeper)
        state = TraceState([("vendor", "value")])
        caller = SpanContext(0xABC, 0xDEF, True, TraceFlags(TraceFlags.SAMPLED), state)
        root = tracer.start_span(
            "root", set_span_in_context(NonRecordingSpan(caller)), SpanKind.SERVER, {"a": 1}
        )
        child = tracer.start_span(
            "child", set_span_in_context(root), SpanKind.CLIENT, {"b": "x", "n": None}
        )
        child.add_event("said", {"what": "hello", "count": 2})
        child.add_link(SpanContext(0x123, 0x456, True, TraceFlags(TraceFlags.SAMPLED)), {"l": 1})
        child.set_status(Status(StatusCode.ERROR, "broken"))
        child.end()
        root.set_attribute("c", 2.5)
        root.end()
        tracing.provider.force_flush()
        got = receiver.wait_for(lambda spans: len(spans) == 2)
        tracing.provider.shutdown()
    seen = {span.name: span for span in memory.get_finished_spans()}
    assert seen["root"].attributes == {"a": 1, "c": 2.5, "hector.trace.kept": "error"}
    assert seen["child"].attributes == {"b": "x"}
    for span in got:
        sdk = seen[span.name]
        context, parent = sdk.get_span_context(), sdk.parent
        assert context is not None and parent is not None
        assert (span.trace_id, span.span_id) == (
            f"{context.trace_id:032x}",
            f"{context.span_id:016x}",
        )
        assert span.parent_span_id == f"{parent.span_id:016x}"
        assert (span.name, span.kind, span.attributes) == (sdk.name, sdk.kind.name, sdk.attributes)
        assert (span.status, span.status_message) == (
            sdk.status.status_code.name,
            sdk.status.description or "",
        )
        assert span.events == [(e.name, dict(e.attributes or {})) for e in sdk.events]
        links = tuple(
            (f"{k.context.trace_id:032x}", f"{k.context.span_id:016x}") for k in sdk.links
        )
        assert span.links == links
        assert (span.start_ns, span.end_ns) == (sdk.start_time, sdk.end_time)
        assert span.resource == dict(sdk.resource.attributes)
        assert sdk.instrumentation_scope is not None
        assert span.scope == sdk.instrumentation_scope.name == "hector_py"
