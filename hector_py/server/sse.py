"""Server-sent events: open a stream, write one ``data:`` event at a time."""

from __future__ import annotations

from aiohttp import web


async def open_sse(
    request: web.Request, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Start a ``text/event-stream`` response that proxies will not buffer."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **(headers or {}),
        }
    )
    await response.prepare(request)
    return response


async def send_event(response: web.StreamResponse, data: bytes) -> None:
    """Write one event; raises ``ConnectionResetError`` when the client has gone."""
    await response.write(b"data: " + data + b"\n\n")
