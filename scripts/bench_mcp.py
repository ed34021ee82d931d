"""MCP tool overhead: one tool call through the registry, MCP (stdio and streamable HTTP)
vs a built-in.

The MCP server is the SDK's ``MCPServer`` with an ``echo`` tool, in its own process as in
real use (this script re-run with ``--serve``): over stdio as our child, and over
streamable HTTP on 127.0.0.1. Calls run one at a time (c=1), after a warm-up; the added
cost per MCP call is the difference of the medians, and the client CPU per call is what
serving the call costs our process. Runs in a few seconds::

    python scripts/bench_mcp.py [--calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

from hector_py.agent.tools import FunctionTool, Tool, ToolRegistry
from hector_py.agent.tools.mcp import McpToolset
from hector_py.config.tools import ToolConfig
from hector_py.llm.base import ToolSpec

SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def serve(mode: str, port: int) -> None:
    """Be the MCP server (``--serve stdio`` or ``--serve http PORT``)."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench", log_level="WARNING")

    @server.tool(description="Echo the text.")
    def echo(text: str) -> str:
        return text

    if mode == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def timed(registry: ToolRegistry, tool: Tool, calls: int) -> tuple[list[float], float]:
    """Seconds per call and client CPU seconds per call, after ``calls // 10`` warm-ups."""
    for _ in range(calls // 10):
        await registry.execute(tool, {"text": "hi"})
    out = []
    cpu = time.process_time()
    for _ in range(calls):
        started = time.perf_counter()
        outcome = await registry.execute(tool, {"text": "hi"})
        out.append(time.perf_counter() - started)
        assert outcome.ok, outcome
    return out, (time.process_time() - cpu) / calls


def summary(name: str, seconds: list[float], cpu: float) -> float:
    ordered = sorted(seconds)
    median = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    print(
        f"{name:<28} median {median * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms"
        f"   client CPU {cpu * 1e3:6.3f} ms/call"
    )
    return median


async def measure(name: str, config: ToolConfig, base: float, calls: int) -> None:
    toolset = McpToolset("bench", config)
    registry = ToolRegistry({}, {"bench": toolset})
    await registry.start()
    try:
        median = summary(name, *await timed(registry, toolset.tools()["echo"], calls))
        print(f"  added per call at c=1: {(median - base) * 1e3:.3f} ms (target <= 2 ms)")
    finally:
        await registry.close()


async def main(calls: int) -> None:
    async def echo(arguments: dict[str, Any]) -> str:
        return str(arguments["text"])

    builtin = FunctionTool(ToolSpec("echo", "Echo the text.", SCHEMA), 30.0, echo)
    base = summary("built-in tool", *await timed(ToolRegistry({"echo": builtin}), builtin, calls))
    me = [sys.executable, __file__, "--serve"]
    await measure(
        "MCP tool (stdio)",
        ToolConfig(type="mcp", command=me[0], args=[*me[1:], "stdio"]),
        base,
        calls,
    )
    port = free_port()
    server = subprocess.Popen([*me, "http", "--port", str(port)])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/mcp"
        await measure("MCP tool (streamable HTTP)", ToolConfig(type="mcp", url=url), base, calls)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--serve", choices=["stdio", "http"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
    else:
        asyncio.run(main(args.calls))
