"""A2A push-notification configs: create, get, list and delete per task, in both dialects
(``CreateTaskPushNotificationConfig``… and ``tasks/pushNotificationConfig/set``…), and the
one a send carries in ``configuration``. Configs live in the store, scoped like their task.
A URL must be http(s) and must not resolve to a loopback, private or link-local address
unless its host is in ``a2a.push_notifications.allowed_hosts`` (checked again before each
delivery). Stored shape: ``{id, url, token, scheme, credentials, dialect}``."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from hector_py.config.a2a import PushConfig
from hector_py.server.a2a.errors import INVALID_PARAMS, PUSH_NOT_SUPPORTED, RpcError, not_found
from hector_py.server.a2a.params import Call, field, identifier
from hector_py.server.a2a_wire import V03

DEFAULT_PORTS = {"http": 80, "https": 443}


async def unsafe_url(url: str, config: PushConfig, *, resolvable_later: bool = False) -> str | None:
    """Why ``url`` may not receive notifications, or ``None`` (``resolvable_later``: a
    name that does not resolve yet is accepted, as when a config is registered)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return "must be an http(s) URL with a host"
    host = parts.hostname.lower()
    if host in {allowed.lower() for allowed in config.allowed_hosts}:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        # a name that does not resolve now reaches nothing: refused at delivery if it
        # still does not (each delivery checks again), never a request into the network
        return None if resolvable_later else f"host '{host}' does not resolve"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            return (
                f"host '{host}' is a loopback, private or link-local address (allow it in"
                " a2a.push_notifications.allowed_hosts)"
            )
    return None


async def read_config(call: Call, raw: Any, where: str, task_id: str) -> dict[str, Any]:
    """A push config from the caller (``raw``, in the call's dialect, found at ``where``:
    a field path ending in a dot, or empty), checked: -32602 naming the field."""
    if not isinstance(raw, dict):
        raise RpcError(INVALID_PARAMS, f"params.{where.rstrip('.')}: required, an object")
    settings = call.state.config.a2a.push_notifications
    url = field(raw, "url", str)
    if not url:
        raise RpcError(INVALID_PARAMS, f"params.{where}url: required")
    if (why := await unsafe_url(url, settings, resolvable_later=True)) is not None:
        raise RpcError(INVALID_PARAMS, f"params.{where}url: {why}")
    auth = field(raw, "authentication", dict) or {}
    if call.dialect is V03:
        schemes = field(auth, "schemes", list) or []
        scheme = str(schemes[0]) if schemes else ""
    else:
        scheme = field(auth, "scheme", str) or ""
    return {
        "id": identifier(raw, "id") or task_id,
        "url": url,
        "token": field(raw, "token", str) or "",
        "scheme": scheme,
        "credentials": field(auth, "credentials", str) or "",
        "dialect": call.dialect.version,
    }


def wire(call: Call, task_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """A stored config as the call's dialect shows it."""
    body: dict[str, Any] = {"id": config["id"], "url": config["url"]}
    if config["token"]:
        body["token"] = config["token"]
    if call.dialect is V03:
        if config["scheme"]:
            body["authentication"] = {
                "schemes": [config["scheme"]],
                **({"credentials": config["credentials"]} if config["credentials"] else {}),
            }
        return {"taskId": task_id, "pushNotificationConfig": body}
    if config["scheme"]:
        body["authentication"] = {"scheme": config["scheme"], "credentials": config["credentials"]}
    return {"taskId": task_id, **body}


async def save(call: Call, task_id: str, config: dict[str, Any]) -> None:
    """Store ``config`` for the task; -32602 past ``max_configs_per_task``."""
    settings = call.state.config.a2a.push_notifications
    store = call.state.store
    known = {c["id"] for c in await store.push_configs(call.tenant, task_id)}
    if config["id"] not in known and len(known) >= settings.max_configs_per_task:
        raise RpcError(
            INVALID_PARAMS,
            f"the task has {len(known)} push configs already, the limit"
            " (a2a.push_notifications.max_configs_per_task)",
        )
    await store.save_push_config(call.tenant, task_id, config)


async def _task_id(call: Call, path: str) -> str:
    """The caller's task the call names at ``path``, checked to exist (-32001)."""
    if not call.state.config.a2a.push_notifications.enabled:
        raise RpcError(PUSH_NOT_SUPPORTED, "push notifications are not supported by this agent")
    task_id = identifier(call.params, path, required=True)
    assert task_id is not None
    task = await call.state.store.get_task(call.tenant, task_id)
    if task is None or task.agent != call.agent.name:
        raise not_found(task_id)
    return task_id


async def create_config(call: Call) -> dict[str, Any]:
    """``CreateTaskPushNotificationConfig`` / ``tasks/pushNotificationConfig/set``."""
    task_id = await _task_id(call, "taskId")
    if call.dialect is V03:
        raw, where = call.params.get("pushNotificationConfig"), "pushNotificationConfig."
    else:
        raw, where = call.params, ""
    config = await read_config(call, raw, where, task_id)
    await save(call, task_id, config)
    return wire(call, task_id, config)


async def get_config(call: Call) -> dict[str, Any]:
    """``GetTaskPushNotificationConfig`` / ``tasks/pushNotificationConfig/get`` (v0.3
    without an id: the task's first)."""
    v03 = call.dialect is V03
    task_id = await _task_id(call, "id" if v03 else "taskId")
    wanted = identifier(call.params, "pushNotificationConfigId" if v03 else "id")
    if wanted is None and not v03:
        raise RpcError(INVALID_PARAMS, "params.id: required")
    for config in await call.state.store.push_configs(call.tenant, task_id):
        if wanted is None or config["id"] == wanted:
            return wire(call, task_id, config)
    raise not_found(task_id)


async def list_configs(call: Call) -> Any:
    """``ListTaskPushNotificationConfigs`` / ``tasks/pushNotificationConfig/list``."""
    v03 = call.dialect is V03
    task_id = await _task_id(call, "id" if v03 else "taskId")
    configs = [
        wire(call, task_id, c) for c in await call.state.store.push_configs(call.tenant, task_id)
    ]
    return configs if v03 else {"configs": configs, "nextPageToken": ""}


async def delete_config(call: Call) -> Any:
    """``DeleteTaskPushNotificationConfig`` / ``tasks/pushNotificationConfig/delete``."""
    v03 = call.dialect is V03
    task_id = await _task_id(call, "id" if v03 else "taskId")
    config_id = identifier(call.params, "pushNotificationConfigId" if v03 else "id", required=True)
    assert config_id is not None
    await call.state.store.delete_push_config(call.tenant, task_id, config_id)
    return None if v03 else {}


async def config_of_send(call: Call, task_id: str) -> dict[str, Any] | None:
    """The push config a send carries (``configuration.pushNotificationConfig``, or v1.0's
    ``taskPushNotificationConfig``), checked; -32003 when push is off."""
    configuration = field(call.params, "configuration", dict) or {}
    key = "pushNotificationConfig"
    if call.dialect is not V03 and key not in configuration:
        key = "taskPushNotificationConfig"
    raw = configuration.get(key)
    if raw is None:
        return None
    if not call.state.config.a2a.push_notifications.enabled:
        raise RpcError(PUSH_NOT_SUPPORTED, "push notifications are not supported by this agent")
    return await read_config(call, raw, f"configuration.{key}.", task_id)
