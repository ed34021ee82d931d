"""Trace export from a child process (``tracing.export_process``; by default when
``sampling_rate`` is 0.5 or more).

The SDK's OTLP encoding is Python work: in the serving process it takes the GIL from the
event loop (at ``sampling_rate: 1.0`` a fifth of a request's CPU, and p99 spikes of 10 ms
and more at a single client). Here the SDK's batch processor stays in the server, with
``ProcessExporter`` as its exporter: each batch goes as plain values through a pipe to
``python -m hector_py.observability.export_process``, which rebuilds the SDK's
``ReadableSpan``s and exports them with the exporter ``build_exporter`` makes from the
same config and environment, and answers ``ok`` or the error. The batch thread waits for
that answer on the pipe (without the GIL), so retries, timeouts, dropped batches and
``/health`` are what they are in process. A child that dies is started again at the next
batch; when the server stops, the child exports what it has and exits.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from hector_py.config.observability import TracingConfig
from hector_py.observability.exporters import Target, build_exporter
from hector_py.observability.light import KeptSpan

FRAME = struct.Struct("!I")
OK, FAILED = "ok", "export failed"
NOISY_LOGGERS = ("opentelemetry.exporter", "opentelemetry.sdk.trace.export")
"""The exporters log every failed attempt; export health is reported once, by the server."""
SHUTDOWN_S = 10.0
RESTART_PAUSE_S = 30

log = logging.getLogger("hector.tracing")


class ExportProcessError(Exception):
    """The export process failed a batch, or is gone."""


class HashedResource(Resource):
    """A resource that hashes once. The OTLP encoder groups spans by resource, hashing it
    for every span, and ``Resource.__hash__`` serialises every attribute to JSON."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def _send(stream: IO[bytes], payload: object) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(FRAME.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next frame's value, or ``None`` at the end of the stream."""
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    (size,) = FRAME.unpack(head)
    data = stream.read(size)
    return pickle.loads(data) if len(data) == size else None


def _context(context: SpanContext) -> tuple[Any, ...]:
    trace_id, span_id, remote, flags, state, _ = context  # a SpanContext is a tuple
    return (trace_id, span_id, remote, int(flags), tuple(state.items()) if state else ())


def _span_context(values: tuple[Any, ...]) -> SpanContext:
    trace_id, span_id, remote, flags, state = values
    return SpanContext(
        trace_id, span_id, remote, TraceFlags(flags), TraceState(list(state)) if state else None
    )


class _Resources:
    """Resources and scopes as values, made once each (a process has one or two)."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[object, tuple[Any, ...]]] = {}

    def values(self, item: Resource | InstrumentationScope | None) -> tuple[Any, ...] | None:
        if item is None:
            return None
        held = self._made.get(id(item))
        if held is None or held[0] is not item:
            if len(self._made) > 64:
                self._made.clear()
            if isinstance(item, Resource):
                made: tuple[Any, ...] = (dict(item.attributes), item.schema_url)
            else:
                made = (item.name, item.version, item.schema_url, dict(item.attributes or {}))
            held = self._made[id(item)] = (item, made)
        return held[1]


def span_values(span: ReadableSpan, resources: _Resources) -> tuple[Any, ...]:
    """What the child needs to rebuild ``span``, as plain values (a kept light span's
    attributes are a plain dict already: sent as they are)."""
    context = span.get_span_context()
    assert context is not None
    parent, status = span.parent, span.status
    attributes = span.plain if type(span) is KeptSpan else dict(span.attributes or {})
    return (
        span.name,
        _context(context),
        _context(parent) if parent else None,
        span.kind.value,
        attributes,
        [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
        [(_context(link.context), dict(link.attributes or {})) for link in span.links],
        (status.status_code.value, status.description),
        span.start_time,
        span.end_time,
        resources.values(span.resource),
        resources.values(span.instrumentation_scope),
    )


def rebuilt(values: tuple[Any, ...], made: dict[Any, Any]) -> ReadableSpan:
    """The SDK span ``span_values`` described (resources and scopes made once each)."""
    name, context, parent, kind, attributes, events, links, status, start, end, res, scope = values
    resource_key = (tuple(sorted(res[0].items())), res[1])
    resource = made.get(resource_key)
    if resource is None:
        resource = made[resource_key] = HashedResource(Resource(res[0], res[1]))
    instrumentation = None
    if scope is not None:
        scope_key = (scope[0], scope[1], scope[2], tuple(sorted(scope[3].items())))
        instrumentation = made.get(scope_key)
        if instrumentation is None:
            instrumentation = made[scope_key] = InstrumentationScope(*scope)
    return ReadableSpan(
        name=name,
        context=_span_context(context),
        parent=_span_context(parent) if parent else None,
        resource=resource,
        attributes=attributes,
        events=[Event(n, a, t) for n, a, t in events],
        links=[Link(_span_context(c), a) for c, a in links],
        kind=SpanKind(kind),
        status=Status(StatusCode(status[0]), status[1]),
        start_time=start,
        end_time=end,
        instrumentation_scope=instrumentation,
    )


class ProcessExporter(SpanExporter):
    """The batch processor's exporter: batches go to the export process, one at a time."""

    def __init__(self, target: Target, config: TracingConfig, environ: Mapping[str, str]) -> None:
        self._setup = (target, config, dict(environ))
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._resources = _Resources()
        self._closed = False
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed at shutdown)
        self._answered = False  # the current child has answered a batch
        self._paused: tuple[float, str] = (0.0, "")  # no start before (monotonic), why
        with self._lock:
            self._running()  # start now: the first batch should not wait for imports

    def _running(self) -> subprocess.Popen[bytes]:
        """The export process, started (again) if need be."""
        child = self._child
        if child is not None:
            if child.poll() is None:
                return child
            self._bury(child)
        until, why = self._paused
        if time.monotonic() < until:
            raise ExportProcessError(why)
        source = str(Path(__file__).resolve().parents[2])  # this hector_py, whatever the cwd
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
        self._stderr.seek(0)
        self._stderr.truncate()
        child = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        assert child.stdin is not None
        with suppress(OSError):  # gone already: the first batch finds out why
            _send(child.stdin, self._setup)
        self._child, self._answered = child, False
        return child

    def _bury(self, child: subprocess.Popen[bytes]) -> str:
        """Note that ``child`` is gone, say why (its exit code and last words). One that
        died before answering any batch (it cannot start) is not started again for
        ``RESTART_PAUSE_S``: batches fail with its reason meanwhile."""
        child.kill()
        child.wait()
        self._child = None
        why = f"the export process exited ({child.returncode}){self._last_words()}"
        if self._answered:
            log.warning("%s; starting it again", why)
        else:
            self._paused = (time.monotonic() + RESTART_PAUSE_S, why)
            log.warning("%s; starting it again in %d s", why, RESTART_PAUSE_S)
        return why

    def _last_words(self) -> str:
        """``: <the last line the dead child wrote to stderr>``, if any."""
        self._stderr.seek(0)
        lines = self._stderr.read()[-4096:].decode(errors="replace").strip().splitlines()
        return f": {lines[-1]}" if lines else ""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Hand ``spans`` to the export process and wait for its answer."""
        batch = [span_values(span, self._resources) for span in spans]
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            child = self._running()
            assert child.stdin is not None and child.stdout is not None
            try:
                _send(child.stdin, batch)
                answer = _receive(child.stdout)
            except (OSError, ValueError):
                answer = None
            if answer is None:
                raise ExportProcessError(self._bury(child))
            self._answered = True
        if answer == OK:
            return SpanExportResult.SUCCESS
        if answer == FAILED:
            return SpanExportResult.FAILURE
        raise ExportProcessError(answer)

    def shutdown(self) -> None:
        """Let the export process finish and exit (killed after ``SHUTDOWN_S``)."""
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
        if child is None:
            self._stderr.close()
            return
        assert child.stdin is not None
        try:
            child.stdin.close()
            child.wait(SHUTDOWN_S)
        except (OSError, subprocess.TimeoutExpired):
            child.kill()
            child.wait()
        self._stderr.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Every batch is answered before the next: nothing is held here."""
        return True


def main() -> None:
    """The export process: export each batch from stdin, answer on stdout, until EOF."""
    # Ctrl-C, or a service manager signalling the whole group, stops the server, which
    # then closes our stdin: the last batches are exported before we exit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    answers, sys.stdout = sys.stdout.buffer, sys.stderr  # nothing else writes to the pipe
    requests = sys.stdin.buffer
    setup = _receive(requests)
    if setup is None:
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    exporter = build_exporter(*setup)
    made: dict[Any, Any] = {}
    while (batch := _receive(requests)) is not None:
        try:
            result = exporter.export([rebuilt(values, made) for values in batch])
            answer = OK if result is SpanExportResult.SUCCESS else FAILED
        except Exception as exc:  # answered, never fatal
            answer = f"{type(exc).__name__}: {exc}"
        _send(answers, answer)
    exporter.shutdown()


if __name__ == "__main__":
    main()
