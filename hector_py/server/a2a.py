"""A2A over JSON-RPC: agent cards, ``/agents``, and both protocol dialects on one endpoint.

v1.0 (``SendMessage``, ``A2A-Version: 1.0``, ``TASK_STATE_*``) and v0.3 (``message/send``,
``kind`` fields, lower-case states; a request without ``A2A-Version`` is 0.3). Each method
belongs to one dialect; an unsupported ``A2A-Version``, or one that does not match the
method's dialect, gets -32009 (as the a2a-sdk reference server does).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from hector_py import __version__
from hector_py.agent.budgets import BudgetExceeded
from hector_py.agent.guardrails import GuardrailBlocked
from hector_py.agent.runner import Agent, TextDelta, ToolCallFinished, ToolCallStarted
from hector_py.agent.stores import ChatTurn, Task, TaskQuery, new_id
from hector_py.agent.tasks import Execution, StatusChanged
from hector_py.server.a2a_wire import V03, V1, Dialect
from hector_py.server.auth import request_tenant
from hector_py.server.sse import open_sse, send_events
from hector_py.server.state import STATE, ServerState

log = logging.getLogger("hector.a2a")

VERSION_HEADER = "A2A-Version"
SUPPORTED_VERSIONS = ("1.0", "0.3")
CARD_MAX_AGE_S = 300
MAX_PAGE_SIZE = 100
MAX_TOKEN_DIGITS = 9  # page tokens are offsets; sqlite takes 64-bit integers

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
UNSUPPORTED_OPERATION = -32004
VERSION_NOT_SUPPORTED = -32009
GUARDRAIL_BLOCKED = -32010
BUDGET_EXCEEDED = -32011


class RpcError(Exception):
    """A JSON-RPC error to send back to the caller."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class Call:
    """One JSON-RPC call, resolved to its agent and dialect."""

    request: web.Request
    state: ServerState
    agent: Agent
    dialect: Dialect
    params: dict[str, Any]
    request_id: Any


Result = dict[str, Any] | web.StreamResponse
Method = Callable[[Call], Awaitable[Result]]


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


def _field(params: dict[str, Any], path: str, kind: type | tuple[type, ...]) -> Any:
    """``params[path]`` (dotted) if present; -32602 naming the field if of the wrong type."""
    value: Any = params
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    if value is not None and wrong:
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise RpcError(INVALID_PARAMS, f"params.{path}: must be {_TYPE_WORDS.get(names, names)}")
    return value


_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "dict": "an object",
    "bool": "a boolean",
    "list": "a list",
}


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
    if not "".join(texts).strip():
        raise RpcError(INVALID_PARAMS, "params.message: has no text (only text parts are read)")
    return "\n".join(texts)


def _checked_length(text: str, limit: int) -> str:
    if len(text) > limit:
        raise RpcError(
            INVALID_PARAMS,
            f"params.message: {len(text)} characters is over the limit of {limit} "
            "(server.max_message_chars)",
        )
    return text


def _history_length(call: Call, path: str) -> int | None:
    length = _field(call.params, path, int)
    if length is not None and length < 0:
        raise RpcError(INVALID_PARAMS, f"params.{path}: must be >= 0")
    return length  # type: ignore[no-any-return]


async def _start(call: Call, *, stream: bool) -> Execution:
    text = _checked_length(
        _text_of(call.params.get("message")), call.state.config.server.max_message_chars
    )
    if call.agent.guardrails is not None:
        try:
            text = call.agent.guardrails.check_input(text)
        except GuardrailBlocked as exc:
            raise RpcError(GUARDRAIL_BLOCKED, str(exc)) from None
    tenant = request_tenant(call.request)
    try:
        reservation = await call.state.budgets.reserve(tenant)
    except BudgetExceeded as exc:
        raise RpcError(BUDGET_EXCEEDED, str(exc)) from None
    context_id = _field(call.params, "message.contextId", str) or new_id()
    message_id = _field(call.params, "message.messageId", str) or new_id()
    _field(call.params, "configuration", dict)
    task = Task(
        id=new_id(),
        context_id=context_id,
        agent=call.agent.name,
        history=[ChatTurn(message_id, "user", text)],
        tenant=tenant,
    )
    call.state.budgets.bind(reservation, task.id)  # settled when the task ends
    try:
        return await call.state.tasks.start(call.agent, task, text, stream=stream)
    except BaseException:
        await asyncio.shield(call.state.budgets.release(task.id))
        raise


async def send_message(call: Call) -> Result:
    """``SendMessage`` / ``message/send``: run the agent; return the task when it ends
    (or at once with ``returnImmediately: true`` / ``blocking: false``)."""
    history_length = _history_length(call, "configuration.historyLength")
    immediately = _field(call.params, "configuration.returnImmediately", bool)
    blocking = _field(call.params, "configuration.blocking", bool)
    execution = await _start(call, stream=False)
    if immediately or blocking is False:
        return call.dialect.task_result(execution.task, history_length)
    try:
        task = await execution.wait()
    except asyncio.CancelledError:  # the client left: stop its run too
        await asyncio.shield(call.state.tasks.cancel(execution.task.id))
        raise
    return call.dialect.task_result(task, history_length)


async def stream_message(call: Call) -> Result:
    """``SendStreamingMessage`` / ``message/stream``: SSE from the task to its end."""
    execution = await _start(call, stream=True)
    return await _stream(call, execution, started=True)


async def subscribe(call: Call) -> Result:
    """``SubscribeToTask`` / ``tasks/resubscribe``: SSE of a running task from now on."""
    task = await _find_task(call)
    execution = call.state.tasks.follow(task)
    if execution is None:
        raise RpcError(UNSUPPORTED_OPERATION, f"task '{task.id}' is finished; use GetTask")
    return await _stream(call, execution, started=False)


async def _stream(call: Call, execution: Execution, *, started: bool) -> web.StreamResponse:
    """Relay an execution's events as SSE; a client that leaves cancels the task.

    For a run just ``started``, the task goes out with its first event (working), after one
    more turn of the loop: the run's model request, queued by then, leaves first."""
    dialect, task = call.dialect, execution.task
    subscription = execution.subscribe()
    response: web.StreamResponse | None = None
    pending = [dialect.task_result(task)]

    async def flush() -> None:
        nonlocal response
        if response is None:
            if started:
                await asyncio.sleep(0)
            response = await open_sse(call.request, _version_headers(call))
        await send_events(response, *(_rpc_event(call, result) for result in pending))
        pending.clear()

    streamed_text = False
    try:
        if not started:
            await flush()
        async for event in subscription:
            if isinstance(event, TextDelta):
                pending.append(
                    dialect.artifact_update(task, event.text, append=streamed_text, last=False)
                )
                streamed_text = True
            elif isinstance(event, ToolCallStarted | ToolCallFinished):
                pending.append(dialect.tool_update(task, event))
            elif isinstance(event, StatusChanged):
                if streamed_text and event.task.state.terminal:
                    pending.append(dialect.artifact_update(task, None, append=True, last=True))
                pending.append(dialect.status_update(task))
            await flush()
        if response is None:  # the run ended without an event (its store failed)
            await flush()
    except (ConnectionError, asyncio.CancelledError) as exc:
        log.info("client left a stream; cancelling task", extra={"task_id": task.id})
        await asyncio.shield(call.state.tasks.cancel(task.id))
        if isinstance(exc, asyncio.CancelledError):
            raise
    finally:
        subscription.close()
    assert response is not None
    return response


def _rpc_event(call: Call, result: dict[str, Any]) -> bytes:
    """A JSON-RPC result as an SSE payload."""
    return orjson.dumps({"jsonrpc": "2.0", "id": call.request_id, "result": result})


async def _find_task(call: Call) -> Task:
    task_id = _field(call.params, "id", str)
    if not task_id:
        raise RpcError(INVALID_PARAMS, "params.id: required")
    task = await call.state.store.get_task(request_tenant(call.request), task_id)
    if task is None or task.agent != call.agent.name:
        raise RpcError(TASK_NOT_FOUND, f"task '{task_id}' not found")
    return task


async def get_task(call: Call) -> Result:
    """``GetTask`` / ``tasks/get``."""
    history_length = _history_length(call, "historyLength")
    return call.dialect.task(await _find_task(call), history_length)


async def cancel_task(call: Call) -> Result:
    """``CancelTask`` / ``tasks/cancel``: stop a running task; finished ones cannot be."""
    task = await _find_task(call)
    canceled = await call.state.tasks.cancel(task.id)
    if canceled is None:
        state = call.dialect.state(task.state)
        raise RpcError(TASK_NOT_CANCELABLE, f"task '{task.id}' is already {state}")
    return call.dialect.task(canceled)


async def list_tasks(call: Call) -> Result:
    """``ListTasks`` (1.0): this agent's tasks, newest first, paged."""
    context_id = _field(call.params, "contextId", str)
    status_name = _field(call.params, "status", str)
    status = call.dialect.parse_state(status_name) if status_name else None
    if status_name and status is None:
        raise RpcError(INVALID_PARAMS, f"params.status: unknown state '{status_name}'")
    page_size = _field(call.params, "pageSize", int) or 50
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise RpcError(INVALID_PARAMS, f"params.pageSize: must be 1..{MAX_PAGE_SIZE}")
    token = _field(call.params, "pageToken", str) or "0"
    if not token.isdigit() or len(token) > MAX_TOKEN_DIGITS:
        raise RpcError(INVALID_PARAMS, "params.pageToken: not a token from a previous page")
    history_length = _history_length(call, "historyLength")
    offset = int(token)
    query = TaskQuery(
        request_tenant(call.request), call.agent.name, context_id, status, None, page_size, offset
    )
    tasks, total = await call.state.store.list_tasks(query)
    more = offset + len(tasks) < total
    return {
        "tasks": [call.dialect.task(task, history_length) for task in tasks],
        "nextPageToken": str(offset + len(tasks)) if more else "",
        "pageSize": page_size,
        "totalSize": total,
    }


METHODS: dict[str, tuple[Dialect, Method]] = {
    "SendMessage": (V1, send_message),
    "SendStreamingMessage": (V1, stream_message),
    "GetTask": (V1, get_task),
    "ListTasks": (V1, list_tasks),
    "CancelTask": (V1, cancel_task),
    "SubscribeToTask": (V1, subscribe),
    "message/send": (V03, send_message),
    "message/stream": (V03, stream_message),
    "tasks/get": (V03, get_task),
    "tasks/cancel": (V03, cancel_task),
    "tasks/resubscribe": (V03, subscribe),
}


def _version_headers(call: Call) -> dict[str, str]:
    return {VERSION_HEADER: call.dialect.version}


def _rpc_response(
    request_id: Any,
    *,
    result: Any = None,
    error: RpcError | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        body["error"] = {"code": error.code, "message": error.message}
    else:
        body["result"] = result
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


def _agent_or_404(state: ServerState, name: str) -> Agent:
    agent = state.agents.get(name)
    if agent is None:
        raise web.HTTPNotFound(reason=f"agent '{name}' not found")
    return agent


async def _dispatch(request: web.Request, agent: Agent) -> web.StreamResponse:
    response, ok = await _answer(request, agent)
    request.app[STATE].telemetry.agent_request(agent.name, ok)
    return response


async def _answer(request: web.Request, agent: Agent) -> tuple[web.StreamResponse, bool]:
    """The JSON-RPC response (or SSE stream) and whether it carries a result, not an error."""
    request_id: Any = None
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
        call = Call(request, request.app[STATE], agent, dialect, params, request_id)
        result = await handler(call)
        if isinstance(result, web.StreamResponse):
            return result, True
        return _rpc_response(request_id, result=result, headers=_version_headers(call)), True
    except RpcError as exc:
        return _rpc_response(request_id, error=exc), False


def agent_card(request: web.Request, agent: Agent) -> dict[str, Any]:
    """The agent card; URLs use ``server.public_url`` or the host the caller reached."""
    state = request.app[STATE]
    base = (state.config.server.public_url or f"{request.scheme}://{request.host}").rstrip("/")
    url = f"{base}/agents/{agent.name}"
    name = agent.config.name or agent.name
    return {
        "name": name,
        "description": agent.config.description,
        "version": __version__,
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": version}
            for version in SUPPORTED_VERSIONS
        ],
        "url": url,
        "protocolVersion": "0.3.0",
        "preferredTransport": "JSONRPC",
        "capabilities": {"streaming": True, "pushNotifications": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {
                "id": agent.name,
                "name": name,
                "description": agent.config.description,
                "tags": ["chat", *agent.tools],
            }
        ],
    }


def _card_response(request: web.Request, agent: Agent) -> web.Response:
    """The card with ``ETag``/``Cache-Control``; 304 when the caller's copy is current."""
    body = orjson.dumps(agent_card(request, agent))
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={CARD_MAX_AGE_S}"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


async def well_known_card(request: web.Request) -> web.Response:
    """The default agent's card, or the card of ``{name}`` under ``/agents/{name}/``."""
    state = request.app[STATE]
    name = request.match_info.get("name", state.config.default_agent_name)
    return _card_response(request, _agent_or_404(state, name))


async def get_agent(request: web.Request) -> web.Response:
    """``GET /agents/{name}``: that agent's card."""
    return _card_response(request, _agent_or_404(request.app[STATE], request.match_info["name"]))


async def list_agents(request: web.Request) -> web.Response:
    """``GET /agents``: every agent's card."""
    cards = [agent_card(request, agent) for agent in request.app[STATE].agents.values()]
    return web.json_response({"agents": cards, "total": len(cards)})


async def rpc_agent(request: web.Request) -> web.StreamResponse:
    """``POST /agents/{name}``: JSON-RPC for that agent."""
    agent = _agent_or_404(request.app[STATE], request.match_info["name"])
    return await _dispatch(request, agent)


async def rpc_default(request: web.Request) -> web.StreamResponse:
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
