"""The A2A methods: send (new task or continuation), stream, subscribe, get, cancel, list.

Every lookup is the caller's tenant's: another tenant's task answers as an unknown one."""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from hector_py.agent import approval
from hector_py.agent.budgets import BudgetExceeded
from hector_py.agent.guardrails import GuardrailBlocked
from hector_py.agent.ratelimit import RateLimited
from hector_py.agent.stores import ChatTurn, Task, TaskQuery, TaskState, new_id
from hector_py.agent.tasks import Execution, TaskBusy
from hector_py.agent.tools.delegate import abandon
from hector_py.server.a2a import push
from hector_py.server.a2a.card import auth_enabled, extended_agent_card
from hector_py.server.a2a.errors import (
    BUDGET_EXCEEDED,
    GUARDRAIL_BLOCKED,
    INVALID_PARAMS,
    RATE_LIMITED,
    TASK_NOT_CANCELABLE,
    UNSUPPORTED_OPERATION,
    RpcError,
    not_found,
)
from hector_py.server.a2a.params import Call, field, history_length, identifier, incoming_message
from hector_py.server.a2a.streams import relay
from hector_py.server.a2a_wire import V03, V1, Dialect

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
_TOKEN_PREFIX = "hector-page:"

Result = dict[str, Any] | web.StreamResponse
Method = Callable[[Call], Awaitable[Result]]


async def find_task(call: Call, task_id: str | None) -> Task:
    """The caller's task ``task_id`` of this agent; -32001 otherwise (no existence oracle)."""
    if not task_id:
        raise RpcError(INVALID_PARAMS, "params.id: required")
    task = await call.state.store.get_task(call.tenant, task_id)
    if task is None or task.agent != call.agent.name:
        raise not_found(task_id)
    return task


async def _start(call: Call, *, stream: bool) -> Execution:
    """Start a new task, or resume the one ``message.taskId`` names if it waits for input."""
    message = await incoming_message(call)
    text = message.text
    if call.agent.guardrails is not None:
        try:
            text = call.agent.guardrails.check_input(text)
        except GuardrailBlocked as exc:
            raise RpcError(GUARDRAIL_BLOCKED, str(exc)) from None
    field(call.params, "configuration", dict)
    turn = ChatTurn(message.message_id, "user", text)
    if message.task_id is None:
        task = Task(
            id=new_id(),
            context_id=message.context_id or new_id(),
            agent=call.agent.name,
            history=[turn],
            tenant=call.tenant,
        )
    else:
        task = await _continued(call, message.task_id, message.context_id)
        if task.pending is not None:  # an answer to an approval question: it must decide
            try:
                approval.decide(task.pending, text)
            except approval.AnswerError as exc:
                raise RpcError(INVALID_PARAMS, f"params.message: {exc}") from None
        task.history.append(turn)
        task.state, task.reply, task.error = TaskState.SUBMITTED, None, None
    push_config = await push.config_of_send(call, task.id)
    try:
        await call.state.limits.admit(call.tenant, text, task.id)
    except RateLimited as exc:
        call.state.telemetry.rate_limited(exc.kind)
        retry = {"retryAfterSeconds": str(math.ceil(exc.retry_after))}
        raise RpcError(RATE_LIMITED, str(exc), retry) from None
    try:  # last: a request refused after this would hold the reservation
        reservation = await call.state.budgets.reserve(call.tenant)
    except BudgetExceeded as exc:
        raise RpcError(BUDGET_EXCEEDED, str(exc)) from None
    call.state.budgets.bind(reservation, task.id)  # settled when the task ends
    try:
        if push_config is not None:
            await push.save(call, task.id, push_config)
        return await call.state.tasks.start(
            call.agent, task, text, stream=stream, files=message.files
        )
    except BaseException as exc:
        await asyncio.shield(call.state.budgets.release(task.id))
        if isinstance(exc, TaskBusy):
            raise RpcError(UNSUPPORTED_OPERATION, f"task '{task.id}' is already running") from None
        raise


async def _continued(call: Call, task_id: str, context_id: str | None) -> Task:
    """The task a message continues: the caller's, same context, waiting for input."""
    task = await find_task(call, task_id)
    if context_id is not None and context_id != task.context_id:
        raise RpcError(
            INVALID_PARAMS,
            f"params.message.contextId: task '{task_id}' belongs to another context",
        )
    if task.state != TaskState.INPUT_REQUIRED:
        state = call.dialect.state(task.state)
        hint = (
            "send a new message with its contextId to continue the conversation"
            if task.state.terminal
            else "wait for it or subscribe to it"
        )
        raise RpcError(UNSUPPORTED_OPERATION, f"task '{task_id}' is {state}; {hint}")
    return task


async def send_message(call: Call) -> Result:
    """``SendMessage`` / ``message/send``: run the agent; return the task when it ends
    (or at once with ``returnImmediately: true`` / ``blocking: false``)."""
    length = history_length(call.params, "configuration.historyLength")
    immediately = field(call.params, "configuration.returnImmediately", bool)
    blocking = field(call.params, "configuration.blocking", bool)
    execution = await _start(call, stream=False)
    if immediately or blocking is False:
        return call.dialect.task_result(execution.task, length)
    try:
        task = await execution.wait()
    except asyncio.CancelledError:  # the client left; the task runs on unless configured
        if call.state.config.a2a.cancel_on_disconnect:
            await asyncio.shield(call.state.tasks.cancel(execution.task.id))
        raise
    return call.dialect.task_result(task, length)


async def stream_message(call: Call) -> Result:
    """``SendStreamingMessage`` / ``message/stream``: SSE from the task to its end."""
    execution = await _start(call, stream=True)
    return await relay(call, execution, started=True)


async def subscribe(call: Call) -> Result:
    """``SubscribeToTask`` / ``tasks/resubscribe``: the task as it is, then its events."""
    task = await find_task(call, identifier(call.params, "id"))
    execution = call.state.tasks.follow(task)
    if execution is None:
        state = call.dialect.state(task.state)
        raise RpcError(UNSUPPORTED_OPERATION, f"task '{task.id}' is {state}; use GetTask")
    return await relay(call, execution, started=False)


async def get_task(call: Call) -> Result:
    """``GetTask`` / ``tasks/get``."""
    length = history_length(call.params, "historyLength")
    task = await find_task(call, identifier(call.params, "id"))
    execution = call.state.tasks.get(task.id)
    partial = "".join(execution.streamed) if execution is not None else ""
    return call.dialect.task(task, length, partial=partial)


async def cancel_task(call: Call) -> Result:
    """``CancelTask`` / ``tasks/cancel``: stop a running task, or one waiting for input
    (and the sub-agent it waits on); finished ones cannot be."""
    task = await find_task(call, identifier(call.params, "id"))
    canceled = await call.state.tasks.cancel(task.id)
    if canceled is None and task.state == TaskState.INPUT_REQUIRED:
        if task.pending is not None:
            await abandon(call.agent, task.pending)
        canceled = await call.state.tasks.cancel_waiting(task)
    if canceled is None:
        state = call.dialect.state(task.state)
        raise RpcError(TASK_NOT_CANCELABLE, f"task '{task.id}' is {state}")
    return call.dialect.task(canceled)


async def list_tasks(call: Call) -> Result:
    """``ListTasks`` (1.0): the caller's tasks of this agent, newest status first, paged;
    artifacts only with ``includeArtifacts``."""
    status_name = field(call.params, "status", str)
    status = call.dialect.parse_state(status_name) if status_name else None
    if status_name and status is None:
        raise RpcError(INVALID_PARAMS, f"params.status: unknown state '{status_name}'")
    page_size = field(call.params, "pageSize", int)
    page_size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise RpcError(INVALID_PARAMS, f"params.pageSize: must be 1..{MAX_PAGE_SIZE}")
    offset = _offset(field(call.params, "pageToken", str))
    query = TaskQuery(
        tenant=call.tenant,
        agent=call.agent.name,
        context_id=identifier(call.params, "contextId"),
        state=status,
        updated_after=_after(field(call.params, "statusTimestampAfter", str)),
        limit=page_size,
        offset=offset,
    )
    length = history_length(call.params, "historyLength")
    artifacts = bool(field(call.params, "includeArtifacts", bool))
    tasks, total = await call.state.store.list_tasks(query)
    more = offset + len(tasks) < total
    return {
        "tasks": [call.dialect.task(task, length, artifacts=artifacts) for task in tasks],
        "nextPageToken": _token(offset + len(tasks)) if more else "",
        "pageSize": page_size,
        "totalSize": total,
    }


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_TOKEN_PREFIX}{offset}".encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    digits = raw.removeprefix(_TOKEN_PREFIX)
    if not raw.startswith(_TOKEN_PREFIX) or not digits.isdigit() or len(digits) > 9:
        raise RpcError(INVALID_PARAMS, "params.pageToken: not a token from a previous page")
    return int(digits)


def _after(value: str | None) -> float | None:
    """``TaskQuery.updated_after`` for tasks whose status time, as the wire shows it (whole
    milliseconds), is later than the RFC 3339 ``value``."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        # shown later means at or after the next whole millisecond: just after the float below
        return math.nextafter((math.floor(moment * 1000) + 1) / 1000, -math.inf)
    except ValueError:
        raise RpcError(
            INVALID_PARAMS, "params.statusTimestampAfter: must be an RFC 3339 timestamp"
        ) from None


async def extended_card(call: Call) -> Result:
    """``GetExtendedAgentCard`` / ``agent/getAuthenticatedExtendedCard``: with auth on (the
    caller got here with credentials), the card plus a skill per tool; -32004 without."""
    if not auth_enabled(call.state.config.server.auth):
        raise RpcError(UNSUPPORTED_OPERATION, "this agent has no extended agent card")
    return extended_agent_card(call.request, call.agent)


METHODS: dict[str, tuple[Dialect, Method]] = {
    "SendMessage": (V1, send_message),
    "SendStreamingMessage": (V1, stream_message),
    "GetTask": (V1, get_task),
    "ListTasks": (V1, list_tasks),
    "CancelTask": (V1, cancel_task),
    "SubscribeToTask": (V1, subscribe),
    "CreateTaskPushNotificationConfig": (V1, push.create_config),
    "GetTaskPushNotificationConfig": (V1, push.get_config),
    "ListTaskPushNotificationConfigs": (V1, push.list_configs),
    "DeleteTaskPushNotificationConfig": (V1, push.delete_config),
    "GetExtendedAgentCard": (V1, extended_card),
    "message/send": (V03, send_message),
    "message/stream": (V03, stream_message),
    "tasks/get": (V03, get_task),
    "tasks/cancel": (V03, cancel_task),
    "tasks/resubscribe": (V03, subscribe),
    "tasks/pushNotificationConfig/set": (V03, push.create_config),
    "tasks/pushNotificationConfig/get": (V03, push.get_config),
    "tasks/pushNotificationConfig/list": (V03, push.list_configs),
    "tasks/pushNotificationConfig/delete": (V03, push.delete_config),
    "agent/getAuthenticatedExtendedCard": (V03, extended_card),
}
