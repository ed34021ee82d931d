"""The HTTP+JSON binding of A2A 1.0, under each agent's URL, on the same method handlers
as JSON-RPC: the request's path, query and body become the method's params, its result is
the response body, and an error is an HTTP status with a ``google.rpc.Status`` body (the
``ErrorInfo`` in ``details``). Streams are SSE whose events are bare ``StreamResponse``
objects.

=======  ==========================================  ===================================
POST     ``/agents/{name}/message:send``             ``SendMessage``
POST     ``/agents/{name}/message:stream``           ``SendStreamingMessage``
GET      ``/agents/{name}/tasks/{id}``               ``GetTask`` (``?historyLength=``)
GET      ``/agents/{name}/tasks``                    ``ListTasks`` (query parameters)
POST     ``/agents/{name}/tasks/{id}:cancel``        ``CancelTask``
GET/POST ``/agents/{name}/tasks/{id}:subscribe``     ``SubscribeToTask``
POST     ``…/tasks/{id}/pushNotificationConfigs``    ``CreateTaskPushNotificationConfig``
GET      ``…/tasks/{id}/pushNotificationConfigs``    ``ListTaskPushNotificationConfigs``
GET      ``…/pushNotificationConfigs/{configId}``    ``GetTaskPushNotificationConfig``
DELETE   ``…/pushNotificationConfigs/{configId}``    ``DeleteTaskPushNotificationConfig``
GET      ``/agents/{name}/extendedAgentCard``        ``GetExtendedAgentCard``
=======  ==========================================  ===================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from hector_py.server.a2a import methods, push
from hector_py.server.a2a.errors import (
    CONTENT_TYPE_NOT_SUPPORTED,
    INVALID_PARAMS,
    PARSE_ERROR,
    VERSION_NOT_SUPPORTED,
    RpcError,
    rest_error,
)
from hector_py.server.a2a.methods import Method
from hector_py.server.a2a.params import Call
from hector_py.server.a2a.rpc import requested_version
from hector_py.server.a2a.streams import VERSION_HEADER
from hector_py.server.a2a_wire import V1
from hector_py.server.auth import request_tenant
from hector_py.server.state import STATE

INTEGERS = ("pageSize", "historyLength")
BOOLEANS = ("includeArtifacts",)
Params = Callable[[web.Request], Awaitable[dict[str, Any]]]


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object the request carries (``{}`` without a body)."""
    raw = await request.read()
    if not raw:
        return {}
    if request.content_type != "application/json":
        raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, "the body needs Content-Type: application/json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RpcError(PARSE_ERROR, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RpcError(INVALID_PARAMS, "the body must be a JSON object")
    return body


def _query(request: web.Request) -> dict[str, Any]:
    """Query parameters as the method's params: numbers and booleans typed."""
    params: dict[str, Any] = {}
    for key, value in request.query.items():
        if key in INTEGERS:
            try:
                params[key] = int(value)
            except ValueError:
                raise RpcError(INVALID_PARAMS, f"{key}: must be an integer") from None
        elif key in BOOLEANS:
            params[key] = value.lower() in ("true", "1")
        else:
            params[key] = value
    return params


async def _from_body(request: web.Request) -> dict[str, Any]:
    return await _body(request)


async def _task(request: web.Request) -> dict[str, Any]:
    return {**_query(request), **await _body(request), "id": request.match_info["id"]}


async def _task_configs(request: web.Request) -> dict[str, Any]:
    return {**_query(request), **await _body(request), "taskId": request.match_info["id"]}


async def _task_config(request: web.Request) -> dict[str, Any]:
    match = request.match_info
    return {**_query(request), "taskId": match["id"], "id": match["config"]}


async def _listing(request: web.Request) -> dict[str, Any]:
    return _query(request)


async def _nothing(request: web.Request) -> dict[str, Any]:
    return {}


def _endpoint(method: Method, params: Params) -> Callable[[web.Request], Awaitable[Any]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        agent = state.agents.get(request.match_info["name"])
        if agent is None:
            raise web.HTTPNotFound(reason=f"agent '{request.match_info['name']}' not found")
        ok = False
        try:
            if request.headers.get(VERSION_HEADER) and requested_version(request) != V1.version:
                raise RpcError(VERSION_NOT_SUPPORTED, "the HTTP+JSON binding is A2A 1.0 only")
            tenant = request_tenant(request)
            call = Call(request, state, agent, V1, await params(request), None, tenant, rest=True)
            result = await method(call)
            ok = True
            if isinstance(result, web.StreamResponse):
                return result
            return web.Response(
                body=orjson.dumps(result),
                content_type="application/json",
                headers={VERSION_HEADER: V1.version},
            )
        except RpcError as exc:
            status, body = rest_error(exc)
            return web.Response(
                status=status, body=orjson.dumps(body), content_type="application/json"
            )
        finally:
            state.telemetry.agent_request(agent.name, ok)

    return handle


def add_rest_routes(app: web.Application) -> None:
    """Mount the HTTP+JSON binding under ``/agents/{name}``."""
    base = "/agents/{name}"
    task = base + "/tasks/{id:[^/:]+}"
    configs = task + "/pushNotificationConfigs"
    routes = [
        ("POST", base + "/message:send", methods.send_message, _from_body),
        ("POST", base + "/message:stream", methods.stream_message, _from_body),
        ("GET", base + "/tasks", methods.list_tasks, _listing),
        ("POST", task + ":cancel", methods.cancel_task, _task),
        ("POST", task + ":subscribe", methods.subscribe, _task),
        ("GET", task + ":subscribe", methods.subscribe, _task),
        ("GET", task, methods.get_task, _task),
        ("POST", configs, push.create_config, _task_configs),
        ("GET", configs, push.list_configs, _task_configs),
        ("GET", configs + "/{config}", push.get_config, _task_config),
        ("DELETE", configs + "/{config}", push.delete_config, _task_config),
        ("GET", base + "/extendedAgentCard", methods.extended_card, _nothing),
    ]
    for verb, path, method, params in routes:
        app.router.add_route(verb, path, _endpoint(method, params))
