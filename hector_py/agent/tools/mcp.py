"""MCP servers as toolsets (``type: mcp``), with the official ``mcp`` SDK's client.

One ``McpToolset`` per server: stdio (``command``, a child process) or streamable HTTP
(``url``). Its tools are discovered at start-up and re-listed when the server says they
changed. A server that dies is noticed by the next call, which reconnects (restarting a
stdio child) and retries once; further attempts back off. One warning per outage.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Literal, TypeVar

import mcp.types as mcp_types
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from hector_py.agent.tools.mcp_http import traced_http_client
from hector_py.agent.tools.registry import ToolDefinitionError, ToolError, ToolResult
from hector_py.config.tools import ToolConfig
from hector_py.llm.base import Attachment, ToolSpec
from hector_py.observability.telemetry import Telemetry

log = logging.getLogger("hector.tools.mcp")

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
MAX_LIST_PAGES = 100
CLOSE_TIMEOUT_S = 5.0
McpState = Literal["starting", "up", "down", "closed"]
_T = TypeVar("_T")


class _OneLineSdkLog(logging.Handler):
    """The SDK's warnings and errors as one line each on our logger, no traceback
    (a server that sends invalid JSON-RPC would otherwise fill the log with them)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            return
        reason = (
            f": {_reason(record.exc_info[1])}" if record.exc_info and record.exc_info[1] else ""
        )
        log.log(record.levelno, "MCP SDK (%s): %s%s", record.name, record.getMessage(), reason)


_sdk_log = logging.getLogger("mcp")
_sdk_log.addHandler(_OneLineSdkLog())
_sdk_log.propagate = False


class McpTool:
    """One tool of an MCP server, called through its toolset's session."""

    kind: ClassVar[str] = "mcp"

    def __init__(self, spec: ToolSpec, toolset: McpToolset, remote_name: str) -> None:
        self.spec = spec
        self.toolset = toolset
        self.remote_name = remote_name
        self.timeout = toolset.config.timeout

    @property
    def server(self) -> str:
        """The toolset key of the server, for telemetry."""
        return self.toolset.key

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        """Call the tool: its text and ``structuredContent`` as text, its images as files."""
        result = await self.toolset.call_tool(self.remote_name, arguments)
        return render_result(result, self.toolset.config.max_response_bytes)


class McpToolset:
    """The tools of one MCP server (see the module docstring)."""

    def __init__(self, key: str, config: ToolConfig, telemetry: Telemetry | None = None) -> None:
        self.key = key
        self.config = config
        self.telemetry = telemetry
        self.prefix = key if config.prefix is None else config.prefix
        self.state: McpState = "starting"
        self.last_error: str | None = None
        self.outages = 0
        self._tools: dict[str, McpTool] = {}
        self.on_change: Callable[[], None] | None = None
        self._client: Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self._backoff = BACKOFF_MIN_S
        self._background: set[asyncio.Task[None]] = set()

    def tools(self) -> dict[str, McpTool]:
        """The server's tools (after ``allow`` / ``deny``), by the server's names."""
        return self._tools

    def health(self) -> dict[str, Any]:
        """State for ``/health``: ``ok`` while connected, else ``degraded`` with the reason."""
        part: dict[str, Any] = {
            "status": "ok" if self.state == "up" else "degraded",
            "state": self.state,
            "transport": "stdio" if self.config.command else self.config.transport,
            "tools": len(self._tools),
            "outages": self.outages,
        }
        if self.state != "up" and self.last_error:
            part["error"] = self.last_error
        return part

    async def start(self) -> None:
        """Connect and list the tools; ``ToolDefinitionError`` in one line if it cannot."""
        try:
            await self._open()
        except Exception as exc:
            await self._disconnect()
            self.last_error = _reason(exc)
            self._set_state("down")
            field = "command" if self.config.command else "url"
            raise ToolDefinitionError(
                field, f"MCP server did not start: {self.last_error}"
            ) from None
        self._set_state("up")

    async def close(self) -> None:
        """Disconnect; a stdio child is terminated and reaped."""
        self.state = "closed"
        for task in self._background:
            task.cancel()
        await self._disconnect()

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        """``tools/call``; reconnects once when the session is found broken."""
        client = await self._ensure()
        try:
            return await self._counted("tools/call", client.call_tool(name, arguments))
        except Exception as exc:
            if _is_protocol_error(exc):
                raise ToolError(f"{self.key}: {_reason(exc)}") from None
            self._mark_down(exc)
        client = await self._ensure()
        try:
            return await self._counted("tools/call", client.call_tool(name, arguments))
        except Exception as exc:
            if not _is_protocol_error(exc):
                self._mark_down(exc)
            raise ToolError(f"MCP server {self.key}: {_reason(exc)}") from None

    async def _counted(self, method: str, request: Awaitable[_T]) -> _T:
        """Await ``request``, counting it in ``mcp_requests_total`` (a cancelled one not)."""
        ok = False
        try:
            result = await request
            ok = True
            return result
        finally:
            if self.telemetry is not None:
                self.telemetry.mcp_request(self.key, method, ok)

    def _set_state(self, state: McpState) -> None:
        self.state = state
        if self.telemetry is not None and state != "closed":
            self.telemetry.mcp_session(self.key, state == "up")

    async def _ensure(self) -> Client:
        async with self._lock:
            if self._client is not None and self.state == "up":
                return self._client
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise ToolError(
                    f"MCP server {self.key} is down ({self.last_error}); retrying in {wait:.1f}s"
                )
            await self._disconnect()
            try:
                await self._open()
            except Exception as exc:
                await self._disconnect()
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
                self._mark_down(exc)
                raise ToolError(f"MCP server {self.key} is unavailable: {_reason(exc)}") from None
            self._backoff, self._retry_at = BACKOFF_MIN_S, 0.0
            if self.state == "down":
                log.info("MCP server %s is back", self.key, extra={"mcp_server": self.key})
            self.last_error = None
            self._set_state("up")
            assert self._client is not None
            return self._client

    def _mark_down(self, exc: BaseException) -> None:
        self.last_error = _reason(exc)
        if self.state == "up":
            self.outages += 1
            log.warning(
                "MCP server %s is down: %s; reconnecting on the next call",
                self.key,
                self.last_error,
                extra={"mcp_server": self.key},
            )
        if self.state != "closed":
            self._set_state("down")
        self._client = None

    async def _open(self) -> None:
        """Connect in a task of its own (the SDK's task groups must exit where they
        entered) and list the tools, within ``timeout``."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Client] = loop.create_future()
        self._stop = asyncio.Event()
        self._runner = asyncio.create_task(self._hold(ready, self._stop))
        async with asyncio.timeout(self.config.timeout):
            self._client = await self._counted("initialize", asyncio.shield(ready))
            await self._list(self._client)

    async def _hold(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        # mode legacy: the initialize handshake (protocol 2025-11-25), which published servers
        # speak; it also brings notifications/tools/list_changed to _on_message
        try:
            async with Client(
                self._transport(), message_handler=self._on_message, mode="legacy"
            ) as client:
                ready.set_result(client)
                await stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the SDK wraps transport failures in ExceptionGroups
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            elif not stop.is_set():
                self._mark_down(exc)

    def _transport(self) -> StdioServerParameters | AbstractAsyncContextManager[Any]:
        if self.config.command is not None:
            return StdioServerParameters(
                command=self.config.command,
                args=self.config.args,
                env={k: v.get_secret_value() for k, v in self.config.env.items()},
                cwd=self.config.cwd,
            )
        assert self.config.url is not None  # ToolConfig requires command or url
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        if self.config.transport == "sse":
            return sse_client(
                self.config.url,
                headers=headers,
                timeout=self.config.timeout,
                httpx_client_factory=traced_http_client,
            )
        return streamable_http_client(
            self.config.url, http_client=traced_http_client(headers=headers)
        )

    async def _disconnect(self) -> None:
        self._client = None
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stop.set()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await runner
        except (TimeoutError, asyncio.CancelledError):
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        except Exception:
            log.debug("MCP server %s: disconnect failed", self.key, exc_info=True)

    async def _list(self, client: Client) -> None:
        found: dict[str, McpTool] = {}
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await self._counted(
                "tools/list", client.list_tools(cursor=cursor, cache_mode="refresh")
            )
            for tool in page.tools:
                if self._wanted(tool.name):
                    found[tool.name] = self._tool(tool)
                    if tool.name in self._tools:  # agents hold this object: update it
                        self._tools[tool.name].spec = found[tool.name].spec
                        found[tool.name] = self._tools[tool.name]
            cursor = page.next_cursor
            if not cursor:
                break
        changed = found.keys() != self._tools.keys()
        self._tools = found
        if changed and self.on_change is not None:
            self.on_change()

    def _wanted(self, name: str) -> bool:
        allow = self.config.allow
        return (allow is None or name in allow) and name not in self.config.deny

    def _tool(self, tool: mcp_types.Tool) -> McpTool:
        exposed = f"{self.prefix}_{tool.name}" if self.prefix else tool.name
        description = tool.description or tool.title or f"{tool.name} (MCP server {self.key})"
        return McpTool(ToolSpec(exposed, description, dict(tool.input_schema)), self, tool.name)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            task = asyncio.create_task(self._relist())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _relist(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            async with asyncio.timeout(self.config.timeout):
                await self._list(client)
            log.info("MCP server %s: tools re-listed (%d)", self.key, len(self._tools))
        except Exception as exc:
            log.warning("MCP server %s: re-listing tools failed: %s", self.key, _reason(exc))


def render_result(result: mcp_types.CallToolResult, limit: int) -> ToolResult:
    """The result for the model, its text cut at ``limit`` bytes; ``ToolError`` if
    ``isError``. Images become files (one over ``limit`` bytes a placeholder).

    ``structuredContent`` is sent as JSON when the server gave no content besides it
    (servers usually put the same JSON in a text item too).
    """
    parts: list[str] = []
    files: list[Attachment] = []
    for item in result.content:
        image = _image(item)
        if image is None:
            parts.append(_content_text(item))
        elif len(image.data) > limit:
            parts.append(f"{image.placeholder()} (over {limit} bytes, not passed on)")
        else:
            files.append(image)
    if not parts and not files and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, ensure_ascii=False)]
    text = "\n".join(parts)
    if result.is_error:
        raise ToolError(" ".join(text.split())[:500] or "the tool reported an error")
    data = text.encode()
    if len(data) > limit:
        text = data[:limit].decode(errors="ignore") + f"\n[truncated to {limit} bytes]"
    return ToolResult(text, tuple(files))


def _image(item: Any) -> Attachment | None:
    """An MCP image content item as a file (``None`` for other items and bad base64)."""
    if not isinstance(item, mcp_types.ImageContent):
        return None
    try:
        return Attachment(item.mime_type, base64.b64decode(item.data, validate=True))
    except (binascii.Error, ValueError):
        return None


def _content_text(item: Any) -> str:
    if isinstance(item, mcp_types.TextContent):
        return item.text
    return f"[{getattr(item, 'type', 'content')} content]"


def _is_protocol_error(exc: BaseException) -> bool:
    """An error the server answered with (the session is fine), not a broken transport."""
    return isinstance(exc, MCPError) and exc.code != mcp_types.CONNECTION_CLOSED


def _reason(exc: BaseException) -> str:
    """One line about ``exc``, unwrapping exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    message = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
