"""The processes ``scripts/bench.py`` starts, one role per sub-command.

Each runs in its own process on 127.0.0.1, prints one line when it is ready (a URL, an
endpoint or a JSON object) and stops on SIGTERM/SIGINT or when its work is done:

    fake     the fake OpenAI upstream of ``tests/fakes/llm_servers.py``, with its per-request
             recording turned off so its memory and GC stay flat over a long run
             (same flags as ``python -m tests.fakes.llm_servers``)
    floor    the floor: one aiohttp handler forwarding the body to the fake over one
             shared ClientSession (a minimal proxy)
    otlp     a live OTLP/gRPC trace receiver that decodes and counts spans; a line on
             stdin asks it for the counts so far (JSON on stdout)
    load     a bounded aiohttp load generator: fixed concurrency, fixed duration, JSON out
    stream   streaming client: time to first text chunk and chunks/s, JSON out
    hold     opens N streams, says when all have their first chunk, holds them until a
             line arrives on stdin (or SIGTERM), then closes them

Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"


def _emit(value: Any) -> None:
    """One line on stdout, flushed (the orchestrator reads it)."""
    print(value if isinstance(value, str) else json.dumps(value), flush=True)


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def _check_local(url: str) -> str:
    host = aiohttp.client.URL(url).host
    if host not in (HOST, "localhost"):
        raise SystemExit(f"refusing to send load to {host}: only {HOST} is allowed")
    return url


# --- fake upstream ----------------------------------------------------------------------


async def run_fake(argv: list[str]) -> None:
    from tests.fakes.llm_servers import FakeLLMServer, parse_args, script_from_args

    class _Forgetful(list):  # type: ignore[type-arg]
        """A request log that keeps nothing (the fake records every request for tests)."""

        def append(self, item: Any) -> None:
            pass

    class BenchFake(FakeLLMServer):
        def _note(self, index: int, **outcome: Any) -> None:
            pass

    args = parse_args(argv)
    script, default = script_from_args(args)
    fake = BenchFake(args.provider, script, default, host=HOST, port=args.port)
    fake.requests = _Forgetful()
    _emit(await fake.start())
    try:
        await _until_stopped()
    finally:
        await fake.stop()


# --- floor proxy --------------------------------------------------------------------------


async def run_floor(args: argparse.Namespace) -> None:
    upstream = _check_local(args.upstream.rstrip("/"))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    headers = {"Content-Type": "application/json"}

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        async with session.post(upstream + "/chat/completions", data=body, headers=headers) as r:
            data = await r.read()
            return web.Response(body=data, status=r.status, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", forward)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, args.port)
    await site.start()
    port = runner.addresses[0][1]
    _emit(f"http://{HOST}:{port}")
    try:
        await _until_stopped()
    finally:
        await runner.cleanup()
        await session.close()


# --- OTLP receiver ------------------------------------------------------------------------


def run_otlp(args: argparse.Namespace) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
        TraceServiceServicer,
        add_TraceServiceServicer_to_server,
    )

    counts = {"spans": 0, "requests": 0}
    lock = threading.Lock()

    class Counting(TraceServiceServicer):  # type: ignore[misc]
        def Export(
            self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
        ) -> ExportTraceServiceResponse:
            spans = sum(
                len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
            )
            with lock:
                counts["spans"] += spans
                counts["requests"] += 1
            return ExportTraceServiceResponse()

    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp")
    server = grpc.server(pool, options=[("grpc.compression_enabled_algorithms_bitset", 0b111)])
    add_TraceServiceServicer_to_server(Counting(), server)
    port = server.add_insecure_port(f"{HOST}:{args.port}")
    server.start()
    _emit(f"{HOST}:{port}")
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())

    def answer() -> None:
        for _ in sys.stdin:
            with lock:
                _emit(dict(counts))
        done.set()

    threading.Thread(target=answer, daemon=True).start()
    done.wait()
    server.stop(grace=0.2).wait(2)


# --- load generator -----------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _run_workers(
    concurrency: int, duration: float, work: Callable[[aiohttp.ClientSession], Awaitable[None]]
) -> float:
    """Run ``concurrency`` loops of ``work`` for ``duration`` seconds; the time it took."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.perf_counter() + duration

        async def loop() -> None:
            while time.perf_counter() < deadline:
                await work(session)

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return time.perf_counter() - started


async def run_load(args: argparse.Namespace) -> None:
    url = _check_local(args.url)
    body = Path(args.body).read_bytes()
    headers = {"Content-Type": "application/json"}
    marker = args.expect.encode() if args.expect else b""
    latencies: list[float] = []
    errors = {"status": 0, "body": 0, "connect": 0}
    recording = False

    async def one(session: aiohttp.ClientSession) -> None:
        started = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                data = await response.read()
                ok_status = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            if recording:
                errors["connect"] += 1
            return
        if not recording:
            return
        latencies.append(time.perf_counter() - started)
        if not ok_status:
            errors["status"] += 1
        elif marker and marker not in data:
            errors["body"] += 1

    if args.warmup > 0:
        await _run_workers(args.concurrency, args.warmup, one)
    recording = True
    elapsed = await _run_workers(args.concurrency, args.duration, one)
    latencies.sort()
    _emit(
        {
            "requests": len(latencies),
            "duration_s": elapsed,
            "rps": len(latencies) / elapsed,
            "p50_ms": _percentile(latencies, 50) * 1000,
            "p90_ms": _percentile(latencies, 90) * 1000,
            "p99_ms": _percentile(latencies, 99) * 1000,
            "max_ms": (latencies[-1] * 1000) if latencies else float("nan"),
            "errors": sum(errors.values()),
            "error_kinds": errors,
        }
    )


# --- streaming clients --------------------------------------------------------------------


def _has_text(kind: str, payload: bytes) -> bool:
    """Whether one SSE ``data`` payload carries reply text (not a role/status event)."""
    if payload == b"[DONE]":
        return False
    try:
        event = json.loads(payload)
    except ValueError:
        return False
    if kind == "openai":
        choices = event.get("choices") or ()
        return any((c.get("delta") or {}).get("content") for c in choices)
    result = event.get("result") or {}
    if result.get("kind") != "artifact-update":
        return False
    return any(part.get("text") for part in result.get("artifact", {}).get("parts", ()))


async def _stream_once(
    session: aiohttp.ClientSession, url: str, body: bytes, kind: str
) -> tuple[float | None, int, float]:
    """(seconds to the first text event, text events, total seconds) of one stream."""
    started = time.perf_counter()
    first: float | None = None
    chunks = 0
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    async with session.post(url, data=body, headers=headers) as response:
        if response.status != 200:
            raise aiohttp.ClientResponseError(
                response.request_info, (), status=response.status, message="bad status"
            )
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            if _has_text(kind, line[5:].strip()):
                chunks += 1
                if first is None:
                    first = time.perf_counter() - started
    return first, chunks, time.perf_counter() - started


async def run_stream(args: argparse.Namespace) -> None:
    url = _check_local(args.url)
    body = Path(args.body).read_bytes()
    ttfts: list[float] = []
    totals: list[float] = []
    counted = {"chunks": 0, "errors": 0, "streams": 0}
    recording = False

    async def one(session: aiohttp.ClientSession) -> None:
        try:
            first, chunks, total = await _stream_once(session, url, body, args.kind)
        except (aiohttp.ClientError, TimeoutError):
            if recording:
                counted["errors"] += 1
            return
        if not recording:
            return
        counted["streams"] += 1
        counted["chunks"] += chunks
        if first is None:
            counted["errors"] += 1
        else:
            ttfts.append(first)
            totals.append(total)

    if args.warmup > 0:
        await _run_workers(args.concurrency, args.warmup, one)
    recording = True
    elapsed = await _run_workers(args.concurrency, args.duration, one)
    ttfts.sort()
    totals.sort()
    _emit(
        {
            "streams": counted["streams"],
            "duration_s": elapsed,
            "chunks": counted["chunks"],
            "chunks_per_s": counted["chunks"] / elapsed,
            "chunks_per_stream": counted["chunks"] / max(1, counted["streams"]),
            "ttft_p50_ms": _percentile(ttfts, 50) * 1000,
            "ttft_p99_ms": _percentile(ttfts, 99) * 1000,
            "total_p50_ms": _percentile(totals, 50) * 1000,
            "errors": counted["errors"],
        }
    )


async def run_hold(args: argparse.Namespace) -> None:
    url = _check_local(args.url)
    body = Path(args.body).read_bytes()
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    first_chunks = 0
    all_started = asyncio.Event()
    release = asyncio.Event()
    failures = 0

    async def hold(session: aiohttp.ClientSession) -> None:
        nonlocal first_chunks, failures
        got_first = False
        try:
            async with session.post(url, data=body, headers=headers) as response:
                async for line in response.content:
                    data = line[5:].strip() if line.startswith(b"data:") else b""
                    if not got_first and data and _has_text(args.kind, data):
                        got_first = True
                        first_chunks += 1
                        if first_chunks == args.count:
                            all_started.set()
                    if release.is_set():
                        return
        except (aiohttp.ClientError, TimeoutError):
            failures += 1
        finally:
            if not got_first and first_chunks + failures >= args.count:
                all_started.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, release.set)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        for index in range(args.count):
            tasks.append(asyncio.create_task(hold(session)))
            if args.ramp and index % 50 == 49:
                await asyncio.sleep(args.ramp * 50 / args.count)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_started.wait(), args.timeout)
        _emit(
            {
                "open": first_chunks,
                "failed": failures,
                "seconds_to_open": time.perf_counter() - started,
            }
        )
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        line_task = asyncio.create_task(reader.readline())
        release_task = asyncio.create_task(release.wait())
        await asyncio.wait({line_task, release_task}, return_when=asyncio.FIRST_COMPLETED)
        release.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        line_task.cancel()
        release_task.cancel()


# --- command line -------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    if argv and argv[0] == "fake":
        asyncio.run(run_fake(argv[1:]))
        return
    parser = argparse.ArgumentParser(prog="bench_helpers.py")
    roles = parser.add_subparsers(dest="role", required=True)
    floor = roles.add_parser("floor")
    floor.add_argument("--upstream", required=True, help="the fake's base URL (…/v1)")
    floor.add_argument("--port", type=int, default=0)
    otlp = roles.add_parser("otlp")
    otlp.add_argument("--port", type=int, default=0)
    for name in ("load", "stream"):
        role = roles.add_parser(name)
        role.add_argument("--url", required=True)
        role.add_argument("--body", required=True, help="file holding the JSON body")
        role.add_argument("--concurrency", type=int, default=1)
        role.add_argument("--duration", type=float, default=5.0)
        role.add_argument("--warmup", type=float, default=1.0)
        if name == "load":
            role.add_argument("--expect", default="", help="text every good body contains")
        else:
            role.add_argument("--kind", choices=("openai", "a2a"), default="openai")
    hold = roles.add_parser("hold")
    hold.add_argument("--url", required=True)
    hold.add_argument("--body", required=True)
    hold.add_argument("--count", type=int, default=1000)
    hold.add_argument("--kind", choices=("openai", "a2a"), default="openai")
    hold.add_argument("--ramp", type=float, default=1.0, help="seconds to open them all over")
    hold.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.role == "otlp":
        run_otlp(args)
        return
    runner = {"floor": run_floor, "load": run_load, "stream": run_stream, "hold": run_hold}
    asyncio.run(runner[args.role](args))


if __name__ == "__main__":
    main(sys.argv[1:])
