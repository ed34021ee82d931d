"""An MCP server written with the ``mcp`` SDK's server side (``MCPServer``, formerly FastMCP).

Run as a child process::

    python -m tests.fakes.mcp_server stdio
    python -m tests.fakes.mcp_server http PORT       # streamable HTTP on 127.0.0.1:PORT/mcp
    python -m tests.fakes.mcp_server sse PORT        # legacy SSE on 127.0.0.1:PORT/sse
    python -m tests.fakes.mcp_server silent          # reads stdin, never answers (bad server)
    python -m tests.fakes.mcp_server garbage         # answers every line with invalid JSON-RPC

Tools: ``order`` (nested schema with ``$ref``), ``forecast`` (``structuredContent``),
``pixel`` (an image), ``broken`` (raises: an ``isError`` result), ``nap`` (sleeps),
``grow`` (adds the tool ``extra`` and sends ``notifications/tools/list_changed``),
``trace`` (echoes the ``traceparent`` HTTP header and ``_meta`` entry it got).
Each call of ``order`` answers with this process's pid, so a test sees a restart.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.types import Image
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

# a 1x1 transparent PNG
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


class Item(BaseModel):
    sku: str = Field(pattern=r"^[A-Z]{3}-\d+$")
    quantity: int = Field(ge=1)


server = MCPServer("hector-test")


@server.tool(description="Place an order for items.")
def order(customer: str, items: list[Item]) -> str:
    total = sum(item.quantity for item in items)
    return f"order for {customer}: {total} items (pid {os.getpid()})"


@server.tool(description="The weather forecast for a city (structuredContent only).")
def forecast(city: str) -> CallToolResult:
    return CallToolResult(content=[], structured_content={"city": city, "celsius": 21.5})


@server.tool(description="A tiny picture.")
def pixel() -> Image:
    return Image(data=PIXEL, format="png")


@server.tool(description="Always fails.")
def broken() -> str:
    raise ToolError("the warehouse is on fire")


@server.tool(description="Sleeps for seconds.")
async def nap(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "rested"


@server.tool(description="Adds the tool 'extra' and says the tool list changed.")
async def grow(ctx: Context) -> str:
    server.add_tool(extra, name="extra", description="Added later.")
    await ctx.session.send_tool_list_changed()
    return "grown"


@server.tool(description="The trace context this call arrived with: HTTP header and _meta.")
def trace(ctx: Context) -> str:
    request = ctx.request_context.request
    header = request.headers.get("traceparent") if request is not None else None
    meta = ctx.request_context.meta
    return f"header={header} meta={(meta or {}).get('traceparent')}"


def extra() -> str:
    return "extra here"


def _bad(kind: str) -> None:
    for line in sys.stdin:
        if kind == "garbage" and line.strip():
            sys.stdout.write("{this is not json-rpc\n")
            sys.stdout.flush()


def main() -> None:
    mode = sys.argv[1]
    if mode == "stdio":
        server.run("stdio")
    elif mode == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    elif mode == "sse":
        server.run("sse", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        _bad(mode)


if __name__ == "__main__":
    main()
