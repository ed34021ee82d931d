"""MCP tool overhead: one tool call through the registry, MCP (streamable HTTP) vs built-in.

The MCP server is in-process (the SDK's ``MCPServer`` under uvicorn, in a thread, on
127.0.0.1); both tools echo their argument. Calls run one at a time (c=1), after a warm-up;
the added cost per MCP call is the difference of the medians. Runs in a few seconds::

    python scripts/bench_mcp.py [--calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import threading
import time
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

from hector_py.agent.tools import FunctionTool, ToolRegistry
from hector_py.agent.tools.mcp import McpToolset
from hector_py.config.tools import ToolConfig
from hector_py.llm.base import ToolSpec

SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mcp_server(port: int) -> uvicorn.Server:
    """An MCP server with an ``echo`` tool on 127.0.0.1:``port``/mcp, in a thread."""
    server = MCPServer("bench", log_level="WARNING")

    @server.tool(description="Echo the text.")
    def echo(text: str) -> str:
        return text

    config = uvicorn.Config(
        server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning"
    )
    running = uvicorn.Server(config)
    threading.Thread(target=running.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.01)
    return running


async def timed(registry: ToolRegistry, tool: Any, calls: int) -> list[float]:
    """Seconds per call, after ``calls // 10`` warm-up calls."""
    for _ in range(calls // 10):
        await registry.execute(tool, {"text": "hi"})
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        outcome = await registry.execute(tool, {"text": "hi"})
        out.append(time.perf_counter() - started)
        assert outcome.ok, outcome
    return out


def summary(name: str, seconds: list[float]) -> float:
    ordered = sorted(seconds)
    median = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    print(f"{name:<28} median {median * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms")
    return median


async def main(calls: int) -> None:
    port = free_port()
    uvicorn_server = start_mcp_server(port)

    async def echo(arguments: dict[str, Any]) -> str:
        return str(arguments["text"])

    builtin = FunctionTool(ToolSpec("echo", "Echo the text.", SCHEMA), 30.0, echo)
    toolset = McpToolset("bench", ToolConfig(type="mcp", url=f"http://127.0.0.1:{port}/mcp"))
    registry = ToolRegistry({"echo": builtin}, {"bench": toolset})
    await registry.start()
    try:
        base = summary("built-in tool", await timed(registry, builtin, calls))
        mcp = summary(
            "MCP tool (streamable HTTP)", await timed(registry, toolset.tools()["echo"], calls)
        )
        print(f"added per MCP call at c=1: {(mcp - base) * 1e3:.3f} ms (target <= 2 ms)")
    finally:
        await registry.close()
        uvicorn_server.should_exit = True


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    asyncio.run(main(parser.parse_args().calls))
