"""The HTTP client of MCP's HTTP transports: the SDK's defaults, plus the W3C trace
context as HTTP headers (the SDK puts it only in each request's ``params._meta``), and
connections kept alive across tool calls (the SDK closes each SSE answer as soon as it has
its result, before the server's last bytes: the connection could not be reused, and every
call opened a new TCP connection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import orjson
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

DRAIN_S = 0.25
"""How long closing an answer waits for the rest of its body (the end of an SSE stream)."""
DRAIN_BYTES = 65_536


async def _trace_headers(request: httpx2.Request) -> None:
    """Copy the W3C trace context the SDK put in a request's ``params._meta`` into its HTTP
    headers, so the server's HTTP layer (and any proxy) joins the trace too. The SDK sends
    from its own task, where the caller's context is gone; the body still carries it."""
    try:
        body = request.content
    except httpx2.RequestNotRead:
        return
    if b'"traceparent"' not in body:
        return
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    for key in ("traceparent", "tracestate"):
        if isinstance(meta, dict) and isinstance(meta.get(key), str):
            request.headers[key] = meta[key]


class _Drained(httpx2.AsyncByteStream):
    """A response body that, closed early, first reads what is left of it (bounded), so
    the connection goes back to the pool instead of being dropped."""

    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner
        self._chunks: AsyncIterator[bytes] | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._chunks = aiter(self._inner)
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        if self._chunks is not None:
            left = DRAIN_BYTES
            try:
                async with asyncio.timeout(DRAIN_S):
                    async for chunk in self._chunks:
                        left -= len(chunk)
                        if left < 0:
                            break
            except (TimeoutError, httpx2.HTTPError, OSError):
                pass  # the connection is dropped, as without draining
        await self._inner.aclose()


class _KeepAlive(httpx2.AsyncBaseTransport):
    """The default transport, draining POST answers when they are closed."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        if request.method == "POST" and isinstance(response.stream, httpx2.AsyncByteStream):
            response.stream = _Drained(response.stream)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def traced_http_client(
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
) -> httpx2.AsyncClient:
    """An HTTP client as the SDK makes it (its timeouts), with the trace context in each
    request's headers and connections reused across calls."""
    client = httpx2.AsyncClient(
        headers=headers,
        timeout=timeout or httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
        auth=auth,
        transport=_KeepAlive(),
    )
    client.event_hooks["request"].append(_trace_headers)
    return client
