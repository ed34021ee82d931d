"""A2A over JSON-RPC: agent cards, ``/agents``, and both protocol dialects on one endpoint.

v1.0 (``SendMessage``, ``A2A-Version: 1.0``, ``TASK_STATE_*``) and v0.3 (``message/send``,
``kind`` fields, lower-case states; a request without ``A2A-Version`` is 0.3). Each method
belongs to one dialect; an unsupported ``A2A-Version``, or one that does not match the
method's dialect, gets -32009 (as the a2a-sdk reference server does).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from hector_py import __version__
from hector_py.agent.runner import Agent, run_task
from hector_py.agent.store import ChatTurn, Task, new_id
from hector_py.server.state import STATE, ServerState

log = logging.getLogger("hector.a2a")

VERSION_HEADER = "A2A-Version"
SUPPORTED_VERSIONS = ("1.0", "0.3")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
VERSION_NOT_SUPPORTED = -32009


class RpcError(Exception):
    """A JSON-RPC error to send back to the caller."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@dataclass(frozen=True)
class Dialect:
    """How one protocol version names roles and states and shapes parts and results."""

    version: str
    user_role: str
    agent_role: str
    kinds: bool  # v0.3 tags objects with "kind"

    def state(self, state: str) -> str:
        """The wire name of a task state."""
        return f"TASK_STATE_{state.upper()}" if self.version == "1.0" else state

    def part(self, text: str) -> dict[str, Any]:
        """A text part."""
        return {"kind": "text", "text": text} if self.kinds else {"text": text}

    def message(self, turn: ChatTurn, task: Task) -> dict[str, Any]:
        """One history message."""
        out: dict[str, Any] = {
            "messageId": turn.id,
            "role": self.user_role if turn.role == "user" else self.agent_role,
            "parts": [self.part(turn.text)],
            "contextId": task.context_id,
            "taskId": task.id,
        }
        return {"kind": "message", **out} if self.kinds else out

    def task(self, task: Task, history_length: int | None = None) -> dict[str, Any]:
        """A task object."""
        status: dict[str, Any] = {
            "state": self.state(task.state.value),
            "timestamp": _rfc3339(task.updated_at),
        }
        if task.error:
            error_turn = ChatTurn(new_id(), "agent", task.error)
            status["message"] = self.message(error_turn, task)
        history = task.history if history_length is None else task.history[-history_length:]
        out: dict[str, Any] = {
            "id": task.id,
            "contextId": task.context_id,
            "status": status,
            "history": [self.message(turn, task) for turn in history]
            if history_length != 0
            else [],
        }
        if task.reply is not None:
            out["artifacts"] = [
                {
                    "artifactId": f"{task.id}-reply",
                    "name": "reply",
                    "parts": [self.part(task.reply)],
                }
            ]
        return {"kind": "task", **out} if self.kinds else out

    def send_result(self, task: Task, history_length: int | None) -> dict[str, Any]:
        """The result of a blocking send."""
        rendered = self.task(task, history_length)
        return rendered if self.kinds else {"task": rendered}


def _rfc3339(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


V1 = Dialect("1.0", user_role="ROLE_USER", agent_role="ROLE_AGENT", kinds=False)
V03 = Dialect("0.3", user_role="user", agent_role="agent", kinds=True)

Handler = Callable[[ServerState, Agent, Dialect, dict[str, Any]], Awaitable[Any]]


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


def _text_of(message: Any) -> str:
    """The text of an incoming user message; -32602 naming the field when malformed."""
    if not isinstance(message, dict):
        raise RpcError(INVALID_PARAMS, "params.message: must be an object")
    parts = message.get("parts")
    if not isinstance(parts, list) or not parts:
        raise RpcError(INVALID_PARAMS, "params.message.parts: must be a non-empty list")
    texts = []
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            raise RpcError(INVALID_PARAMS, f"params.message.parts[{index}]: must be an object")
        text = part.get("text")
        if text is not None and not isinstance(text, str):
            raise RpcError(INVALID_PARAMS, f"params.message.parts[{index}].text: must be a string")
        if text:
            texts.append(text)
    if not texts or not "".join(texts).strip():
        raise RpcError(INVALID_PARAMS, "params.message: has no text (only text parts are read)")
    return "\n".join(texts)


def _optional_str(params: dict[str, Any], *path: str) -> str | None:
    value: Any = params
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is not None and not isinstance(value, str):
        raise RpcError(INVALID_PARAMS, f"params.{'.'.join(path)}: must be a string")
    return value


async def send_message(
    state: ServerState, agent: Agent, dialect: Dialect, params: dict[str, Any]
) -> Any:
    """``SendMessage`` / ``message/send``: run the agent and return the finished task."""
    message = params.get("message")
    text = _text_of(message)
    assert isinstance(message, dict)
    context_id = _optional_str(params, "message", "contextId") or new_id()
    message_id = _optional_str(params, "message", "messageId") or new_id()
    config = params.get("configuration") or {}
    history_length = config.get("historyLength") if isinstance(config, dict) else None
    if history_length is not None and (
        not isinstance(history_length, int)
        or isinstance(history_length, bool)
        or history_length < 0
    ):
        raise RpcError(
            INVALID_PARAMS, "params.configuration.historyLength: must be an integer >= 0"
        )
    task = Task(
        id=new_id(),
        context_id=context_id,
        agent=agent.name,
        history=[ChatTurn(message_id, "user", text)],
    )
    await run_task(agent, state.store, task, text)
    return dialect.send_result(task, history_length)


async def get_task(
    state: ServerState, agent: Agent, dialect: Dialect, params: dict[str, Any]
) -> Any:
    """``GetTask`` / ``tasks/get``."""
    task_id = _optional_str(params, "id")
    if not task_id:
        raise RpcError(INVALID_PARAMS, "params.id: required")
    task = await state.store.get_task(task_id)
    if task is None or task.agent != agent.name:
        raise RpcError(TASK_NOT_FOUND, f"task '{task_id}' not found")
    history_length = params.get("historyLength")
    return dialect.task(task, history_length if isinstance(history_length, int) else None)


async def cancel_task(
    state: ServerState, agent: Agent, dialect: Dialect, params: dict[str, Any]
) -> Any:
    """``CancelTask`` / ``tasks/cancel``: blocking sends finish before they return, so a
    known task is always already terminal."""
    task = await get_task(state, agent, dialect, params)
    raise RpcError(TASK_NOT_CANCELABLE, f"task '{task['id']}' is already finished")


METHODS: dict[str, tuple[Dialect, Handler]] = {
    "SendMessage": (V1, send_message),
    "GetTask": (V1, get_task),
    "CancelTask": (V1, cancel_task),
    "message/send": (V03, send_message),
    "tasks/get": (V03, get_task),
    "tasks/cancel": (V03, cancel_task),
}


def _rpc_response(
    request_id: Any,
    *,
    result: Any = None,
    error: RpcError | None = None,
    version: str | None = None,
) -> web.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        body["error"] = {"code": error.code, "message": error.message}
        if error.data is not None:
            body["error"]["data"] = error.data
    else:
        body["result"] = result
    headers = {VERSION_HEADER: version} if version else None
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


def _agent_or_404(state: ServerState, name: str) -> Agent:
    agent = state.agents.get(name)
    if agent is None:
        raise web.HTTPNotFound(reason=f"agent '{name}' not found")
    return agent


async def _dispatch(request: web.Request, agent: Agent) -> web.Response:
    state = request.app[STATE]
    request_id: Any = None
    version: str | None = None
    try:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise RpcError(PARSE_ERROR, "parse error: body is not valid JSON") from None
        if not isinstance(body, dict):
            raise RpcError(INVALID_REQUEST, "invalid request: expected a JSON-RPC object")
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
        params = body.get("params", {})
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "params: must be an object")
        dialect, handler = METHODS[method]
        if dialect.version != version:
            raise RpcError(
                VERSION_NOT_SUPPORTED,
                f"method '{method}' is A2A {dialect.version} but the request is A2A {version}"
                f" (send header {VERSION_HEADER}: {dialect.version}; no header means 0.3)",
            )
        result = await handler(state, agent, dialect, params)
        return _rpc_response(request_id, result=result, version=version)
    except RpcError as exc:
        return _rpc_response(request_id, error=exc, version=version)


def agent_card(request: web.Request, agent: Agent) -> dict[str, Any]:
    """The agent card; URLs use ``server.public_url`` or the host the caller reached."""
    state = request.app[STATE]
    base = (state.config.server.public_url or f"{request.scheme}://{request.host}").rstrip("/")
    url = f"{base}/agents/{agent.name}"
    return {
        "name": agent.config.name or agent.name,
        "description": agent.config.description,
        "version": __version__,
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": version}
            for version in SUPPORTED_VERSIONS
        ],
        "url": url,
        "protocolVersion": "0.3.0",
        "preferredTransport": "JSONRPC",
        "capabilities": {"streaming": False, "pushNotifications": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {
                "id": agent.name,
                "name": agent.config.name or agent.name,
                "description": agent.config.description,
                "tags": ["chat"],
            }
        ],
    }


async def well_known_card(request: web.Request) -> web.Response:
    """The default agent's card, or the card of ``{name}`` under ``/agents/{name}/``."""
    state = request.app[STATE]
    name = request.match_info.get("name", state.config.default_agent_name)
    return web.json_response(agent_card(request, _agent_or_404(state, name)))


async def get_agent(request: web.Request) -> web.Response:
    """``GET /agents/{name}``: that agent's card."""
    agent = _agent_or_404(request.app[STATE], request.match_info["name"])
    return web.json_response(agent_card(request, agent))


async def list_agents(request: web.Request) -> web.Response:
    """``GET /agents``: every agent's card."""
    cards = [agent_card(request, agent) for agent in request.app[STATE].agents.values()]
    return web.json_response({"agents": cards, "total": len(cards)})


async def rpc_agent(request: web.Request) -> web.Response:
    """``POST /agents/{name}``: JSON-RPC for that agent."""
    agent = _agent_or_404(request.app[STATE], request.match_info["name"])
    return await _dispatch(request, agent)


async def rpc_default(request: web.Request) -> web.Response:
    """``POST /``: JSON-RPC for the default agent."""
    state = request.app[STATE]
    return await _dispatch(request, state.agents[state.config.default_agent_name])


def add_routes(app: web.Application) -> None:
    """Mount the A2A endpoints."""
    for path in (
        "/.well-known/agent-card.json",
        "/.well-known/agent.json",
        "/agents/{name}/.well-known/agent-card.json",
    ):
        app.router.add_get(path, well_known_card)
    app.router.add_get("/agents", list_agents)
    app.router.add_get("/agents/{name}", get_agent)
    app.router.add_post("/agents/{name}", rpc_agent)
    app.router.add_post("/", rpc_default)
