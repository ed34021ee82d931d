"""HTTP tools: the ``http_request`` built-in and ``type: http`` tools declared in the config."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from hector_py.agent.tools.builtins import object_schema
from hector_py.agent.tools.registry import ToolDefinitionError, ToolError
from hector_py.config.tools import ToolConfig
from hector_py.llm.base import ToolSpec
from hector_py.observability.redact import Redactor

HTTP_REQUEST = "http_request"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# headers that pick the target or control the connection: the model may not set them
# (a Host: header would reach another virtual host than the allowed one)
_REFUSED_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
    }
)


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
    kind: ClassVar[str] = "http"
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
        refused = sorted(name for name in headers if name.strip().lower() in _REFUSED_HEADERS)
        if refused:
            raise ToolError(f"header {', '.join(refused)} may not be set")
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
    kind: ClassVar[str] = "http"
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


def http_request_tool(config: ToolConfig, session: aiohttp.ClientSession) -> HttpRequestTool:
    if not config.allowed_hosts:
        raise ToolDefinitionError("allowed_hosts", f"required: the hosts {HTTP_REQUEST} may call")
    allowed = set()
    for index, entry in enumerate(config.allowed_hosts):
        try:
            url = URL("//" + entry)
            port = url.explicit_port
        except ValueError:
            url, port = URL(), None
        if not url.host or url.user is not None or url.path not in ("", "/") or url.query_string:
            raise ToolDefinitionError(
                f"allowed_hosts[{index}]", f"'{entry}' is not a host or host:port"
            )
        allowed.add((url.host.lower(), port))
    hosts = ", ".join(config.allowed_hosts)
    methods = sorted(set(config.methods))
    parameters = object_schema(
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


def http_tool(name: str, config: ToolConfig, session: aiohttp.ClientSession) -> HttpTool:
    template = config.url
    assert template is not None  # ToolConfig requires url for type: http
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ToolDefinitionError("url", f"invalid template: {exc}") from None
    placeholders = list(dict.fromkeys(field for _, field, _, _ in fields if field is not None))
    for _, field, format_spec, conversion in fields:
        if field is not None and (not field.isidentifier() or format_spec or conversion):
            raise ToolDefinitionError("url", f"placeholder '{{{field}}}' must be a plain {{name}}")
    try:
        origins = {
            (url.scheme, url.raw_authority)
            for url in (
                URL(_render(template, dict.fromkeys(placeholders, dummy))) for dummy in "ab"
            )
        }
    except ValueError as exc:
        raise ToolDefinitionError("url", f"invalid URL: {exc}") from None
    scheme, authority = next(iter(origins))
    if scheme not in ("http", "https") or not authority:
        raise ToolDefinitionError("url", "must be an absolute http:// or https:// URL")
    if len(origins) > 1:
        raise ToolDefinitionError("url", "placeholders are allowed only in the path and query")
    if config.parameters is None:
        parameters = object_schema({p: {"type": "string"} for p in placeholders}, placeholders)
    else:
        parameters = config.parameters
        if parameters.get("type") != "object":
            raise ToolDefinitionError("parameters.type", "must be object")
        required = parameters.get("required", [])
        missing = [p for p in placeholders if p not in required]
        if missing:
            raise ToolDefinitionError(
                "parameters.required", f"must list the URL placeholders {missing}"
            )
    description = config.description or f"The {name} HTTP API."
    spec = ToolSpec(name, description, parameters)
    return HttpTool(spec, config.timeout, session, config, template, frozenset(placeholders))
