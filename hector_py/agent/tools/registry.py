"""The ``Tool`` and ``Toolset`` protocols, the registry, and argument validation.

Every kind of tool (built-in, HTTP, MCP, knowledge search, ...) implements ``Tool``;
the registry never looks at the kind. A ``Toolset`` is a group of tools found at start-up
(an MCP server): agents list it by its key, or one of its tools as ``key.tool``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jsonschema import exceptions as schema_exceptions
from jsonschema import validators

from hector_py.agent.approval import InputNeeded
from hector_py.config.loader import ConfigError, Problem
from hector_py.llm.base import Attachment, ToolSpec

log = logging.getLogger("hector.tools")


class ToolError(Exception):
    """A tool failed; the message is one readable line, safe to show to the model."""


class ToolDefinitionError(Exception):
    """A bad tool definition: the field (relative to the tool's config entry) and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Tool(Protocol):
    """Something the model can call.

    ``kind`` names the implementation for telemetry (``function``, ``http``, ``mcp``...);
    ``call`` gets arguments already validated against ``spec.parameters``.
    """

    spec: ToolSpec
    timeout: float

    @property
    def kind(self) -> str:
        """The implementation, for telemetry: ``function``, ``http``, ``mcp``..."""
        ...

    async def call(self, arguments: dict[str, Any]) -> str | ToolResult:
        """Run with validated ``arguments``; raise ``ToolError`` on failure."""
        ...


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer that carries files (images an MCP server returned) beside its text."""

    text: str
    files: tuple[Attachment, ...] = ()


class Toolset(Protocol):
    """A group of tools discovered at start-up, such as the tools of one MCP server.
    ``on_change`` is called when the group's tool names change later."""

    on_change: Callable[[], None] | None

    async def start(self) -> None:
        """Connect and discover the tools; raise ``ToolDefinitionError`` if it cannot."""
        ...

    def tools(self) -> Mapping[str, Tool]:
        """The tools discovered, by the short name the server gives them."""
        ...

    async def close(self) -> None:
        """Disconnect and stop what ``start`` started (child processes included)."""
        ...

    def health(self) -> dict[str, Any]:
        """For ``/health``: ``status`` (``ok`` or ``degraded``) and details."""
        ...


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call gives back to the model; ``error_type`` is set when not ``ok``."""

    ok: bool
    output: str
    error_type: str | None = None
    files: tuple[Attachment, ...] = ()


@dataclass
class ToolRegistry:
    """The tools of a config by name, and the toolsets by key.

    ``start`` discovers the toolsets' tools; ``close`` stops them. ``for_agent`` resolves an
    agent's ``tools:`` list (a tool name, a toolset key, or ``key.tool``).
    """

    tools: dict[str, Tool]
    toolsets: dict[str, Toolset] = field(default_factory=dict)
    # (config path, toolset key, tool) for each ``key.tool`` agents list, checked by ``start``
    wanted: list[tuple[str, str, str]] = field(default_factory=list)
    _validators: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> None:
        """Start every toolset; raise ``ConfigError`` naming each that failed or lacks a
        tool an agent lists. Started toolsets are closed again on failure."""
        keys = list(self.toolsets)
        results = await asyncio.gather(
            *(self.toolsets[key].start() for key in keys), return_exceptions=True
        )
        problems = []
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, ToolDefinitionError):
                problems.append(Problem(f"tools.{key}.{result.field}", str(result), "config"))
            elif isinstance(result, BaseException):
                raise result
        owners = {name: "a built-in or tools entry" for name in self.tools}
        for key, toolset in self.toolsets.items():
            for tool in toolset.tools().values():
                name = tool.spec.name
                if name in owners:
                    message = f"tool name '{name}' is also {owners[name]}; set a prefix"
                    problems.append(Problem(f"tools.{key}.prefix", message, "config"))
                owners[name] = f"a tool of toolset '{key}'"
        for path, key, name in self.wanted:
            offered = self.toolsets[key].tools()
            if name not in offered and not any(
                p.path.startswith(f"tools.{key}.") for p in problems
            ):
                known = ", ".join(sorted(offered)) or "none"
                problems.append(
                    Problem(path, f"toolset '{key}' offers no tool '{name}' (offers: {known})", "")
                )
        if problems:
            await self.close()
            raise ConfigError(problems)

    async def close(self) -> None:
        """Close every toolset (never raises)."""
        for key, toolset in self.toolsets.items():
            try:
                await toolset.close()
            except Exception:
                log.warning("closing toolset %s failed", key, exc_info=True)

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever a toolset's tool names change (after start-up)."""
        for toolset in self.toolsets.values():
            toolset.on_change = callback

    def health(self) -> dict[str, dict[str, Any]]:
        """Each toolset's state, as ``/health`` components named ``tools.KEY``."""
        return {f"tools.{key}": toolset.health() for key, toolset in self.toolsets.items()}

    def for_agent(self, names: list[str]) -> list[Tool]:
        """The tools ``names`` stand for (``build_registry`` has checked that they exist)."""
        return [tool for name in names for tool in self._resolve(name)]

    def _resolve(self, name: str) -> Iterator[Tool]:
        if name in self.tools:
            yield self.tools[name]
        elif name in self.toolsets:
            yield from self.toolsets[name].tools().values()
        elif not name.startswith(("agent:", "a2a:")):  # agents as tools are not the registry's
            key, _, tool = name.partition(".")
            offered = self.toolsets[key].tools()
            if tool in offered:
                yield offered[tool]

    async def execute(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        resumed: Callable[[], Awaitable[str | ToolResult]] | None = None,
    ) -> ToolOutcome:
        """Validate ``arguments``, run ``tool`` within its timeout (``resumed``: the paused
        call of a tool whose agent asked for input, going on), and report the outcome.

        Never raises, except ``asyncio.CancelledError`` when the caller is cancelled and
        ``InputNeeded`` when the tool's agent asks for input.
        """
        name = tool.spec.name
        try:
            problems = self._schema_errors(tool.spec, arguments)
        except schema_exceptions.SchemaError as exc:
            return ToolOutcome(
                False, f"error: {name} has an invalid input schema: {exc.message}", "invalid_schema"
            )
        if problems:
            return ToolOutcome(
                False, "error: invalid arguments: " + "; ".join(problems), "invalid_arguments"
            )
        try:
            async with asyncio.timeout(tool.timeout):
                output = await (resumed() if resumed is not None else tool.call(arguments))
        except TimeoutError:
            return ToolOutcome(False, f"error: {name} timed out after {tool.timeout:g}s", "timeout")
        except ToolError as exc:
            return ToolOutcome(False, f"error: {exc}", "ToolError")
        except InputNeeded:
            raise
        except Exception as exc:
            log.warning("tool %s failed", name, exc_info=True)
            return ToolOutcome(False, f"error: {name} failed: {type(exc).__name__}", "exception")
        if isinstance(output, ToolResult):
            return ToolOutcome(True, output.text, files=output.files)
        return ToolOutcome(True, output)

    def _schema_errors(self, spec: ToolSpec, arguments: dict[str, Any]) -> list[str]:
        validator = self._validators.get(spec.name)
        if validator is None or validator.schema is not spec.parameters:
            validator = compile_schema(spec.parameters)
            self._validators[spec.name] = validator
        return schema_errors(validator, arguments)


def compile_schema(schema: dict[str, Any]) -> Any:
    """A validator for ``schema`` (its ``$schema`` picks the draft; default 2020-12).

    Raises ``jsonschema.exceptions.SchemaError`` if ``schema`` is not a valid schema.
    """
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_errors(validator: Any, value: Any) -> list[str]:
    """Why ``value`` does not match the validator's schema, one short line per problem."""
    errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    # jsonschema reports each missing property apart; _describe names them all at once
    return list(dict.fromkeys(_describe(error) for error in errors))


def _describe(error: schema_exceptions.ValidationError) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    prefix = where.lstrip(".")
    inner = prefix + "." if prefix else ""
    value: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    if error.validator == "required":
        return "; ".join(f"{inner}{key}: required" for key in value if key not in instance)
    if error.validator == "additionalProperties" and value is False:
        known = schema.get("properties", {})
        return "; ".join(f"{inner}{key}: unknown argument" for key in instance if key not in known)
    label = prefix or "arguments"
    if error.validator == "type":
        names = [value] if isinstance(value, str) else list(value)
        return f"{label}: expected {' or '.join(names)}"
    return f"{label}: {error.message}"
