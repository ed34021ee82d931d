"""A2A call parameters: typed field access and the incoming message, checked (-32602 naming
the field; its parts are read by :mod:`hector_py.server.a2a.parts`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hector_py.agent.runner import Agent
from hector_py.llm.base import Attachment, accepted_types
from hector_py.server.a2a.errors import INVALID_PARAMS, RpcError
from hector_py.server.a2a.parts import read_parts
from hector_py.server.a2a_wire import Dialect
from hector_py.server.state import ServerState

MAX_ID_CHARS = 256
_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "dict": "an object",
    "bool": "a boolean",
    "list": "a list",
}


@dataclass(frozen=True, slots=True)
class Call:
    """One JSON-RPC call, resolved to its agent, dialect and caller's tenant."""

    request: web.Request
    state: ServerState
    agent: Agent
    dialect: Dialect
    params: dict[str, Any]
    request_id: Any
    tenant: str
    rest: bool = False
    """Over the HTTP+JSON binding: results and errors go out bare, not in JSON-RPC."""


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """The user message of a send, checked."""

    text: str
    files: tuple[Attachment, ...]
    message_id: str
    context_id: str | None
    task_id: str | None


def field(params: dict[str, Any], path: str, kind: type | tuple[type, ...]) -> Any:
    """``params[path]`` (dotted) if present; -32602 naming the field if of the wrong type."""
    value: Any = params
    for key in path.split("."):
        value = _member(value, key)
    wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    if value is not None and wrong:
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise RpcError(INVALID_PARAMS, f"params.{path}: must be {_TYPE_WORDS.get(names, names)}")
    return value


def _member(value: Any, key: str) -> Any:
    """``value[key]``, or under the proto field name (``taskId`` -> ``task_id``), which
    ProtoJSON parsers accept too."""
    if not isinstance(value, dict):
        return None
    if key in value:
        return value[key]
    return value.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key))


def identifier(params: dict[str, Any], path: str, *, required: bool = False) -> str | None:
    """An id field: a non-empty string of at most :data:`MAX_ID_CHARS` characters."""
    value: str | None = field(params, path, str)
    if value is None or value == "":
        if required:
            raise RpcError(INVALID_PARAMS, f"params.{path}: required")
        return None
    if len(value) > MAX_ID_CHARS:
        raise RpcError(
            INVALID_PARAMS, f"params.{path}: {len(value)} characters, over {MAX_ID_CHARS}"
        )
    return value


def history_length(params: dict[str, Any], path: str) -> int | None:
    """A ``historyLength`` parameter (>= 0) if given."""
    length: int | None = field(params, path, int)
    if length is not None and length < 0:
        raise RpcError(INVALID_PARAMS, f"params.{path}: must be >= 0")
    return length


async def incoming_message(call: Call) -> IncomingMessage:
    """The send's ``message``: ``messageId``, ``role`` (the dialect's names) and non-empty
    ``parts`` required; v0.3 parts need ``kind``; files the model cannot take -32005."""
    message = call.params.get("message")
    if not isinstance(message, dict):
        raise RpcError(INVALID_PARAMS, "params.message: required, an object")
    message_id = identifier(call.params, "message.messageId", required=True)
    assert message_id is not None
    roles = (call.dialect.user_role, call.dialect.agent_role)
    if message.get("role") not in roles:
        raise RpcError(INVALID_PARAMS, f"params.message.role: must be one of {', '.join(roles)}")
    parts = message.get("parts")
    if not isinstance(parts, list) or not parts:
        raise RpcError(INVALID_PARAMS, "params.message.parts: must be a non-empty list")
    accepts = accepted_types(call.agent.llm)
    text, files = await read_parts(call.dialect, parts, call.state.config.a2a.files, accepts)
    if not text.strip() and not files:
        raise RpcError(INVALID_PARAMS, "params.message: has no text or file")
    limit = call.state.config.server.max_message_chars
    if len(text) > limit:
        raise RpcError(
            INVALID_PARAMS,
            f"params.message: {len(text)} characters is over the limit of {limit} "
            "(server.max_message_chars)",
        )
    return IncomingMessage(
        text=text,
        files=files,
        message_id=message_id,
        context_id=identifier(call.params, "message.contextId"),
        task_id=identifier(call.params, "message.taskId"),
    )
