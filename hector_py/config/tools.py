"""``tools:``: built-in settings and declared tools."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from hector_py.config.base import Strict

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
_HTTP_TOOL_FIELDS: tuple[str, ...] = ("method", "url", "parameters", "headers")
_HTTP_REQUEST_FIELDS: tuple[str, ...] = ("allowed_hosts", "methods")


class ToolConfig(Strict):
    """A tool agents enable by name: a built-in's settings, or a declared HTTP tool.

    Built-ins are configured under their own name (``http_request`` is off until it is
    listed here). ``type: http`` declares a new tool that calls ``url``.
    """

    type: Literal["builtin", "http"] = "builtin"
    description: str | None = Field(None, description="Shown to the model (default: built-in's).")
    enabled: bool = True
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
        None, description="type http: URL template; {name} is replaced by that argument, encoded."
    )
    parameters: dict[str, Any] | None = Field(
        None,
        description="type http: JSON Schema of the arguments (default: each {name} a string).",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="type http: request headers (secret values)."
    )

    @model_validator(mode="after")
    def _fields_match_type(self) -> ToolConfig:
        if self.type == "http":
            if self.url is None:
                raise PydanticCustomError("tool_config", "url is required for type: http")
            misplaced, owner = _HTTP_REQUEST_FIELDS, "the http_request built-in"
        else:
            misplaced, owner = _HTTP_TOOL_FIELDS, "type: http"
        extra = [name for name in misplaced if name in self.model_fields_set]
        if extra:
            raise PydanticCustomError(
                "tool_config",
                "{fields}: only for {owner}",
                {"fields": ", ".join(extra), "owner": owner},
            )
        return self
