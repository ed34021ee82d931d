"""The HTTP client of MCP's HTTP transports: the SDK's own, plus the W3C trace context as
HTTP headers (the SDK puts it only in each request's ``params._meta``)."""

from __future__ import annotations

import httpx2
import orjson
from mcp.shared._httpx_utils import create_mcp_http_client


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


def traced_http_client(
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
) -> httpx2.AsyncClient:
    """The SDK's own HTTP client, with the trace context in the headers of each request."""
    client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
    client.event_hooks["request"].append(_trace_headers)
    return client
