"""Server-sent events: open a stream, write ``data:`` events in batches."""

from __future__ import annotations

from aiohttp import web


class _EventStream(web.StreamResponse):
    # aiohttp's switch (web.Response sets it too): the headers wait for the first write and
    # leave in one packet with the first events.
    _send_headers_immediately = False


async def open_sse(
    request: web.Request, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Start a ``text/event-stream`` response that proxies will not buffer; its headers go
    out with the first events."""
    response = _EventStream(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **(headers or {}),
        }
    )
    await response.prepare(request)
    return response


async def send_events(response: web.StreamResponse, *payloads: bytes) -> None:
    """Write one ``data:`` event per payload, all in one write; raises
    ``ConnectionResetError`` when the client has gone."""
    await response.write(b"".join(b"data: %b\n\n" % payload for payload in payloads))


async def send_comment(response: web.StreamResponse, text: str = "keep-alive") -> None:
    """Write an SSE comment (clients ignore it; it keeps idle connections open)."""
    await response.write(b": %b\n\n" % text.encode())
