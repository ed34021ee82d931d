"""Connection hygiene against hostile clients: caps, refusal, malformed heads, accept errors.

aiohttp closes a connection that has no complete request head ``keepalive_timeout``
seconds after it opened or after its previous response (our ``server.idle_timeout``):
that covers idle keep-alives and heads sent slowly (slowloris). What it lacks is here: a
total and per-client connection cap (past it, a 503 is written and the socket closed), a
400 for a malformed request that neither echoes the raw line nor logs a traceback (one
warning per peer per interval, and a metric), and accept errors (EMFILE) logged once per
episode.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import Counter
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from hector_py.observability.telemetry import Telemetry

log = logging.getLogger("hector.server")

WARN_INTERVAL_S = 60.0
"""A peer's malformed requests, and accept errors, are logged at most once per interval."""
FD_SHARE = 0.75
"""Default ``max_connections``: this share of the open-file limit (the rest: upstreams,
the store, logs)."""
OUT_OF_RESOURCES = "socket.accept() out of system resource"  # asyncio's message


def _refusal(message: str) -> bytes:
    body = f'{{"error":{{"code":503,"message":"{message}"}}}}'.encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Retry-After: 1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


REFUSALS = {
    "server_limit": _refusal("too many connections; retry shortly"),
    "client_limit": _refusal("too many connections from this client; retry shortly"),
}


def default_max_connections() -> int:
    """Three quarters of the process's open-file limit (its soft limit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1, int(soft * FD_SHARE)) if soft != resource.RLIM_INFINITY else 65536


class ConnectionGuard:
    """Counts open connections overall and per client address; refuses past the caps."""

    def __init__(self, total: int, per_client: int, telemetry: Telemetry) -> None:
        self.total = total
        self.per_client = per_client
        self.telemetry = telemetry
        self.open = 0
        self._by_peer: Counter[str] = Counter()
        self._warned: dict[str, float] = {}

    def admit(self, peer: str) -> str | None:
        """Count a new connection from ``peer``; the refusal reason when over a cap."""
        if self.open >= self.total:
            reason = "server_limit"
        elif self._by_peer[peer] >= self.per_client:
            reason = "client_limit"
        else:
            self.open += 1
            self._by_peer[peer] += 1
            return None
        self.telemetry.connection_refused(reason)
        self._warn_once(f"{reason}:{peer}", "refusing connections from %s: %s", peer, reason)
        return reason

    def release(self, peer: str) -> None:
        """Forget a connection ``admit`` let in."""
        self.open -= 1
        self._by_peer[peer] -= 1
        if self._by_peer[peer] <= 0:
            del self._by_peer[peer]

    def malformed(self, peer: str, reason: str) -> None:
        """Count a malformed request (``reason``: the parser's error class)."""
        self.telemetry.error("server", "malformed_request")
        self._warn_once(f"malformed:{peer}", "malformed request from %s: %s", peer, reason)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned.get(key, -WARN_INTERVAL_S) < WARN_INTERVAL_S:
            return
        if len(self._warned) > 10_000:  # bounded: forget peers warned about long ago
            self._warned = {k: t for k, t in self._warned.items() if now - t < WARN_INTERVAL_S}
        self._warned[key] = now
        log.warning(message, *args, extra={"repeats_suppressed_for_s": WARN_INTERVAL_S})


def _peer_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


class GuardedHandler(RequestHandler):
    """aiohttp's protocol, with the connection caps and quiet, echo-free 400s."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection, or write a 503 and close it."""
        peer = _peer_of(transport)
        refused = self._guard.admit(peer)
        if refused is not None:
            assert isinstance(transport, asyncio.Transport)
            transport.write(REFUSALS[refused])
            transport.close()
            return
        self._peer = peer
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Release the connection's slot (a refused one never had one)."""
        if self._peer is None:
            return
        self._guard.release(self._peer)
        self._peer = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A malformed request gets a fixed 400 and a rate-limited warning, no traceback."""
        if status != 400 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        self._guard.malformed(self._peer or "?", type(exc).__name__ if exc else "bad request")
        response = web.Response(status=400, text="400 Bad Request: malformed HTTP request\n")
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's low-level server, making ``GuardedHandler`` protocols."""

    def __init__(self, base: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            **kwargs,
        )
        self._guard = guard

    def __call__(self) -> RequestHandler:
        """A new connection's protocol."""
        return GuardedHandler(self, loop=self._loop, guard=self._guard, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An ``AppRunner`` whose connections go through a ``ConnectionGuard``."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._guard = guard

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        # The app's own server, rebuilt with our protocol class (same handler, same settings).
        return GuardedServer(base, self._guard, **base._kwargs)


def watch_accept_errors(loop: asyncio.AbstractEventLoop, telemetry: Telemetry) -> None:
    """Log asyncio's accept errors (out of file descriptors...) once per interval, counted
    in ``errors_total{component="server",error_type="accept_out_of_resources"}``, instead
    of a traceback per attempt; other loop errors go to the previous handler."""
    previous = loop.get_exception_handler()
    last_logged = -WARN_INTERVAL_S

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal last_logged
        if context.get("message") != OUT_OF_RESOURCES:
            (previous or _default)(loop, context)
            return
        telemetry.error("server", "accept_out_of_resources")
        now = time.monotonic()
        if now - last_logged >= WARN_INTERVAL_S:
            last_logged = now
            log.error(
                "cannot accept connections: %s (open-file limit reached?); retrying",
                context.get("exception"),
                extra={"repeats_suppressed_for_s": WARN_INTERVAL_S},
            )

    loop.set_exception_handler(handle)


def _default(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    loop.default_exception_handler(context)
