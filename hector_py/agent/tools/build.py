"""``build_registry``: the tools of a config, every kind through one ``Tool`` protocol.

A new kind of single tool plugs in with a branch in ``_build_tool`` returning a ``Tool``;
a group found at start-up (``type: mcp``) is a ``Toolset`` (``_build_toolset``).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from hector_py.agent.tools.builtins import BUILTINS, builtin
from hector_py.agent.tools.http import HTTP_REQUEST, http_request_tool, http_tool
from hector_py.agent.tools.registry import Tool, ToolDefinitionError, ToolRegistry, Toolset
from hector_py.config.delegation import PREFIX as AGENT_PREFIX
from hector_py.config.delegation import REMOTE as REMOTE_PREFIX
from hector_py.config.loader import ConfigError, Problem
from hector_py.config.model import Config
from hector_py.config.tools import ToolConfig
from hector_py.observability.telemetry import Telemetry


def build_registry(
    config: Config, session: aiohttp.ClientSession, telemetry: Telemetry | None = None
) -> ToolRegistry:
    """The tools of ``config``: built-ins plus enabled ``tools:`` entries.

    Raises ``ConfigError`` for a bad tool definition or an agent that lists a tool that
    is unknown, disabled, or ``http_request`` while it is off. Toolsets are not started:
    ``ToolRegistry.start`` connects them and checks the ``key.tool`` names agents list.
    """
    problems: list[Problem] = []
    broken: set[str] = set()
    tools: dict[str, Tool] = {
        name: builtin(name, ToolConfig()) for name in BUILTINS if name not in config.tools
    }
    toolsets: dict[str, Toolset] = {}
    for name, tool_config in config.tools.items():
        if not tool_config.enabled:
            continue
        try:
            if tool_config.type == "mcp":
                # the mcp SDK takes about a second to import: only when a server is declared
                from hector_py.agent.tools.mcp import McpToolset

                toolsets[name] = McpToolset(name, tool_config, telemetry)
            else:
                tools[name] = _build_tool(name, tool_config, session)
        except ToolDefinitionError as exc:
            problems.append(Problem(f"tools.{name}.{exc.field}", str(exc), "config"))
            broken.add(name)
    wanted = []
    for agent_name, agent in config.agents.items():
        for index, tool_name in enumerate(agent.tools):
            path = f"agents.{agent_name}.tools[{index}]"
            key, dot, member = tool_name.partition(".")
            if tool_name in tools or tool_name in toolsets or tool_name in broken:
                continue
            if tool_name.startswith((AGENT_PREFIX, REMOTE_PREFIX)):  # agents: build_agents adds
                continue
            if dot and key in toolsets:
                wanted.append((path, key, member))
            elif not (dot and key in broken):
                problems.append(Problem(path, _why_missing(tool_name, config, tools), "config"))
    if problems:
        raise ConfigError(problems)
    return ToolRegistry(tools, toolsets, wanted)


def _why_missing(name: str, config: Config, tools: Mapping[str, Tool]) -> str:
    if name in config.tools:
        return f"tool '{name}' is disabled (tools.{name}.enabled)"
    if name == HTTP_REQUEST:
        return "http_request is off; enable it under tools.http_request with allowed_hosts"
    return f"unknown tool '{name}' (known: {', '.join(sorted(tools)) or 'none'})"


def _build_tool(name: str, config: ToolConfig, session: aiohttp.ClientSession) -> Tool:
    if config.type == "http":
        return http_tool(name, config, session)
    if name == HTTP_REQUEST:
        return http_request_tool(config, session)
    if name not in BUILTINS:
        known = ", ".join(sorted([*BUILTINS, HTTP_REQUEST]))
        raise ToolDefinitionError(
            "type", f"'{name}' is not a built-in ({known}); use type: http to declare one"
        )
    for field, owner in (
        ("allowed_hosts", HTTP_REQUEST),
        ("methods", HTTP_REQUEST),
        ("max_response_bytes", "HTTP tools"),
    ):
        if field in config.model_fields_set:
            raise ToolDefinitionError(field, f"only for {owner}")
    return builtin(name, config)
