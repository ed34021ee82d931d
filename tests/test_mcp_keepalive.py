"""Tool calls to a streamable-HTTP MCP server reuse their TCP connections: the SDK closes
each SSE answer before its last bytes, which used to cost a new connection per call (and
a TIME_WAIT socket on both sides). Counted by a real TCP relay in front of the server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

from hector_py.agent.tools import ToolRegistry
from hector_py.agent.tools.mcp import McpToolset
from hector_py.config.tools import ToolConfig
from tests.test_mcp import free_port, start_http_mcp
from tests.test_providers import run

CALLS = 10


@pytest.fixture(scope="module")
def mcp_port() -> Iterator[int]:
    port = free_port()
    server = start_http_mcp(port)
    yield port
    server.terminate()
    server.wait(10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _calls_through_a_relay(port: int) -> int:
    """Connections the relay accepted while a toolset connected and called CALLS times."""
    accepted = 0

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        server_r, server_w = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    relay_port = relay_server.sockets[0].getsockname()[1]
    toolset = McpToolset("shop", ToolConfig(type="mcp", url=f"http://127.0.0.1:{relay_port}/mcp"))
    registry = ToolRegistry({}, {"shop": toolset})
    await registry.start()
    try:
        tool = toolset.tools()["forecast"]
        for _ in range(CALLS):
            outcome = await registry.execute(tool, {"city": "Oslo"})
            assert outcome.ok and "21.5" in outcome.output, outcome
        return accepted
    finally:
        await registry.close()
        relay_server.close()


def test_tool_calls_reuse_connections(mcp_port: int) -> None:
    accepted = run(_calls_through_a_relay(mcp_port))
    # set-up: initialize, the GET stream, the initialized notification (at most one
    # connection each); the calls then share one kept-alive connection
    assert accepted <= 4, f"{accepted} connections for {CALLS} calls"
