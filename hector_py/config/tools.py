"""``tools:``: built-in settings and declared tools."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from hector_py.config.base import Strict

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
_HTTP_REQUEST_FIELDS = frozenset({"allowed_hosts", "methods", "max_response_bytes"})
# the fields each type may set, beyond description, enabled and timeout
_TYPE_FIELDS: dict[str, frozenset[str]] = {
    "builtin": _HTTP_REQUEST_FIELDS,
    "http": frozenset({"method", "url", "parameters", "headers", "max_response_bytes"}),
    "mcp": frozenset(
        {"command", "args", "env", "cwd", "url", "headers", "allow", "deny", "prefix"}
        | {"max_response_bytes", "transport"}
    ),
}
_COMMON_FIELDS = frozenset({"type", "description", "enabled", "timeout", "require_approval"})


class ToolConfig(Strict):
    """A tool agents enable by name: a built-in's settings, a declared HTTP tool, or an
    MCP server's tools.

    Built-ins are configured under their own name (``http_request`` is off until it is
    listed here). ``type: http`` declares a new tool that calls ``url``. ``type: mcp``
    declares an MCP server (``command`` for stdio, ``url`` for streamable HTTP) whose tools
    agents list all at once by this key, or one by one as ``key.tool``.
    """

    type: Literal["builtin", "http", "mcp"] = "builtin"
    description: str | None = Field(None, description="Shown to the model (default: built-in's).")
    enabled: bool = True
    require_approval: bool = Field(
        False,
        description="A person approves each call first (the A2A task waits in input-required);"
        " for an MCP server, each of its tools.",
    )
    timeout: float = Field(30.0, gt=0, le=3600, description="Seconds before a call is abandoned.")
    max_response_bytes: int = Field(
        65536, gt=0, description="HTTP tools: response bytes kept; the rest is cut off."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="http_request only: hosts it may call, `host` (any port) or `host:port`.",
    )
    methods: tuple[HttpMethod, ...] = Field(
        ("GET", "POST"), min_length=1, description="http_request only: allowed methods."
    )
    method: HttpMethod = Field("GET", description="type http: the request method.")
    url: str | None = Field(
        None,
        description="type http: URL template; {name} is replaced by that argument, encoded. "
        "type mcp: the streamable-HTTP endpoint.",
    )
    parameters: dict[str, Any] | None = Field(
        None,
        description="type http: JSON Schema of the arguments (default: each {name} a string).",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="type http, mcp: request headers (secret values)."
    )
    command: str | None = Field(None, description="type mcp: the stdio server's executable.")
    args: list[str] = Field(default_factory=list, description="type mcp: its arguments.")
    env: dict[str, SecretStr] = Field(
        default_factory=dict, description="type mcp: extra environment (secret values)."
    )
    cwd: str | None = Field(None, description="type mcp: its working directory.")
    transport: Literal["streamable_http", "sse"] = Field(
        "streamable_http", description="type mcp with url: sse for servers that only have it."
    )
    allow: list[str] | None = Field(
        None, description="type mcp: only these of the server's tools (default: all)."
    )
    deny: list[str] = Field(default_factory=list, description="type mcp: never these tools.")
    prefix: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="type mcp: tool names become PREFIX_tool (default: the key; '' for none).",
    )

    @model_validator(mode="after")
    def _fields_match_type(self) -> ToolConfig:
        if self.type == "http" and self.url is None:
            raise PydanticCustomError("tool_config", "url is required for type: http")
        if self.type == "mcp" and (self.url is None) == (self.command is None):
            raise PydanticCustomError(
                "tool_config", "type: mcp needs either command (stdio) or url (streamable HTTP)"
            )
        allowed = _TYPE_FIELDS[self.type] | _COMMON_FIELDS
        extra = sorted(self.model_fields_set - allowed)
        stdio_only = [n for n in ("args", "env", "cwd") if n in self.model_fields_set]
        if self.type == "mcp" and self.url is not None and stdio_only and not extra:
            raise PydanticCustomError(
                "tool_config",
                "{fields}: only for a stdio MCP server (command)",
                {"fields": ", ".join(stdio_only)},
            )
        if self.type == "mcp" and self.command is not None and "transport" in self.model_fields_set:
            raise PydanticCustomError(
                "tool_config", "transport: only for an MCP server with url (stdio has none)"
            )
        if extra:
            owners = [t for t, fields in _TYPE_FIELDS.items() if extra[0] in fields]
            raise PydanticCustomError(
                "tool_config",
                "{fields}: only for {owner}",
                {
                    "fields": ", ".join(extra),
                    "owner": " or ".join(
                        "the http_request built-in" if t == "builtin" else f"type: {t}"
                        for t in owners
                    ),
                },
            )
        return self
