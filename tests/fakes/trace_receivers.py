"""Fake trace collectors that speak the real wire protocols, for sync pytest tests.

Three receivers, each a context manager listening on an ephemeral 127.0.0.1 port:

    OTLPGrpcReceiver   OTLP/gRPC: the official collector ``TraceService`` on a grpc server
                       (thread pool). ``.endpoint`` is ``"127.0.0.1:PORT"``.
    OTLPHttpReceiver   OTLP/HTTP protobuf: ``POST /v1/traces``, ``Content-Type:
                       application/x-protobuf``, plain or ``Content-Encoding: gzip``; answers
                       200 with an empty ``ExportTraceServiceResponse``. ``.endpoint`` is
                       ``"http://127.0.0.1:PORT"`` and ``.traces_url`` is ``.endpoint +
                       "/v1/traces"``.
    ZipkinReceiver     Zipkin JSON v2: ``POST /api/v2/spans`` (a JSON list of spans), answers
                       202. ``.endpoint`` is ``"http://127.0.0.1:PORT"`` and ``.url`` is
                       ``.endpoint + "/api/v2/spans"``.

``jaeger`` in hector sends OTLP, so the two OTLP receivers stand in for a Jaeger collector.
The HTTP receivers run aiohttp on their own event loop in a background thread, so they serve
spans from a ``hector`` subprocess and from in-process async code alike.

Every receiver normalises what it gets into :class:`ReceivedSpan` and records each request's
headers (gRPC: its metadata) as a dict with lowercase keys, one dict per request, in
``.headers``; the gRPC receiver also records the ``grpc-encoding`` it saw. ``wait_for`` waits
(on a condition, with a deadline) until a predicate over the spans holds::

    with OTLPGrpcReceiver() as rx:
        start_hector(tracing_endpoint=rx.endpoint)     # whatever the test does
        post_a2a_message()
        spans = rx.wait_for(lambda s: any(x.name.startswith("execute_tool") for x in s))
        print(span_tree(spans))
        # POST /a2a
        #   invoke_agent assistant
        #     chat demo
        #     execute_tool echo
        #     chat demo
        (server,) = roots(spans)
        (agent,) = children(spans, server)
        assert [c.name for c in children(spans, agent)][:2] == ["chat demo", "execute_tool echo"]
        assert rx.headers[0]["authorization"] == "Bearer xyz"

Fault injection, for failure-isolation tests: ``refuse=True`` answers every export with an
error (gRPC ``UNAVAILABLE``, HTTP 503) and records headers but no spans; ``delay`` seconds
holds each answer back (a slow collector). :func:`closed_port` gives a port with nothing
listening (a collector that is down).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.fakes.background import HOST, STOP_TIMEOUT_S, BackgroundServer, StartStop


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as a receiver got it, in the same shape whatever the wire protocol.

    ``kind``: SERVER, CLIENT, INTERNAL, PRODUCER or CONSUMER (UNSPECIFIED if OTLP says so).
    ``status``: UNSET, OK or ERROR, with ``status_message``. OTLP attribute values are
    decoded to Python (str, int, float, bool, bytes, list, dict). Zipkin tags stay strings,
    and the Zipkin exporter mixes resource attributes into them; its reserved tags
    (``otel.status_code``, ``error``, ``otel.scope.*``, ``otel.library.*``) are lifted into
    ``status``, ``status_message`` and ``scope`` instead. Zipkin's ``resource`` is just
    ``{"service.name": localEndpoint.serviceName}``; its times have microsecond precision.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    attributes: dict[str, Any]
    status: str
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    scope: str
    start_ns: int
    end_ns: int
    links: tuple[tuple[str, str], ...] = ()
    """(trace_id, span_id) of each linked span (OTLP only)."""


# -- span trees ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricPoint:
    """One histogram data point of an OTLP metrics push."""

    name: str
    unit: str
    attributes: dict[str, Any]
    sum: float
    count: int


def roots(spans: Iterable[ReceivedSpan]) -> list[ReceivedSpan]:
    """Spans whose parent is not among ``spans`` (no parent, or a remote one), by start."""
    spans = list(spans)
    known = {(s.trace_id, s.span_id) for s in spans}
    top = [s for s in spans if (s.trace_id, s.parent_span_id) not in known]
    return sorted(top, key=lambda s: s.start_ns)


def children(spans: Iterable[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    """The direct children of ``parent`` among ``spans``, in start order."""
    kids = [
        s for s in spans if s.trace_id == parent.trace_id and s.parent_span_id == parent.span_id
    ]
    return sorted(kids, key=lambda s: s.start_ns)


def span_tree(
    spans: Iterable[ReceivedSpan], label: Callable[[ReceivedSpan], str] = lambda s: s.name
) -> str:
    """The spans as an indented tree (two spaces a level, children in start order)."""
    spans = list(spans)
    lines: list[str] = []
    # Iterative walk, bounded by the number of spans (a cycle cannot loop forever).
    stack = [(s, 0) for s in reversed(roots(spans))]
    for _ in range(len(spans)):
        if not stack:
            break
        span, depth = stack.pop()
        lines.append("  " * depth + label(span))
        stack.extend((c, depth + 1) for c in reversed(children(spans, span)))
    return "\n".join(lines)


def one(spans: Iterable[ReceivedSpan], name: str) -> ReceivedSpan:
    """The single span called ``name``; AssertionError (listing the names) otherwise."""
    spans = list(spans)
    found = [s for s in spans if s.name == name]
    if len(found) != 1:
        names = sorted(s.name for s in spans)
        raise AssertionError(f"expected one span {name!r}, found {len(found)} among {names}")
    return found[0]


def closed_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening on it (bound, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


# -- decoding ------------------------------------------------------------------------------


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _key_values(value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)


def _key_values(items: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in items}


def _from_otlp(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    out: list[ReceivedSpan] = []
    for rs in request.resource_spans:
        resource = _key_values(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append(
                    ReceivedSpan(
                        trace_id=sp.trace_id.hex(),
                        span_id=sp.span_id.hex(),
                        parent_span_id=sp.parent_span_id.hex() or None,
                        name=sp.name,
                        kind=Span.SpanKind.Name(sp.kind).removeprefix("SPAN_KIND_"),
                        attributes=_key_values(sp.attributes),
                        status=Status.StatusCode.Name(sp.status.code).removeprefix("STATUS_CODE_"),
                        status_message=sp.status.message,
                        events=[(e.name, _key_values(e.attributes)) for e in sp.events],
                        resource=resource,
                        scope=ss.scope.name,
                        start_ns=sp.start_time_unix_nano,
                        end_ns=sp.end_time_unix_nano,
                        links=tuple((k.trace_id.hex(), k.span_id.hex()) for k in sp.links),
                    )
                )
    return out


_ZIPKIN_RESERVED = ("otel.status_code", "error", "otel.scope.", "otel.library.")


def _zipkin_event(annotation: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    # The OTel exporter encodes an event as json.dumps({name: attributes}).
    value = str(annotation.get("value", ""))
    try:
        decoded = json.loads(value)
    except ValueError:
        return value, {}
    if isinstance(decoded, dict) and len(decoded) == 1:
        ((name, attrs),) = decoded.items()
        if isinstance(attrs, dict):
            return str(name), attrs
    return value, {}


def _from_zipkin(payload: Any) -> list[ReceivedSpan]:
    if not isinstance(payload, list) or not all(isinstance(s, dict) for s in payload):
        raise ValueError("a Zipkin v2 body is a JSON list of span objects")
    out: list[ReceivedSpan] = []
    for sp in payload:
        tags: dict[str, Any] = dict(sp.get("tags") or {})
        code = tags.get("otel.status_code")
        status = "ERROR" if code == "ERROR" or "error" in tags else (code or "UNSET")
        start_ns = int(sp.get("timestamp", 0)) * 1000
        parent = sp.get("parentId")
        out.append(
            ReceivedSpan(
                trace_id=str(sp["traceId"]).lower().zfill(32),
                span_id=str(sp["id"]).lower().zfill(16),
                parent_span_id=str(parent).lower().zfill(16) if parent else None,
                name=str(sp.get("name", "")),
                kind=str(sp.get("kind") or "INTERNAL"),
                attributes={k: v for k, v in tags.items() if not k.startswith(_ZIPKIN_RESERVED)},
                status=status,
                status_message=str(tags.get("error", "")),
                events=[_zipkin_event(a) for a in sp.get("annotations") or []],
                resource={"service.name": (sp.get("localEndpoint") or {}).get("serviceName")},
                scope=str(tags.get("otel.scope.name", "")),
                start_ns=start_ns,
                end_ns=start_ns + int(sp.get("duration", 0)) * 1000,
            )
        )
    return out


# -- receivers -----------------------------------------------------------------------------


class _Receiver(StartStop):
    """What all receivers share: the records, the condition and the waiting."""

    def __init__(self, *, refuse: bool = False, delay: float = 0.0) -> None:
        self.refuse = refuse
        self.delay = delay
        self._cond = threading.Condition()
        self._stopping = threading.Event()  # cuts a ``delay`` short on stop
        self._spans: list[ReceivedSpan] = []
        self._headers: list[dict[str, str]] = []

    @property
    def spans(self) -> list[ReceivedSpan]:
        """A snapshot of every span received so far, in arrival order."""
        with self._cond:
            return list(self._spans)

    @property
    def headers(self) -> list[dict[str, str]]:
        """A snapshot of each export request's headers (lowercase keys), in arrival order."""
        with self._cond:
            return [dict(h) for h in self._headers]

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._cond:
            self._spans.clear()
            self._headers.clear()

    def _record(self, headers: Mapping[str, str], spans: list[ReceivedSpan]) -> None:
        with self._cond:
            self._headers.append({k.lower(): v for k, v in headers.items()})
            self._spans.extend(spans)
            self._cond.notify_all()

    def wait_for(
        self,
        predicate: Callable[[list[ReceivedSpan]], bool] = bool,
        timeout: float = 5.0,
        what: str = "",
    ) -> list[ReceivedSpan]:
        """Wait until ``predicate(spans)`` holds and return those spans (default: any span).

        Raises AssertionError after ``timeout`` seconds, showing what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self._spans)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{type(self).__name__}: no {what or 'matching spans'} within "
                        f"{timeout}s; got {len(self._spans)} spans in "
                        f"{len(self._headers)} requests:\n{span_tree(self._spans)}"
                    )
                self._cond.wait(left)
            return list(self._spans)

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> list[dict[str, str]]:
        """Wait until ``count`` export requests arrived (refused ones too); their headers."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._headers) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{type(self).__name__}: {len(self._headers)} export requests "
                        f"within {timeout}s, wanted {count}"
                    )
                self._cond.wait(left)
            return [dict(h) for h in self._headers]


class _TraceService(TraceServiceServicer):
    def __init__(self, owner: OTLPGrpcReceiver) -> None:
        self._owner = owner

    def Export(
        self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        owner = self._owner
        metadata = {str(k): str(v) for k, v in context.invocation_metadata()}
        if owner.delay:
            owner._stopping.wait(owner.delay)
        if owner.refuse:
            owner._record(metadata, [])
            context.abort(grpc.StatusCode.UNAVAILABLE, "refused by the test receiver")
        owner._record(metadata, _from_otlp(request))
        return ExportTraceServiceResponse()


class OTLPGrpcReceiver(_Receiver):
    """OTLP/gRPC collector (``TraceService/Export``) on ``127.0.0.1:PORT``, no TLS.

    ``.headers`` holds each request's metadata (``authorization``, ``user-agent``...).
    gRPC strips ``grpc-encoding`` before the servicer, so compression is not in it. To
    prove an exporter compresses, use ``accept_gzip=False``: the gRPC core then rejects
    gzip-compressed exports with ``UNIMPLEMENTED`` ("Compression algorithm 'gzip' is
    disabled") before the servicer, so they leave no record, while plain ones still arrive.
    """

    def __init__(
        self, *, refuse: bool = False, delay: float = 0.0, accept_gzip: bool = True
    ) -> None:
        super().__init__(refuse=refuse, delay=delay)
        self.accept_gzip = accept_gzip
        self.port = 0
        self._server: grpc.Server | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-grpc")
        # The bitset of enabled algorithms: 1 is identity only, 0b111 adds deflate and gzip.
        options = [("grpc.compression_enabled_algorithms_bitset", 0b111 if self.accept_gzip else 1)]
        server = grpc.server(self._pool, options=options)
        add_TraceServiceServicer_to_server(_TraceService(self), server)
        self.port = server.add_insecure_port(f"{HOST}:0")
        server.start()
        self._server = server

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace=0.5).wait(STOP_TIMEOUT_S)
            self._server = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class _AiohttpReceiver(_Receiver):
    """An aiohttp app on its own event loop in a daemon thread."""

    def __init__(self, *, refuse: bool = False, delay: float = 0.0) -> None:
        super().__init__(refuse=refuse, delay=delay)
        self._server = BackgroundServer(self._app)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def endpoint(self) -> str:
        return self._server.url

    async def _app(self) -> web.Application:
        app = web.Application()
        app.add_routes(self._routes())
        return app

    def _routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    async def _body(self, request: web.Request) -> bytes:
        """The request body, gunzipped if aiohttp has not done it already."""
        body = await request.read()
        if body[:2] == b"\x1f\x8b" and "gzip" in request.headers.get("Content-Encoding", ""):
            body = gzip.decompress(body)
        return body

    async def _gate(self, request: web.Request) -> web.Response | None:
        """Apply ``delay`` and ``refuse``; a refusal is recorded and answered with 503."""
        if self.delay:
            await asyncio.sleep(self.delay)  # cleanup() cancels it on stop
        if self.refuse:
            self._record(request.headers, [])
            return web.Response(status=503, text="refused by the test receiver")
        return None

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


class OTLPHttpReceiver(_AiohttpReceiver):
    """OTLP/HTTP protobuf collector: ``POST {prefix}/v1/traces`` at ``.traces_url``
    (``prefix`` is a gateway's base path, such as ``/otlp`` or ``/api/public/otel``)."""

    def __init__(self, *, refuse: bool = False, delay: float = 0.0, prefix: str = "") -> None:
        super().__init__(refuse=refuse, delay=delay)
        self.prefix = prefix
        self._points: list[MetricPoint] = []

    @property
    def metric_points(self) -> list[MetricPoint]:
        """Every histogram data point pushed to ``{prefix}/v1/metrics`` so far."""
        with self._cond:
            return list(self._points)

    def wait_for_metric(self, name: str, timeout: float = 10.0) -> list[MetricPoint]:
        """Wait until a point of metric ``name`` arrived; the points of that metric."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(p.name == name for p in self._points):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name} within {timeout}s: {self._points}")
                self._cond.wait(left)
            return [p for p in self._points if p.name == name]

    @property
    def base_url(self) -> str:
        """The endpoint with the prefix: what ``OTEL_EXPORTER_OTLP_ENDPOINT`` names."""
        return f"{self.endpoint}{self.prefix}"

    @property
    def traces_url(self) -> str:
        return f"{self.base_url}/v1/traces"

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{self.prefix}/v1/traces", self._export),
            web.post(f"{self.prefix}/v1/metrics", self._export_metrics),
        ]

    async def _export_metrics(self, request: web.Request) -> web.Response:
        try:
            message = ExportMetricsServiceRequest.FromString(await self._body(request))
        except (DecodeError, OSError) as exc:
            return web.Response(status=400, text=f"bad ExportMetricsServiceRequest: {exc}")
        points = [
            MetricPoint(metric.name, metric.unit, _key_values(p.attributes), p.sum, p.count)
            for resource in message.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            for p in metric.histogram.data_points
        ]
        with self._cond:
            self._points.extend(points)
            self._cond.notify_all()
        return web.Response(
            body=ExportMetricsServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def _export(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        if request.content_type != "application/x-protobuf":
            return web.Response(status=415, text=f"unsupported {request.content_type}")
        try:
            message = ExportTraceServiceRequest.FromString(await self._body(request))
        except (DecodeError, OSError) as exc:
            return web.Response(status=400, text=f"bad ExportTraceServiceRequest: {exc}")
        self._record(request.headers, _from_otlp(message))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )


class ZipkinReceiver(_AiohttpReceiver):
    """Zipkin JSON v2 collector: ``POST /api/v2/spans`` at ``.url``."""

    @property
    def url(self) -> str:
        return f"{self.endpoint}/api/v2/spans"

    def _routes(self) -> list[web.RouteDef]:
        return [web.post("/api/v2/spans", self._export)]

    async def _export(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        try:
            spans = _from_zipkin(json.loads(await self._body(request)))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            return web.Response(status=400, text=f"bad Zipkin v2 body: {exc}")
        self._record(request.headers, spans)
        return web.Response(status=202)
