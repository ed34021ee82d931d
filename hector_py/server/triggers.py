"""Triggers (``agents.<name>.trigger``): cron schedules inside ``serve``, signed webhooks.

A schedule fires on its cron times (a missed time is not caught up), in one process only
with ``--workers N`` (``build_app(schedules=...)``), and each firing is the root of its
own trace. A webhook checks the body's HMAC-SHA256 signature, renders the body into the
agent's input and answers with the result (``sync``) or 202 with the task id (``async``).
Both count in ``scheduler_triggers_total{agent,type,status}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from croniter import croniter

from hector_py.agent.admission import Overloaded
from hector_py.agent.budgets import BudgetExceeded
from hector_py.agent.guardrails import GuardrailBlocked
from hector_py.agent.runner import Agent
from hector_py.agent.stores import ChatTurn, Task, new_id
from hector_py.agent.tasks import Execution
from hector_py.config.model import ScheduleTrigger, WebhookTrigger
from hector_py.server.middleware import json_error
from hector_py.server.state import STATE, ServerState

log = logging.getLogger("hector.triggers")

PLACEHOLDER = re.compile(r"\{body((?:\.[A-Za-z0-9_-]+)*)\}")
CANCEL_WAIT_S = 5.0
UNSTAMPED_WINDOW_S = 86_400.0


class Clock:
    """Wall-clock time for schedules; tests pass one they control."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        """Return at ``when`` (re-checking each minute, so clock changes are followed)."""
        while (left := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(left, 60.0))


class TriggerRefused(Exception):
    """A triggered run that could not start; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def start_run(state: ServerState, agent: Agent, text: str, tenant: str) -> Execution:
    """Start a run of ``agent`` for ``tenant`` on ``text`` in a new session, through its
    input guardrails.

    Raises ``TriggerRefused`` when the input is too long, blocked, over the tenant's budget
    or no slot is free."""
    limit = state.config.server.max_message_chars
    if len(text) > limit:
        raise TriggerRefused(400, f"input is over the limit of {limit} characters")
    try:
        reservation = await state.budgets.reserve(tenant)
    except BudgetExceeded as exc:
        raise TriggerRefused(429, str(exc)) from None
    if agent.guardrails is not None:
        try:
            text = agent.guardrails.check_input(text)
        except GuardrailBlocked as exc:
            await state.budgets.settle(reservation, 0)
            raise TriggerRefused(400, str(exc)) from None
    task = Task(
        id=new_id(),
        context_id=new_id(),
        agent=agent.name,
        history=[ChatTurn(new_id(), "user", text)],
        tenant=tenant,
    )
    state.budgets.bind(reservation, task.id)  # settled when the task ends
    try:
        return await state.tasks.start(agent, task, text, stream=False)
    except Overloaded as exc:
        await state.budgets.release(task.id)
        raise TriggerRefused(503, str(exc)) from None


class Scheduler:
    """Runs every agent that has a schedule trigger, on its cron times."""

    def __init__(self, state: ServerState, clock: Clock) -> None:
        self._state = state
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start one loop per scheduled agent (call with the event loop running)."""
        for name, config in self._state.config.agents.items():
            if isinstance(config.trigger, ScheduleTrigger):
                self._spawn(self._loop(name, config.trigger))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _loop(self, name: str, trigger: ScheduleTrigger) -> None:
        zone = ZoneInfo(trigger.timezone)
        while True:
            due = croniter(trigger.cron, self._clock.now().astimezone(zone)).get_next(datetime)
            await self._clock.sleep_until(due)
            self._spawn(self._fire(name, trigger, due.isoformat()))

    async def _fire(self, name: str, trigger: ScheduleTrigger, due: str) -> None:
        """The run for cron time ``due``, the root of its own trace (its span lasts as long
        as the run)."""
        telemetry = self._state.telemetry
        with telemetry.trigger(name, "schedule", root=True) as scope:
            try:
                agent = self._state.agents[name]
                execution = await start_run(self._state, agent, trigger.input, trigger.tenant)
            except TriggerRefused as exc:
                log.warning("scheduled run of %s not started: %s", name, exc, extra={"due": due})
                return
            scope.status = "success"
            task = await execution.wait()
            log.info("scheduled run of %s ended %s", name, task.state.value, extra={"due": due})

    async def close(self) -> None:
        """Stop the schedules (runs already started are left to the task manager)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CANCEL_WAIT_S)


def valid_signature(secret: str, body: bytes, presented: str) -> bool:
    """Whether ``presented`` (``sha256=<hex>`` or bare hex) signs ``body`` with ``secret``."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = presented.strip().removeprefix("sha256=")
    return hmac.compare_digest(expected.encode(), given.encode())


class Replays:
    """Webhook deliveries already accepted, by signature and by delivery id, kept for the
    trigger's ``tolerance`` (a signed timestamp rules out older ones) and at most
    ``MAX_REMEMBERED`` per agent (all that bounds them without a timestamp)."""

    MAX_REMEMBERED = 10_000

    def __init__(self) -> None:
        self._seen: dict[str, OrderedDict[str, float]] = {}

    def check(self, agent: str, keys: list[str], window: float) -> bool:
        """Remember ``keys``; ``False`` when one was seen within ``window`` seconds."""
        seen = self._seen.setdefault(agent, OrderedDict())
        now = time.monotonic()
        while seen and (next(iter(seen.values())) < now or len(seen) > self.MAX_REMEMBERED):
            seen.popitem(last=False)
        if any(key in seen for key in keys):
            return False
        for key in keys:
            seen[key] = now + window
        return True

    def forget(self, agent: str, keys: list[str]) -> None:
        """Drop ``keys`` (a delivery that was refused, so may come again)."""
        for key in keys:
            self._seen.get(agent, OrderedDict()).pop(key, None)


def verify(trigger: WebhookTrigger, request: web.Request, body: bytes) -> str | None:
    """Why the delivery's signature or timestamp is not acceptable; ``None`` when it is."""
    secret = trigger.secret.get_secret_value()
    presented = request.headers.get(trigger.signature_header, "")
    if trigger.timestamp_header is None:
        ok = valid_signature(secret, body, presented)
        return None if ok else f"missing or invalid signature ({trigger.signature_header})"
    stamp = request.headers.get(trigger.timestamp_header, "").strip()
    if not valid_signature(secret, stamp.encode() + b"." + body, presented):
        return (
            f"missing or invalid signature ({trigger.signature_header} of "
            f"'{{{trigger.timestamp_header}}}.{{body}}')"
        )
    try:
        skew = abs(time.time() - float(stamp))
    except ValueError:
        skew = float("inf")
    if not skew <= trigger.tolerance:
        return f"{trigger.timestamp_header} is more than {trigger.tolerance:g} s from now"
    return None


def render_input(template: str, body: bytes) -> str:
    """``template`` with ``{body}`` (the body as text) and ``{body.a.b}`` (a JSON field;
    empty when missing) filled in."""
    raw = body.decode("utf-8", errors="replace")
    parsed: Any = None
    if "{body." in template:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None

    def fill(match: re.Match[str]) -> str:
        if not match.group(1):
            return raw
        value = parsed
        for key in match.group(1)[1:].split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return ""
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    return PLACEHOLDER.sub(fill, template)


def _task_body(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "context_id": task.context_id,
        "state": task.state.value,
        "reply": task.reply,
        "error": task.error,
    }


async def receive(request: web.Request, name: str) -> web.Response:
    """A webhook for agent ``name``: check the signature, start the run, answer."""
    state = request.app[STATE]
    agent = state.agents.get(name)
    trigger = state.config.agents[name].trigger if agent is not None else None
    if agent is None or not isinstance(trigger, WebhookTrigger):
        return json_error(404, f"no webhook for agent '{name}'")
    body = await request.read()
    with state.telemetry.trigger(name, "webhook") as scope:
        refused = verify(trigger, request, body)
        if refused is not None:
            scope.status = "rejected"
            return json_error(401, refused)
        delivery = request.headers.get(trigger.delivery_header, "").strip()
        keys = [f"sig:{request.headers[trigger.signature_header].strip()}"]
        if delivery:
            keys.append(f"id:{delivery}")
        # Timestamps older than ``tolerance`` are refused anyway; without them, a day.
        window = 2 * trigger.tolerance if trigger.timestamp_header else UNSTAMPED_WINDOW_S
        replays = request.app[REPLAYS]
        if not replays.check(name, keys, window):
            scope.status = "rejected"
            return json_error(409, "this delivery was already received")
        text = render_input(trigger.input, body)
        if not text.strip():
            return json_error(400, "the webhook input is empty")
        try:
            execution = await start_run(state, agent, text, trigger.tenant)
        except TriggerRefused as exc:
            replays.forget(name, keys)  # not run: the sender may retry it
            return json_error(exc.status, str(exc))
        scope.status = "success"
        if trigger.response == "async":
            return web.json_response(_task_body(execution.task), status=202)
        return web.json_response(_task_body(await execution.wait()))


REPLAYS = web.AppKey("hector_webhook_replays", Replays)


def add_routes(app: web.Application, state: ServerState) -> list[str]:
    """Mount ``POST /webhooks/{agent}`` and each custom ``path``; returns the routes."""
    app[REPLAYS] = Replays()
    routes: list[str] = []
    for name, config in state.config.agents.items():
        if isinstance(config.trigger, WebhookTrigger) and config.trigger.path:

            async def custom(request: web.Request, name: str = name) -> web.Response:
                return await receive(request, name)

            app.router.add_post(config.trigger.path, custom)
            routes.append(config.trigger.path)

    async def generic(request: web.Request) -> web.Response:
        return await receive(request, request.match_info["agent"])

    if any(isinstance(a.trigger, WebhookTrigger) for a in state.config.agents.values()):
        app.router.add_post("/webhooks/{agent}", generic)
        routes.append("/webhooks/{agent}")
    return routes
