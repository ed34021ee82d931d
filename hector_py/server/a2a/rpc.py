"""JSON-RPC over HTTP for A2A: parse, pick the method and dialect, answer.

v1.0 (``SendMessage``, ``A2A-Version: 1.0``, ``TASK_STATE_*``) and v0.3 (``message/send``,
``kind`` fields, lower-case states; a request without ``A2A-Version`` is 0.3). Each method
belongs to one dialect; an unsupported ``A2A-Version``, or one that does not match the
method's dialect, gets -32009 (as the a2a-sdk reference server does). A notification (no
``id``) is run and answered with an empty 204.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from hector_py.agent.runner import Agent
from hector_py.server.a2a.card import SUPPORTED_VERSIONS
from hector_py.server.a2a.errors import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    VERSION_NOT_SUPPORTED,
    RpcError,
)
from hector_py.server.a2a.methods import METHODS
from hector_py.server.a2a.params import Call
from hector_py.server.a2a.streams import VERSION_HEADER
from hector_py.server.auth import request_tenant
from hector_py.server.state import STATE


def requested_version(request: web.Request) -> str:
    """The A2A version the caller asked for (no header = 0.3); -32009 if unsupported."""
    raw = request.headers.get(VERSION_HEADER, "").strip()
    if not raw:
        return "0.3"
    major_minor = ".".join(raw.split(".")[:2])
    if major_minor not in SUPPORTED_VERSIONS:
        raise RpcError(
            VERSION_NOT_SUPPORTED,
            f"A2A version '{raw}' is not supported; use one of: {', '.join(SUPPORTED_VERSIONS)}",
        )
    return major_minor


def _response(
    request_id: Any, *, result: Any = None, error: dict[str, Any] | None = None, version: str
) -> web.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    return web.Response(
        body=orjson.dumps(body),
        content_type="application/json",
        headers={VERSION_HEADER: version},
    )


async def dispatch(request: web.Request, agent: Agent) -> web.StreamResponse:
    """Answer one JSON-RPC request to ``agent``, counting it in the agent's metrics."""
    response, ok = await _answer(request, agent)
    request.app[STATE].telemetry.agent_request(agent.name, ok)
    return response


async def _answer(request: web.Request, agent: Agent) -> tuple[web.StreamResponse, bool]:
    """The JSON-RPC response (or SSE stream) and whether it carries a result, not an error."""
    request_id: Any = None
    notification = False
    details = request.headers.get(VERSION_HEADER, "").startswith("1.")
    version = "1.0" if details else "0.3"
    try:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise RpcError(PARSE_ERROR, "parse error: body is not valid JSON") from None
        if not isinstance(body, dict):
            raise RpcError(INVALID_REQUEST, "invalid request: expected a JSON-RPC object")
        notification = "id" not in body
        raw_id = body.get("id")
        if isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
            request_id = raw_id
        elif raw_id is not None:
            raise RpcError(INVALID_REQUEST, "invalid request: id must be a string or number")
        method = body.get("method")
        if body.get("jsonrpc") != "2.0" or not isinstance(method, str):
            raise RpcError(
                INVALID_REQUEST, "invalid request: need jsonrpc '2.0' and a string method"
            )
        version = requested_version(request)
        if method not in METHODS:
            raise RpcError(METHOD_NOT_FOUND, f"method '{method}' not found")
        dialect, handler = METHODS[method]
        if dialect.version != version:
            raise RpcError(
                VERSION_NOT_SUPPORTED,
                f"method '{method}' is A2A {dialect.version} but the request is A2A {version}"
                f" (send header {VERSION_HEADER}: {dialect.version}; no header means 0.3)",
            )
        params = body.get("params", {})
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "params: must be an object")
        state = request.app[STATE]
        call = Call(request, state, agent, dialect, params, request_id, request_tenant(request))
        result = await handler(call)
        if isinstance(result, web.StreamResponse):
            return result, True
        if notification:
            return web.Response(status=204), True
        return _response(request_id, result=result, version=version), True
    except RpcError as exc:
        if notification:
            return web.Response(status=204), False
        return _response(request_id, error=exc.body(details=details), version=version), False
