"""Tools agents may call: the registry, the built-ins and config-declared HTTP tools.

Built-ins: ``current_time``, ``calculator`` and ``random_number`` are always available;
``http_request`` is off until ``tools.http_request`` lists its ``allowed_hosts``.
``type: http`` entries under ``tools:`` declare HTTP tools from a URL template.
``ToolRegistry.execute`` turns every failure into a ``ToolOutcome`` for the model.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import math
import operator
import random
import string
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from yarl import URL

from hector_py.config.loader import ConfigError, Problem
from hector_py.config.model import Config, ToolConfig
from hector_py.llm.base import ToolSpec
from hector_py.observability.redact import Redactor

log = logging.getLogger("hector.tools")


class ToolError(Exception):
    """A tool failed; the message is one readable line, safe to show to the model."""


class Tool(Protocol):
    """Something the model can call."""

    spec: ToolSpec
    timeout: float

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run with validated ``arguments``; raise ``ToolError`` on failure."""
        ...


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call gives back to the model; ``error_type`` is set when not ``ok``."""

    ok: bool
    output: str
    error_type: str | None = None


class ToolRegistry:
    """The tools of a config, by name."""

    def __init__(self, tools: Mapping[str, Tool]) -> None:
        self.tools = dict(tools)

    def for_agent(self, names: list[str]) -> list[Tool]:
        """The tools called ``names`` (``build_registry`` has checked that they exist)."""
        return [self.tools[name] for name in names]

    async def execute(self, tool: Tool, arguments: dict[str, Any]) -> ToolOutcome:
        """Validate ``arguments``, run ``tool`` within its timeout, and report the outcome.

        Never raises, except ``asyncio.CancelledError`` when the caller is cancelled.
        """
        name = tool.spec.name
        problems = schema_errors(tool.spec.parameters, arguments)
        if problems:
            return ToolOutcome(
                False, "error: invalid arguments: " + "; ".join(problems), "invalid_arguments"
            )
        try:
            async with asyncio.timeout(tool.timeout):
                output = await tool.call(arguments)
        except TimeoutError:
            return ToolOutcome(False, f"error: {name} timed out after {tool.timeout:g}s", "timeout")
        except ToolError as exc:
            return ToolOutcome(False, f"error: {exc}", "ToolError")
        except Exception as exc:
            log.warning("tool %s failed", name, exc_info=True)
            return ToolOutcome(False, f"error: {name} failed: {type(exc).__name__}", "exception")
        return ToolOutcome(True, output)


def schema_errors(schema: Mapping[str, Any], value: Any, where: str = "") -> list[str]:
    """Why ``value`` does not match ``schema``; empty when it does.

    Understands the JSON Schema keywords tools use: ``type``, ``enum``, ``properties``,
    ``required``, ``additionalProperties: false`` and ``items``.
    """
    label = where or "arguments"
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_json_type(value, name) for name in names):
            return [f"{label}: expected {' or '.join(names)}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{label}: must be one of {', '.join(map(json.dumps, schema['enum']))}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        prefix = f"{where}." if where else ""
        errors += [
            f"{prefix}{key}: required" for key in schema.get("required", ()) if key not in value
        ]
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(properties[key], item, prefix + key)
            elif schema.get("additionalProperties") is False:
                errors.append(f"{prefix}{key}: unknown argument")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(schema["items"], item, f"{label}[{index}]")
    return errors


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def _is_json_type(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return name == "boolean"
    return name in _JSON_TYPES and isinstance(value, _JSON_TYPES[name])


# --- built-ins without network -------------------------------------------------------------

ToolFunction = Callable[[dict[str, Any]], Awaitable[str]]


@dataclass
class FunctionTool:
    """A tool backed by an async function of its arguments."""

    spec: ToolSpec
    timeout: float
    function: ToolFunction

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the function."""
        return await self.function(arguments)


async def current_time(arguments: dict[str, Any]) -> str:
    """The current time in ``timezone`` (default UTC), ISO 8601."""
    name = arguments.get("timezone", "UTC")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown timezone '{name}' (use an IANA name such as Europe/Paris)"
        ) from None
    return datetime.now(zone).isoformat(timespec="seconds")


Number = int | float
MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 4096

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
CALCULATOR_HELP = (
    "numbers, + - * / // % **, parentheses, "
    + ", ".join(sorted(_CONSTANTS))
    + " and "
    + ", ".join(sorted(_FUNCTIONS))
)


def calculate(expression: str) -> Number:
    """Evaluate arithmetic safely: the expression is parsed with ``ast``, never ``eval``-ed."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError):
        raise ToolError(f"invalid expression; allowed: {CALCULATOR_HELP}") from None
    try:
        return _evaluate(tree.body)
    except OverflowError:
        raise ToolError("result too large") from None
    except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:
        raise ToolError(f"cannot evaluate: {exc}") from None


def _evaluate(node: ast.expr) -> Number:
    match node:
        case ast.Constant(value=int() | float() as value) if not isinstance(value, bool):
            return value
        case ast.Name(id=name) if name in _CONSTANTS:
            return _CONSTANTS[name]
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _UNARY[type(op)](_evaluate(operand))
        case ast.BinOp(left=left, op=ast.Pow(), right=right):
            return _checked(_power(_evaluate(left), _evaluate(right)))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            return _checked(_BINARY[type(op)](_evaluate(left), _evaluate(right)))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
            return _checked(_FUNCTIONS[name](*map(_evaluate, args)))
    raise ToolError(f"{ast.unparse(node)!r} is not allowed; allowed: {CALCULATOR_HELP}")


def _power(base: Number, exponent: Number) -> Any:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and abs(base) > 1
        and (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS
    ):
        raise ToolError("result too large")
    return base**exponent


def _checked(value: Any) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError("result too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("result too large")
    return value


async def calculator(arguments: dict[str, Any]) -> str:
    """The value of ``expression``."""
    return str(calculate(arguments["expression"]))


async def random_number(arguments: dict[str, Any]) -> str:
    """A random integer between ``min`` and ``max`` inclusive (default 1 and 100)."""
    low, high = arguments.get("min", 1), arguments.get("max", 100)
    if low > high:
        raise ToolError("min must not be greater than max")
    return str(random.randint(low, high))


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


BUILTINS: dict[str, tuple[str, dict[str, Any], ToolFunction]] = {
    "current_time": (
        "The current date and time (ISO 8601) in a time zone.",
        _object({"timezone": {"type": "string", "description": "IANA name, default UTC"}}, []),
        current_time,
    ),
    "calculator": (
        f"Evaluate an arithmetic expression: {CALCULATOR_HELP}.",
        _object(
            {"expression": {"type": "string", "description": "e.g. (2 + 3) * 4"}}, ["expression"]
        ),
        calculator,
    ),
    "random_number": (
        "A random integer between min and max inclusive (default 1 and 100).",
        _object({"min": {"type": "integer"}, "max": {"type": "integer"}}, []),
        random_number,
    ),
}


# --- HTTP ------------------------------------------------------------------------------------

HTTP_REQUEST = "http_request"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class _Reply:
    status: int
    text: str
    location: str | None


async def _fetch(
    session: aiohttp.ClientSession, method: str, url: URL, limit: int, **kwargs: Any
) -> _Reply:
    """One request without following redirects; the body is cut to ``limit`` bytes."""
    try:
        async with session.request(method, url, allow_redirects=False, **kwargs) as response:
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > limit:
                    break
            text = body[:limit].decode("utf-8", errors="replace")
            if len(body) > limit:
                text += f"\n[truncated to {limit} bytes]"
            return _Reply(response.status, text, response.headers.get("Location"))
    except aiohttp.ClientError as exc:
        raise ToolError(f"request failed: {exc}") from None


@dataclass
class HttpRequestTool:
    """``http_request``: any URL on ``allowed_hosts`` (``host`` for any port, or ``host:port``)."""

    spec: ToolSpec
    timeout: float
    session: aiohttp.ClientSession
    allowed: frozenset[tuple[str, int | None]]
    methods: frozenset[str]
    limit: int

    async def call(self, arguments: dict[str, Any]) -> str:
        """Send the request; return the status line and body (and ``Location`` on redirects)."""
        try:
            url = URL(arguments["url"])
            port = url.port
        except ValueError as exc:
            raise ToolError(f"invalid url: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ToolError("url must be an absolute http:// or https:// URL")
        host = url.host.lower()
        if (host, port) not in self.allowed and (host, None) not in self.allowed:
            raise ToolError(f"host '{url.authority}' is not allowed")
        method = arguments.get("method", "GET")
        if method not in self.methods:
            raise ToolError(f"method {method} is not allowed")
        headers = arguments.get("headers", {})
        if not all(isinstance(value, str) for value in headers.values()):
            raise ToolError("header values must be strings")
        reply = await _fetch(
            self.session,
            method,
            url,
            self.limit,
            headers=headers,
            data=arguments.get("body"),
        )
        where = f"\nLocation: {reply.location}" if reply.location else ""
        return f"HTTP {reply.status}{where}\n\n{reply.text}"


@dataclass
class HttpTool:
    """A declared HTTP tool: ``url`` placeholders are filled with URL-encoded arguments.

    Other arguments go as a JSON body (POST, PUT, PATCH) or as query parameters.
    """

    spec: ToolSpec
    timeout: float
    session: aiohttp.ClientSession
    config: ToolConfig
    template: str
    placeholders: frozenset[str]

    async def call(self, arguments: dict[str, Any]) -> str:
        """Send the request; return the body of a 2xx response, else raise ``ToolError``."""
        rest = {k: v for k, v in arguments.items() if k not in self.placeholders}
        extra: dict[str, Any] = (
            {"json": rest}
            if self.config.method in _BODY_METHODS
            else {"params": {k: _url_value(v) for k, v in rest.items()}}
        )
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        reply = await _fetch(
            self.session,
            self.config.method,
            URL(_render(self.template, arguments)),
            self.config.max_response_bytes,
            headers=headers,
            **extra,
        )
        # an upstream that echoes our credentials must not hand them to the model
        text = Redactor(secrets=headers.values())(reply.text)
        if not 200 <= reply.status < 300:
            excerpt = " ".join(text.split())[:200]
            raise ToolError(
                f"HTTP {reply.status}: {excerpt}" if excerpt else f"HTTP {reply.status}"
            )
        return text


def _url_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _render(template: str, arguments: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` replaced by the URL-encoded argument."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            value = _url_value(arguments[name])
            if value in (".", ".."):
                raise ToolError(f"argument '{name}' must not be '{value}'")
            out.append(quote(value, safe=""))
    return "".join(out)


# --- building the registry from the config ---------------------------------------------------


class _Invalid(Exception):
    """A bad tool definition: the field (relative to the tool) and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def build_registry(config: Config, session: aiohttp.ClientSession) -> ToolRegistry:
    """The tools of ``config``: built-ins plus enabled ``tools:`` entries.

    Raises ``ConfigError`` for a bad tool definition or an agent that lists a tool that
    is unknown, disabled, or ``http_request`` while it is off.
    """
    problems: list[Problem] = []
    broken: set[str] = set()
    tools: dict[str, Tool] = {
        name: _builtin(name, ToolConfig()) for name in BUILTINS if name not in config.tools
    }
    for name, tool_config in config.tools.items():
        if not tool_config.enabled:
            continue
        try:
            tools[name] = _build_tool(name, tool_config, session)
        except _Invalid as exc:
            problems.append(Problem(f"tools.{name}.{exc.field}", str(exc), "config"))
            broken.add(name)
    for agent_name, agent in config.agents.items():
        for index, tool_name in enumerate(agent.tools):
            if tool_name not in tools and tool_name not in broken:
                path = f"agents.{agent_name}.tools[{index}]"
                problems.append(Problem(path, _why_missing(tool_name, config, tools), "config"))
    if problems:
        raise ConfigError(problems)
    return ToolRegistry(tools)


def _why_missing(name: str, config: Config, tools: Mapping[str, Tool]) -> str:
    if name in config.tools:
        return f"tool '{name}' is disabled (tools.{name}.enabled)"
    if name == HTTP_REQUEST:
        return "http_request is off; enable it under tools.http_request with allowed_hosts"
    return f"unknown tool '{name}' (known: {', '.join(sorted(tools)) or 'none'})"


def _build_tool(name: str, config: ToolConfig, session: aiohttp.ClientSession) -> Tool:
    if config.type == "http":
        return _http_tool(name, config, session)
    if name == HTTP_REQUEST:
        return _http_request_tool(config, session)
    if name not in BUILTINS:
        known = ", ".join(sorted([*BUILTINS, HTTP_REQUEST]))
        raise _Invalid(
            "type", f"'{name}' is not a built-in ({known}); use type: http to declare one"
        )
    for field, owner in (
        ("allowed_hosts", HTTP_REQUEST),
        ("methods", HTTP_REQUEST),
        ("max_response_bytes", "HTTP tools"),
    ):
        if field in config.model_fields_set:
            raise _Invalid(field, f"only for {owner}")
    return _builtin(name, config)


def _builtin(name: str, config: ToolConfig) -> FunctionTool:
    description, parameters, function = BUILTINS[name]
    spec = ToolSpec(name, config.description or description, parameters)
    return FunctionTool(spec, config.timeout, function)


def _http_request_tool(config: ToolConfig, session: aiohttp.ClientSession) -> HttpRequestTool:
    if not config.allowed_hosts:
        raise _Invalid("allowed_hosts", f"required: the hosts {HTTP_REQUEST} may call")
    allowed = set()
    for index, entry in enumerate(config.allowed_hosts):
        try:
            url = URL("//" + entry)
            port = url.explicit_port
        except ValueError:
            url, port = URL(), None
        if not url.host or url.user is not None or url.path not in ("", "/") or url.query_string:
            raise _Invalid(f"allowed_hosts[{index}]", f"'{entry}' is not a host or host:port")
        allowed.add((url.host.lower(), port))
    hosts = ", ".join(config.allowed_hosts)
    methods = sorted(set(config.methods))
    parameters = _object(
        {
            "url": {"type": "string", "description": f"http(s) URL on one of: {hosts}"},
            "method": {"type": "string", "enum": methods},
            "headers": {"type": "object", "description": "request headers (string values)"},
            "body": {"type": "string", "description": "request body"},
        },
        ["url"],
    )
    description = config.description or (
        f"Make an HTTP request ({', '.join(methods)}) to {hosts}; returns status and body."
    )
    spec = ToolSpec(HTTP_REQUEST, description, parameters)
    return HttpRequestTool(
        spec,
        config.timeout,
        session,
        frozenset(allowed),
        frozenset(methods),
        config.max_response_bytes,
    )


def _http_tool(name: str, config: ToolConfig, session: aiohttp.ClientSession) -> HttpTool:
    template = config.url
    assert template is not None  # ToolConfig requires url for type: http
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise _Invalid("url", f"invalid template: {exc}") from None
    placeholders = list(dict.fromkeys(field for _, field, _, _ in fields if field is not None))
    for _, field, format_spec, conversion in fields:
        if field is not None and (not field.isidentifier() or format_spec or conversion):
            raise _Invalid("url", f"placeholder '{{{field}}}' must be a plain {{name}}")
    try:
        origins = {
            (url.scheme, url.raw_authority)
            for url in (
                URL(_render(template, dict.fromkeys(placeholders, dummy))) for dummy in "ab"
            )
        }
    except ValueError as exc:
        raise _Invalid("url", f"invalid URL: {exc}") from None
    scheme, authority = next(iter(origins))
    if scheme not in ("http", "https") or not authority:
        raise _Invalid("url", "must be an absolute http:// or https:// URL")
    if len(origins) > 1:
        raise _Invalid("url", "placeholders are allowed only in the path and query")
    if config.parameters is None:
        parameters = _object({p: {"type": "string"} for p in placeholders}, placeholders)
    else:
        parameters = config.parameters
        if parameters.get("type") != "object":
            raise _Invalid("parameters.type", "must be object")
        required = parameters.get("required", [])
        missing = [p for p in placeholders if p not in required]
        if missing:
            raise _Invalid("parameters.required", f"must list the URL placeholders {missing}")
    description = config.description or f"The {name} HTTP API."
    spec = ToolSpec(name, description, parameters)
    return HttpTool(spec, config.timeout, session, config, template, frozenset(placeholders))
