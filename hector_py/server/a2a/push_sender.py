"""Delivery of A2A push notifications: each state change of a task with push configs is
POSTed to every config's URL, in the order the changes happened, with the config's token
(``X-A2A-Notification-Token``) and ``Authorization: <scheme> <credentials>``, retried with
backoff. The body is the config's dialect: for 1.0 a ``StreamResponse`` (a
``statusUpdate``, or the whole ``task`` once it is terminal), for 0.3 the task. The URL is
checked again before each delivery (a name may resolve elsewhere since). Counted in
``hector_notifications_total{event="push.<state>"}``; serving never waits for it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson

from hector_py import __version__
from hector_py.agent.notifications import post
from hector_py.agent.stores import Store, Task
from hector_py.config.a2a import PushConfig
from hector_py.observability.telemetry import Telemetry
from hector_py.server.a2a.push import unsafe_url
from hector_py.server.a2a_wire import V03, V1

log = logging.getLogger("hector.notifications")
TOKEN_HEADER = "X-A2A-Notification-Token"


def body(task: Task, dialect: str) -> bytes:
    """What one config hears of ``task`` as it is now."""
    if dialect == V03.version:
        return orjson.dumps(V03.task(task))
    event = V1.task_result(task) if task.state.terminal else V1.status_update(task)
    return orjson.dumps(event)


class PushSender:
    """Sends the push notifications of every task's state changes (see the module)."""

    def __init__(
        self,
        store: Store,
        session: aiohttp.ClientSession,
        telemetry: Telemetry,
        config: PushConfig,
    ) -> None:
        self._store = store
        self._session = session
        self._telemetry = telemetry
        self._config = config
        self._last: dict[str, asyncio.Task[None]] = {}
        """Each task's latest delivery round: the next one waits for it (order kept)."""

    def task_changed(self, task: Task) -> None:
        """Queue the notifications of ``task``'s new state (a snapshot of it, taken now)."""
        if not self._config.enabled:
            return
        quick = getattr(self._store, "has_push_configs", None)  # the memory store answers now
        if quick is not None and not quick(task.id):
            return
        snapshot = Task.from_json(task.to_json())
        previous = self._last.get(task.id)
        round_ = asyncio.create_task(self._round(previous, snapshot))
        self._last[task.id] = round_
        round_.add_done_callback(lambda done: self._forget(task.id, done))

    def _forget(self, task_id: str, done: asyncio.Task[None]) -> None:
        if self._last.get(task_id) is done:
            del self._last[task_id]

    async def _round(self, previous: asyncio.Task[None] | None, task: Task) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            configs = await self._store.push_configs(task.tenant, task.id)
        except Exception as exc:  # the store is away: this change is not announced
            log.warning("push configs of task %s could not be read: %s", task.id, exc)
            return
        if configs:
            await asyncio.gather(*(self._deliver(config, task) for config in configs))

    async def _deliver(self, config: dict[str, Any], task: Task) -> None:
        event = f"push.{task.state.value}"
        problem = await unsafe_url(config["url"], self._config)
        if problem is None:
            headers = {"Content-Type": "application/json", "User-Agent": f"hector-py/{__version__}"}
            if config["token"]:
                headers[TOKEN_HEADER] = config["token"]
            if config["scheme"] and config["credentials"]:
                headers["Authorization"] = f"{config['scheme']} {config['credentials']}"
            sent = body(task, config["dialect"])
            retry, timeout = self._config.retry, self._config.timeout
            problem = await post(self._session, config["url"], sent, headers, retry, timeout)
        if problem is None:
            self._telemetry.notification(task.agent, event, True)
            return
        log.warning("push notification %s of task %s failed: %s", event, task.id, problem)
        self._telemetry.notification(task.agent, event, False)

    async def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for deliveries under way, then cancel the rest."""
        pending = set(self._last.values())
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout)
        for delivery in late:
            delivery.cancel()
        if late:
            log.warning("%d push notification round(s) dropped at shutdown", len(late))
            await asyncio.wait(late, timeout=1)
