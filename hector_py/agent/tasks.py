"""Task executions: each run is an asyncio task whose events fan out to subscribers.

A blocking send awaits the execution, a stream subscribes to it, a cancel stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hector_py.agent import approval
from hector_py.agent.admission import Admission, Slot
from hector_py.agent.approval import ApprovalRequired
from hector_py.agent.calls import AgentError, UsageMeter
from hector_py.agent.ratelimit import RateLimited
from hector_py.agent.runner import (
    Agent,
    FinalReply,
    RunEvent,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from hector_py.agent.stores import ChatTurn, Store, StoreUnavailable, Task, TaskState, new_id
from hector_py.llm.base import Attachment, LLMError, Message
from hector_py.observability.logs import bind

log = logging.getLogger("hector.tasks")

SHUTDOWN_FAILURE = "the server shut down before the task finished"
CANCEL_WAIT_S = 5.0  # for the runs cancelled at the end of a drain to wind down


@dataclass(frozen=True)
class StatusChanged:
    """The task moved to a new state (the task itself carries it)."""

    task: Task


TaskEvent = StatusChanged | TextDelta | ToolCallStarted | ToolCallFinished


class TaskBusy(Exception):
    """The task is already starting or running."""


class Overflowed:
    """The end of a subscription that fell :data:`SUBSCRIBER_BUFFER` events behind."""


OVERFLOWED = Overflowed()
SUBSCRIBER_BUFFER = 1024  # events a subscriber may lag behind before it is dropped


class Subscription:
    """A subscriber's bounded queue of events; registered the moment it is created.

    ``snapshot`` is the task and the reply text streamed so far, as of registration: a late
    subscriber starts from it and every later event follows it. A subscriber that falls
    behind by ``buffer`` events is dropped (its last item is :data:`OVERFLOWED`); the task
    and the other subscribers go on."""

    def __init__(self, execution: Execution, buffer: int) -> None:
        self._execution = execution
        self._queue: asyncio.Queue[TaskEvent | Overflowed | None] = asyncio.Queue(buffer + 1)
        self._buffer = buffer
        self.snapshot = (execution.task, "".join(execution.streamed))
        execution._subscribers.append(self)

    async def next(self, timeout: float) -> TaskEvent | Overflowed | None:
        """The next event (``None`` once the task has ended); ``TimeoutError`` after
        ``timeout`` seconds without one (the subscription stays open)."""
        event = await asyncio.wait_for(self._queue.get(), timeout)
        if event is None or event is OVERFLOWED:
            self.close()
        return event

    def put(self, event: TaskEvent | None) -> None:
        """Queue ``event``; a subscriber ``buffer`` events behind is dropped instead."""
        if event is not None and self._queue.qsize() >= self._buffer:
            self.close()
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(OVERFLOWED)
            log.warning("a subscriber fell %d events behind; dropped", self._buffer)
        else:
            self._queue.put_nowait(event)

    def close(self) -> None:
        """Stop receiving events."""
        if self in self._execution._subscribers:
            self._execution._subscribers.remove(self)


class Execution:
    """One running task; ``streamed`` holds the reply's text deltas so far."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.streamed: list[str] = []
        self._subscribers: list[Subscription] = []
        self.runner: asyncio.Task[Task] | None = None

    def subscribe(self, buffer: int = SUBSCRIBER_BUFFER) -> Subscription:
        """Receive every event from now until the task ends (after ``snapshot``)."""
        return Subscription(self, buffer)

    def publish(self, event: TaskEvent | None) -> None:
        """Send ``event`` to every subscriber (``None`` ends their streams)."""
        if isinstance(event, TextDelta):
            self.streamed.append(event.text)
        for subscription in list(self._subscribers):
            subscription.put(event)

    async def wait(self) -> Task:
        """The task once it is terminal."""
        assert self.runner is not None
        return await asyncio.shield(self.runner)


class RemoteTasks(Protocol):
    """Tasks run by other processes sharing the store (stores/fleet.py)."""

    async def cancel(self, task_id: str) -> Task | None:
        """Have the process running ``task_id`` cancel it."""
        ...

    def follow(self, task: Task) -> Execution:
        """Relay another process's run of ``task``."""
        ...


class TaskManager:
    """Starts, tracks, cancels and drains task executions."""

    remote: RemoteTasks | None = None  # set while other processes share the store

    def __init__(
        self,
        store: Store,
        admission: Admission,
        on_change: Callable[[Task], None] | None = None,
    ) -> None:
        """``on_change`` hears of every saved state change (e.g. to send notifications)."""
        self.store = store
        self.admission = admission
        self.on_change = on_change
        self.draining = False
        self._running: dict[str, Execution] = {}
        self._claimed: set[str] = set()  # ids starting or running
        self._watches: set[asyncio.Task[None]] = set()  # approval timeouts
        self.redact: Callable[[str], str] = str  # what a paused task shows of tool arguments
        self.on_approval: Callable[[str, str, str], None] = lambda agent, tool, decision: None
        """Hears each approval decision (agent, tool, approve|deny|timeout)."""

    def get(self, task_id: str) -> Execution | None:
        """The execution of a task still running, if any."""
        return self._running.get(task_id)

    def follow(self, task: Task) -> Execution | None:
        """The execution of ``task`` here, or one relaying another process's run of it (a
        task waiting for input runs nowhere)."""
        execution = self._running.get(task.id)
        running = task.state in (TaskState.SUBMITTED, TaskState.WORKING)
        if execution is None and self.remote is not None and running:
            return self.remote.follow(task)
        return execution

    async def start(
        self,
        agent: Agent,
        task: Task,
        user_text: str,
        *,
        stream: bool,
        files: tuple[Attachment, ...] = (),
    ) -> Execution:
        """Take a run slot, save ``task`` and start running it (``user_text`` with
        ``files``); subscribe before the next
        ``await``. ``task`` may be one resumed (it waited for input). Raises ``Overloaded``
        when no slot frees in time, ``TaskBusy`` when ``task`` is already starting or running."""
        if task.id in self._claimed:
            raise TaskBusy(task.id)
        self._claimed.add(task.id)
        try:
            slot = await self.admission.acquire(agent.name)
            try:
                await self.store.save_task(task)
            except BaseException:
                slot.release()
                raise
        except BaseException:
            self._claimed.discard(task.id)
            raise
        execution = Execution(task)
        self._running[task.id] = execution
        run = self._run(
            agent, execution, Message("user", user_text, attachments=files), stream, slot
        )
        execution.runner = asyncio.create_task(run)
        slot.owner = execution.runner
        return execution

    async def cancel(self, task_id: str) -> Task | None:
        """Stop a running task; returns it once canceled (``None`` if it is not running).

        While the server drains, a stopped task is marked failed, not canceled."""
        execution = self._running.get(task_id)
        if execution is None and self.remote is not None:
            return await self.remote.cancel(task_id)
        if execution is None or execution.runner is None:
            return None
        if self.draining:
            execution.task.error = SHUTDOWN_FAILURE
        execution.runner.cancel()
        return await execution.wait()

    async def cancel_waiting(self, task: Task) -> Task:
        """Cancel a task that waits for input (no process runs it)."""
        task.pending, task.state = None, TaskState.CANCELED
        await self.store.save_task(task)
        if self.on_change is not None:
            self.on_change(task)
        return task

    async def shutdown(self, timeout: float) -> None:
        """Let running tasks and ``/v1`` runs (every held run slot) finish for ``timeout``
        seconds, then fail the tasks and cancel the rest."""
        self.draining = True
        runners = [e.runner for e in self._running.values() if e.runner is not None]
        slots = self.admission.held()
        if not runners and not slots:
            return
        waits: list[asyncio.Future[Any]] = [*runners, *(slot.released for slot in slots)]
        _, pending = await asyncio.wait(waits, timeout=timeout)
        if not pending:
            return
        stopped: set[asyncio.Future[Any]] = set()
        for execution in list(self._running.values()):
            if execution.runner is not None and execution.runner in pending:
                execution.task.error = SHUTDOWN_FAILURE
                stopped.add(execution.runner)
        for slot in slots:
            if slot.released in pending and slot.owner is not None:
                stopped.add(slot.owner)  # a /v1 request: its client sees the connection end
        for task in stopped:
            task.cancel()
        log.warning(
            "%d run(s) did not finish within %.1f s of shutdown; tasks marked failed, "
            "/v1 requests cancelled",
            len(stopped),
            timeout,
        )
        await asyncio.wait(pending, timeout=CANCEL_WAIT_S)

    async def _set_state(self, execution: Execution, state: TaskState) -> None:
        execution.task.state = state
        await self.store.save_task(execution.task)
        execution.publish(StatusChanged(execution.task))
        if self.on_change is not None:
            self.on_change(execution.task)

    async def _end(self, execution: Execution, meter: UsageMeter, state: TaskState) -> None:
        """The run is over: the task records the tokens it used, whatever its outcome."""
        execution.task.prompt_tokens = meter.prompt_tokens
        execution.task.completion_tokens = meter.completion_tokens
        execution.task.cost_usd = meter.cost_usd
        await self._set_state(execution, state)

    async def _run(
        self, agent: Agent, execution: Execution, prompt: Message, stream: bool, slot: Slot
    ) -> Task:
        task = execution.task
        meter = UsageMeter()
        with bind(session_id=task.context_id, task_id=task.id):
            try:
                paused, task.pending = task.pending, None
                resume = self._resume(agent, task, paused, prompt.content)
                if paused is not None:  # the session keeps the question, not the answer
                    prompt = Message("user", paused["text"])
                await self._set_state(execution, TaskState.WORKING)
                history = await self.store.history(
                    task.tenant, task.context_id, agent.config.history_messages
                )
                events = agent.run(
                    history,
                    prompt.content,
                    files=prompt.attachments,
                    stream=stream,
                    session_id=task.context_id,
                    meter=meter,
                    tenant=task.tenant,
                    resume=resume,
                )
                async for event in events:
                    if isinstance(event, ApprovalRequired):
                        timeout = agent.config.approval_timeout
                        task.pending = approval.pause(event, prompt.content, timeout)
                        text, data = approval.question(task.pending, self.redact)
                        task.pending["question"] = {"text": text, "data": data}
                        self._watch(task.tenant, task.id, timeout)
                    else:
                        self._apply(execution, event)
                if task.pending is not None:
                    await self._end(execution, meter, TaskState.INPUT_REQUIRED)
                    return task
                await self.store.append(
                    task.tenant,
                    task.context_id,
                    [_remembered(prompt), Message("assistant", task.reply or "")],
                )
                await self._end(execution, meter, TaskState.COMPLETED)
            except asyncio.CancelledError:
                # a shutdown that ran out of time fails the task; a CancelTask cancels it
                state = TaskState.FAILED if task.error else TaskState.CANCELED
                await self._end(execution, meter, state)
            except (LLMError, AgentError, RateLimited) as exc:
                log.warning("task failed: %s", exc)
                task.error = str(exc)
                await self._end(execution, meter, TaskState.FAILED)
            except StoreUnavailable as exc:  # the database went away mid-run
                log.warning("task failed: %s", exc)
                task.error = str(exc)
                with contextlib.suppress(StoreUnavailable):
                    await self._end(execution, meter, TaskState.FAILED)
            except Exception:
                log.exception("task crashed")
                task.error = "internal error while running the agent"
                await self._end(execution, meter, TaskState.FAILED)
            finally:
                slot.release()
                execution.publish(None)
                self._running.pop(task.id, None)
                self._claimed.discard(task.id)
        return task

    def _resume(
        self, agent: Agent, task: Task, paused: dict[str, Any] | None, answer: str
    ) -> approval.Resume | None:
        """The decided run to go on with, when ``task`` waited for approval."""
        if paused is None:
            return None
        if approval.expired(paused):
            raise AgentError("no answer within the agent's approval_timeout")
        decisions = approval.decide(paused, answer)  # checked before the task restarted
        names = approval.tools_asked(paused)
        for call_id, approved in decisions.items():
            self.on_approval(agent.name, names[call_id], "approve" if approved else "deny")
        return approval.resume(paused, decisions, answer)

    def _watch(self, tenant: str, task_id: str, timeout: float) -> None:
        """Fail the task if it still waits for approval after ``timeout`` seconds."""

        async def expire() -> None:
            await asyncio.sleep(timeout)
            task = await self.store.get_task(tenant, task_id)
            if task is None or task.state != TaskState.INPUT_REQUIRED or task.pending is None:
                return
            if not approval.expired(task.pending):
                return  # paused again since: that pause has its own watch
            names = approval.tools_asked(task.pending)
            for tool in names.values():
                self.on_approval(task.agent, tool, "timeout")
            task.pending, task.error = None, "no answer within the agent's approval_timeout"
            task.state = TaskState.FAILED
            await self.store.save_task(task)
            if self.on_change is not None:
                self.on_change(task)

        watch = asyncio.create_task(expire())
        self._watches.add(watch)
        watch.add_done_callback(self._watches.discard)

    @staticmethod
    def _apply(execution: Execution, event: RunEvent) -> None:
        if isinstance(event, FinalReply):
            execution.task.reply = event.text
            execution.task.data = event.data.value if event.data is not None else None
            execution.task.model = event.model
            execution.task.history.append(ChatTurn(new_id(), "agent", event.text))
        elif not isinstance(event, ApprovalRequired):  # handled by _run
            execution.publish(event)


def _remembered(prompt: Message) -> Message:
    """The user message as the session keeps it: its files named, not kept."""
    names = [file.placeholder() for file in prompt.attachments]
    return Message("user", "\n".join([prompt.content, *names]) if names else prompt.content)
