"""MCP tools end to end: ``hector serve`` with MCP servers over stdio and streamable HTTP.

The servers are real: ``tests/fakes/mcp_server.py`` (the SDK's ``MCPServer``, formerly
FastMCP) and the published ``mcp-server-time``. The demo model calls a tool when asked
``use TOOL {json}`` and answers "The tool returned: ..." with the tool's result.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, clean_env, hector, rpc, v03_message
from tests.fakes.trace_receivers import OTLPGrpcReceiver

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 30.0


def write_config(tmp_path: Path, tools: str, agent_tools: str) -> Path:
    path = tmp_path / "hector.yaml"
    path.write_text(
        f"tools:\n{tools}\nagents:\n  assistant:\n    llm: default\n    tools: {agent_tools}\n",
        encoding="utf-8",
    )
    return path


def stdio_tool(key: str, mode: str = "stdio", extra: str = "") -> str:
    return (
        f"  {key}:\n    type: mcp\n    command: {sys.executable}\n"
        f"    args: [-m, tests.fakes.mcp_server, {mode}]\n    cwd: {ROOT}\n{extra}"
    )


def ask(server: Server, text: str) -> str:
    """The agent's reply over A2A."""
    task = rpc(server.url + "/", "message/send", v03_message(text))["result"]
    return str(task["artifacts"][0]["parts"][0]["text"])


def chat(server: Server, text: str) -> str:
    """The agent's reply over ``/v1/chat/completions``."""
    response = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "assistant", "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def health(server: Server) -> dict[str, Any]:
    return httpx.get(server.url + "/health", timeout=10).json()["components"]  # type: ignore[no-any-return]


def pid_in(reply: str) -> int:
    match = re.search(r"\(pid (\d+)\)", reply)
    assert match, reply
    return int(match.group(1))


def gone(pid: int) -> bool:
    """True once ``pid`` has exited and been reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(")")[-1].split()[0] == "Z"


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


ORDER = 'use shop_order {"customer": "ann", "items": [{"sku": "ABC-1", "quantity": 3}]}'


def test_stdio_server_tools_round_trip_and_survive_a_killed_child(
    serve: Any, tmp_path: Path
) -> None:
    config = write_config(tmp_path, stdio_tool("shop", extra="    timeout: 5\n"), "[shop]")
    server: Server = serve("-c", str(config), "--metrics")
    assert health(server)["tools.shop"]["state"] == "up"

    first = ask(server, ORDER)
    assert first.startswith("The tool returned: order for ann: 3 items"), first
    assert chat(server, 'use shop_forecast {"city": "Oslo"}') == (
        'The tool returned: {"city": "Oslo", "celsius": 21.5}'
    )
    # the demo model takes images: the tool's PNG reaches it as a file, not as text
    assert chat(server, "use shop_pixel") == "The tool returned: Files: image/png (68 bytes)."
    assert "the warehouse is on fire" in ask(server, "use shop_broken")
    assert "timed out after 5s" in ask(server, 'use shop_nap {"seconds": 30}')
    invalid = ask(server, 'use shop_order {"customer": "ann", "items": [{"sku": "x"}]}')
    assert "invalid arguments: items[0].quantity: required" in invalid, invalid

    tools_before = health(server)["tools.shop"]["tools"]
    assert ask(server, "use shop_grow") == "The tool returned: grown"
    wait_for(lambda: health(server)["tools.shop"]["tools"] == tools_before + 1, "the re-listing")
    assert ask(server, "use shop_extra") == "The tool returned: extra here"  # the agent has it

    child = pid_in(first)
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: gone(child), "the killed child")
    second = ask(server, ORDER)
    assert second.startswith("The tool returned: order for ann: 3 items"), second
    restarted = pid_in(second)
    assert restarted != child
    part = health(server)["tools.shop"]
    assert part["state"] == "up" and part["outages"] == 1, part
    warnings = [line for line in server.log_lines() if "MCP server shop is down" in line]
    assert len(warnings) == 1, warnings
    scrape = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'hector_mcp_session_up{server="shop"} 1.0' in scrape
    calls = 'hector_mcp_requests_total{method="tools/call",server="shop",status="%s"}'
    assert calls % "success" in scrape and calls % "error" in scrape  # the killed child's
    assert 'hector_mcp_requests_total{method="initialize",server="shop",status="success"} 2.0' in (
        scrape
    )

    assert server.stop() == 0
    wait_for(lambda: gone(restarted), "the child reaped at shutdown")
    assert not any("Traceback" in line for line in server.log_lines())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_http_mcp(port: int, mode: str = "http") -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.mcp_server", mode, str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        assert proc.poll() is None, "the MCP HTTP server exited"
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, "the MCP HTTP server")
    return proc


@pytest.fixture
def http_mcp() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A port and the MCP HTTP server processes started on it (stopped after the test)."""
    procs: list[subprocess.Popen[bytes]] = []
    port = free_port()
    procs.append(start_http_mcp(port))
    yield port, procs
    for proc in procs:
        proc.kill()
        proc.wait(10)


def test_streamable_http_server_round_trip_and_reconnect_after_restart(
    serve: Any, tmp_path: Path, http_mcp: tuple[int, list[subprocess.Popen[bytes]]]
) -> None:
    port, procs = http_mcp
    tools = f"  shop:\n    type: mcp\n    url: http://127.0.0.1:{port}/mcp\n    timeout: 10\n"
    server: Server = serve("-c", str(write_config(tmp_path, tools, "[shop.order]")))
    first = chat(server, ORDER)
    assert first.startswith("The tool returned: order for ann: 3 items"), first
    assert "offered" not in ask(server, "use shop_forecast") and "demo" in ask(
        server, "use shop_forecast"
    )  # only shop.order is listed for the agent

    procs[0].kill()
    procs[0].wait(10)
    for _ in range(2):  # the outage reaches the model as a tool error; the run goes on
        down = ask(server, ORDER)
        assert down.startswith("The tool returned: error: MCP server shop "), down
    part = health(server)["tools.shop"]
    assert part["status"] == "degraded" and part["state"] == "down" and part["error"], part

    procs.append(start_http_mcp(port))
    replies: list[str] = []

    def answered() -> bool:  # calls within the reconnect backoff get a tool error
        replies.append(ask(server, ORDER))
        return "order for ann" in replies[-1]

    wait_for(answered, "a tool result after the restart")
    assert pid_in(replies[-1]) == procs[1].pid
    part = health(server)["tools.shop"]
    assert part["state"] == "up" and part["outages"] == 1, part
    warnings = [line for line in server.log_lines() if "MCP server shop is down" in line]
    assert len(warnings) == 1, warnings


def test_mcp_server_time_over_stdio(serve: Any, tmp_path: Path) -> None:
    tools = (
        f"  time:\n    type: mcp\n    command: {sys.executable}\n    args: [-m, mcp_server_time]\n"
    )
    server: Server = serve("-c", str(write_config(tmp_path, tools, "[time.get_current_time]")))
    reply = ask(server, 'use time_get_current_time {"timezone": "Asia/Tokyo"}')
    assert reply.startswith("The tool returned: "), reply
    result = json.loads(reply.removeprefix("The tool returned: "))
    assert result["timezone"] == "Asia/Tokyo" and result["datetime"].endswith("+09:00")


@pytest.mark.parametrize(
    ("tools", "agent_tools", "error"),
    [
        (
            stdio_tool("shop", "silent", "    timeout: 2\n"),
            "[shop]",
            "tools.shop.command: MCP server did not start: no answer in time",
        ),
        (
            stdio_tool("shop", "garbage", "    timeout: 2\n"),
            "[shop]",
            "tools.shop.command: MCP server did not start: no answer in time",
        ),
        (
            stdio_tool("shop"),
            "[shop.nope]",
            "agents.assistant.tools[0]: toolset 'shop' offers no tool 'nope' (offers: broken, fore",
        ),
        (
            stdio_tool("a", extra="    prefix: ''\n") + stdio_tool("b", extra="    prefix: ''\n"),
            "[a, b]",
            "tools.b.prefix: tool name 'broken' is also a tool of toolset 'a'; set a prefix",
        ),
        (
            "  x:\n    type: mcp\n    url: http://127.0.0.1:1/mcp\n    command: y\n",
            "[x]",
            "tools.x: type: mcp needs either command (stdio) or url (streamable HTTP)",
        ),
        ("  shop:\n    type: mcp\n    command: y\n", "[shop.a.b, nope.x]", "unknown tool 'nope.x'"),
        (
            "  x:\n    type: mcp\n    url: http://127.0.0.1:1/mcp\n    env: {A: b}\n",
            "[x]",
            "tools.x: env: only for a stdio MCP server (command)",
        ),
        (
            "  x:\n    type: mcp\n    command: y\n    transport: sse\n",
            "[x]",
            "tools.x: transport: only for an MCP server with url",
        ),
    ],
    ids=[
        "never_initializes",
        "invalid_json_rpc",
        "unknown_tool",
        "name_clash",
        "both",
        "unknown",
        "stdio_field_on_http",
        "transport_on_stdio",
    ],
)
def test_bad_mcp_servers_are_one_line_config_errors(
    tmp_path: Path, tools: str, agent_tools: str, error: str
) -> None:
    config = write_config(tmp_path, tools, agent_tools)
    result = hector("serve", "-c", str(config), "--port", "0", env=clean_env(), timeout=60)
    assert result.returncode != 0
    assert error in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_zero_config_tools_and_mcp_url(
    serve: Any, http_mcp: tuple[int, list[subprocess.Popen[bytes]]]
) -> None:
    port, _ = http_mcp
    url = f"http://127.0.0.1:{port}/mcp"
    server: Server = serve("--tools", "all", "--mcp-url", url)
    assert ask(server, 'use calculator {"expression": "2 + 3"}') == "The tool returned: 5"
    assert ask(server, ORDER.replace("shop_order", "order")).startswith(
        "The tool returned: order for ann: 3 items"
    )
    by_env: Server = serve(env=clean_env(HECTOR_MCP_URL=url, HECTOR_TOOLS="current_time"))
    assert ask(by_env, 'use forecast {"city": "Rome"}') == (
        'The tool returned: {"city": "Rome", "celsius": 21.5}'
    )
    assert ask(by_env, "use current_time").startswith("The tool returned: 20")
    assert "demo model" in ask(by_env, 'use calculator {"expression": "1"}')  # not offered


EVERYTHING = (
    Path(
        os.environ.get("HECTOR_MCP_EVERYTHING_DIR", Path.home() / ".cache/hector-py/mcp-everything")
    )
    / "node_modules/@modelcontextprotocol/server-everything/dist/index.js"
)


@pytest.fixture
def everything() -> Iterator[int]:
    """``@modelcontextprotocol/server-everything`` (npm, installed by .ci/run) over
    streamable HTTP on 127.0.0.1; yields its port."""
    if not EVERYTHING.exists():
        if os.environ.get("CI"):
            raise AssertionError(f"{EVERYTHING} missing: .ci/run installs it")
        pytest.skip("server-everything is not installed (see .ci/run)")
    port = free_port()
    proc = subprocess.Popen(
        [
            "node",
            "-r",
            str(ROOT / "tests/fakes/localhost_only.cjs"),
            str(EVERYTHING),
            "streamableHttp",
        ],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        assert proc.poll() is None, "server-everything exited"
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, "server-everything")
        yield port
    finally:
        proc.kill()
        proc.wait(10)


def test_server_everything_over_streamable_http(
    serve: Any, tmp_path: Path, everything: int
) -> None:
    tools = f"  everything:\n    type: mcp\n    url: http://127.0.0.1:{everything}/mcp\n"
    config = write_config(tmp_path, tools, "[everything.echo]")
    server: Server = serve("-c", str(config))
    assert chat(server, 'use everything_echo {"message": "hi there"}') == (
        "The tool returned: Echo: hi there"
    )
    assert health(server)["tools.everything"]["tools"] > 1  # its whole list, one offered


def test_mcp_tool_spans_name_the_tool_type_and_server(serve: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, stdio_tool("shop"), "[shop, calculator]")
    with OTLPGrpcReceiver() as receiver:
        server: Server = serve("-c", str(config), "--tracing-endpoint", receiver.endpoint)
        ask(server, 'use shop_forecast {"city": "Oslo"}')
        ask(server, 'use calculator {"expression": "1 + 1"}')
        spans = receiver.wait_for(
            lambda got: (
                {"execute_tool shop_forecast", "execute_tool calculator"} <= {s.name for s in got}
            ),
            what="both tool spans",
        )
    by_name = {s.name: s.attributes for s in spans}
    mcp_span = by_name["execute_tool shop_forecast"]
    assert mcp_span["gen_ai.tool.type"] == "mcp" and mcp_span["mcp.server.name"] == "shop"
    builtin = by_name["execute_tool calculator"]
    assert builtin["gen_ai.tool.type"] == "function" and "mcp.server.name" not in builtin


def test_mcp_env_and_headers_are_secrets(tmp_path: Path) -> None:
    tools = stdio_tool("shop", extra="    env: {SHOP_TOKEN: env-s3cret}\n") + (
        "  docs:\n    type: mcp\n    url: http://127.0.0.1:1/mcp\n"
        "    headers: {Authorization: Bearer hdr-s3cret}\n"
    )
    result = hector("validate", str(write_config(tmp_path, tools, "[shop]")), "--print-config")
    assert result.returncode == 0, result.stderr
    assert "SHOP_TOKEN" in result.stdout and "Authorization" in result.stdout
    assert "env-s3cret" not in result.stdout and "hdr-s3cret" not in result.stdout


def test_legacy_sse_server(serve: Any, tmp_path: Path) -> None:
    port = free_port()
    proc = start_http_mcp(port, "sse")
    try:
        tools = (
            f"  shop:\n    type: mcp\n    url: http://127.0.0.1:{port}/sse\n"
            "    transport: sse\n    timeout: 10\n"
        )
        server: Server = serve("-c", str(write_config(tmp_path, tools, "[shop.order]")))
        reply = ask(server, ORDER)
        assert reply.startswith("The tool returned: order for ann: 3 items"), reply
        assert health(server)["tools.shop"]["transport"] == "sse"
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("mode", ["http", "sse"])
def test_trace_context_reaches_an_http_mcp_server_as_headers(
    serve: Any, tmp_path: Path, mode: str
) -> None:
    """The MCP server's HTTP layer sees ``traceparent`` as a header, equal to the SDK's
    ``_meta`` entry and in the trace of the ``execute_tool`` span."""
    port = free_port()
    proc = start_http_mcp(port, mode)
    try:
        path = "/mcp" if mode == "http" else "/sse\n    transport: sse"
        tools = f"  shop:\n    type: mcp\n    url: http://127.0.0.1:{port}{path}\n"
        config = write_config(tmp_path, tools, "[shop.trace]")
        with OTLPGrpcReceiver() as receiver:
            server: Server = serve("-c", str(config), "--tracing-endpoint", receiver.endpoint)
            reply = ask(server, "use shop_trace {}")
            spans = receiver.wait_for(
                lambda got: any(s.name == "execute_tool shop_trace" for s in got),
                what="the tool span",
            )
    finally:
        proc.kill()
        proc.wait(10)
    found = re.search(r"header=(\S+) meta=(\S+)", reply)
    assert found, reply
    header, meta = found.groups()
    assert header == meta != "None"
    tool_span = next(s for s in spans if s.name == "execute_tool shop_trace")
    assert header.split("-")[1] == tool_span.trace_id
