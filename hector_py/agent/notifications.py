"""Outbound notifications (``agents.<name>.notifications``): task events as signed webhooks.

Each delivery is a background task on the app's HTTP session, retried with exponential
backoff; the run never waits for it. Shutdown gives pending deliveries a short grace
period, then cancels them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Mapping, Sequence

import aiohttp
import orjson

from hector_py import __version__
from hector_py.agent.stores import Task, TaskState
from hector_py.config.automation import RetryPolicy
from hector_py.config.model import NotificationConfig
from hector_py.observability.telemetry import Telemetry

log = logging.getLogger("hector.notifications")

SIGNATURE_HEADER = "X-Hector-Signature"
EVENT_HEADER = "X-Hector-Event"
DELIVERY_HEADER = "X-Hector-Delivery"
EVENTS = {
    TaskState.WORKING: "task.started",
    TaskState.COMPLETED: "task.completed",
    TaskState.FAILED: "task.failed",
}


def signature(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(event: str, task: Task) -> bytes:
    """The JSON body of one notification: the event, the agent and the task."""
    return orjson.dumps(
        {
            "event": event,
            "agent": task.agent,
            "timestamp": time.time(),
            "task": {
                "id": task.id,
                "context_id": task.context_id,
                "state": task.state.value,
                "reply": task.reply,
                "error": task.error,
                "usage": {
                    "prompt_tokens": task.prompt_tokens,
                    "completion_tokens": task.completion_tokens,
                },
                "created_at": task.created_at,
                "updated_at": task.updated_at,
            },
        }
    )


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    retry: RetryPolicy,
    timeout: float,
) -> str | None:
    """POST ``body`` until a 2xx (no redirects), retrying with exponential backoff; what
    went wrong at the last attempt, or ``None`` once delivered."""
    delay, problem = retry.initial_delay, ""
    for attempt in range(1, retry.max_attempts + 1):
        try:
            async with session.post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                if 200 <= response.status < 300:
                    return None
                problem = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = str(exc) or type(exc).__name__
        if attempt < retry.max_attempts:
            await asyncio.sleep(min(delay, retry.max_delay))
            delay *= 2
    return problem


class Notifier:
    """Sends each agent's configured webhooks when its tasks change state."""

    def __init__(
        self,
        hooks: Mapping[str, Sequence[NotificationConfig]],
        session: aiohttp.ClientSession,
        telemetry: Telemetry,
    ) -> None:
        self._hooks = {agent: list(h) for agent, h in hooks.items() if h}
        self._session = session
        self._telemetry = telemetry
        self._pending: set[asyncio.Task[None]] = set()

    def task_changed(self, task: Task) -> None:
        """Queue the deliveries for ``task``'s new state (a snapshot of it, taken now)."""
        event = EVENTS.get(task.state)
        hooks = [h for h in self._hooks.get(task.agent, ()) if event in h.events]
        if event is None or not hooks:
            return
        body = payload(event, task)
        for hook in hooks:
            delivery = asyncio.create_task(self._deliver(hook, task.agent, event, body))
            self._pending.add(delivery)
            delivery.add_done_callback(self._pending.discard)

    async def _deliver(self, hook: NotificationConfig, agent: str, event: str, body: bytes) -> None:
        headers = {name: value.get_secret_value() for name, value in hook.headers.items()}
        headers |= {
            "Content-Type": "application/json",
            "User-Agent": f"hector-py/{__version__}",
            EVENT_HEADER: event,
            DELIVERY_HEADER: uuid.uuid4().hex,
        }
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = signature(hook.secret.get_secret_value(), body)
        problem = await post(self._session, hook.url, body, headers, hook.retry, hook.timeout)
        if problem is None:
            self._telemetry.notification(agent, event, True)
            return
        log.warning(
            "notification %s for agent %s failed after %d attempts: %s",
            event,
            agent,
            hook.retry.max_attempts,
            problem,
        )
        self._telemetry.notification(agent, event, False)

    async def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for pending deliveries, then cancel the rest."""
        if not self._pending:
            return
        _, late = await asyncio.wait(set(self._pending), timeout=timeout)
        for delivery in late:
            delivery.cancel()
        if late:
            log.warning("%d notification(s) dropped at shutdown", len(late))
            await asyncio.wait(late, timeout=1)
