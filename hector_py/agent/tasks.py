"""Task executions: each run is an asyncio task whose events fan out to subscribers.

A blocking send awaits the execution, a stream subscribes to it, a cancel stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from hector_py.agent.admission import Admission, Slot
from hector_py.agent.runner import (
    Agent,
    AgentError,
    FinalReply,
    RunEvent,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    UsageMeter,
)
from hector_py.agent.stores import ChatTurn, Store, StoreUnavailable, Task, TaskState, new_id
from hector_py.llm.base import LLMError, Message
from hector_py.observability.logs import bind

log = logging.getLogger("hector.tasks")

SHUTDOWN_FAILURE = "the server shut down before the task finished"


@dataclass(frozen=True)
class StatusChanged:
    """The task moved to a new state (the task itself carries it)."""

    task: Task


TaskEvent = StatusChanged | TextDelta | ToolCallStarted | ToolCallFinished


class Subscription:
    """A subscriber's queue of events; registered the moment it is created."""

    def __init__(self, execution: Execution) -> None:
        self._execution = execution
        self._queue: asyncio.Queue[TaskEvent | None] = asyncio.Queue()
        execution._subscribers.append(self._queue)

    async def __aiter__(self) -> AsyncIterator[TaskEvent]:
        try:
            while (event := await self._queue.get()) is not None:
                yield event
        finally:
            self.close()

    def close(self) -> None:
        """Stop receiving events."""
        if self._queue in self._execution._subscribers:
            self._execution._subscribers.remove(self._queue)


class Execution:
    """One running task."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self._subscribers: list[asyncio.Queue[TaskEvent | None]] = []
        self.runner: asyncio.Task[Task] | None = None

    def subscribe(self) -> Subscription:
        """Receive every event from now until the task ends."""
        return Subscription(self)

    def publish(self, event: TaskEvent | None) -> None:
        """Send ``event`` to every subscriber (``None`` ends their streams)."""
        for queue in self._subscribers:
            queue.put_nowait(event)

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

    def get(self, task_id: str) -> Execution | None:
        """The execution of a task still running, if any."""
        return self._running.get(task_id)

    def follow(self, task: Task) -> Execution | None:
        """The execution of ``task`` here, or one relaying another process's run of it."""
        execution = self._running.get(task.id)
        if execution is None and self.remote is not None and not task.state.terminal:
            return self.remote.follow(task)
        return execution

    async def start(self, agent: Agent, task: Task, user_text: str, *, stream: bool) -> Execution:
        """Take a run slot, save ``task`` and start running it; subscribe before the next
        ``await``. Raises ``Overloaded`` when no slot frees in time."""
        slot = await self.admission.acquire(agent.name)
        try:
            await self.store.save_task(task)
        except BaseException:
            slot.release()
            raise
        execution = Execution(task)
        self._running[task.id] = execution
        execution.runner = asyncio.create_task(self._run(agent, execution, user_text, stream, slot))
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

    async def shutdown(self, timeout: float) -> None:
        """Let running tasks finish for ``timeout`` seconds, then fail the rest."""
        self.draining = True
        runners = [e.runner for e in self._running.values() if e.runner is not None]
        if not runners:
            return
        _, pending = await asyncio.wait(runners, timeout=timeout)
        for execution in list(self._running.values()):
            if execution.runner in pending:
                execution.task.error = SHUTDOWN_FAILURE
                execution.runner.cancel()
        if pending:
            log.warning(
                "%d task(s) did not finish within %.1f s of shutdown; marked failed",
                len(pending),
                timeout,
            )
            await asyncio.wait(pending, timeout=5)

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
        await self._set_state(execution, state)

    async def _run(
        self, agent: Agent, execution: Execution, user_text: str, stream: bool, slot: Slot
    ) -> Task:
        task = execution.task
        meter = UsageMeter()
        with bind(session_id=task.context_id, task_id=task.id):
            try:
                await self._set_state(execution, TaskState.WORKING)
                history = await self.store.history(
                    task.tenant, task.context_id, agent.config.history_messages
                )
                events = agent.run(
                    history, user_text, stream=stream, session_id=task.context_id, meter=meter
                )
                async for event in events:
                    self._apply(execution, event)
                await self.store.append(
                    task.tenant,
                    task.context_id,
                    [Message("user", user_text), Message("assistant", task.reply or "")],
                )
                await self._end(execution, meter, TaskState.COMPLETED)
            except asyncio.CancelledError:
                # a shutdown that ran out of time fails the task; a CancelTask cancels it
                state = TaskState.FAILED if task.error else TaskState.CANCELED
                await self._end(execution, meter, state)
            except (LLMError, AgentError) as exc:
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
        return task

    @staticmethod
    def _apply(execution: Execution, event: RunEvent) -> None:
        if isinstance(event, FinalReply):
            execution.task.reply = event.text
            execution.task.history.append(ChatTurn(new_id(), "agent", event.text))
        else:
            execution.publish(event)
