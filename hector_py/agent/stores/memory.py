"""The in-memory store: bounded, per process."""

from __future__ import annotations

import time
from collections import OrderedDict

from hector_py.agent.stores.base import Task, TaskState
from hector_py.llm.base import Message


class MemoryStore:
    """Keeps tasks and session histories in process memory, within bounds.

    Past ``max_tasks`` it forgets the tasks that finished longest ago (never one still
    submitted or working); past ``max_sessions``, the least recently used session's history.
    """

    def __init__(self, max_tasks: int, max_sessions: int) -> None:
        self._max_tasks = max_tasks
        self._max_sessions = max_sessions
        self._tasks: dict[str, Task] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()  # terminal ids, oldest first
        self._sessions: OrderedDict[str, list[Message]] = OrderedDict()  # least recent first
        self._usage: dict[tuple[str, str], int] = {}

    async def get_task(self, task_id: str) -> Task | None:
        """The task with ``task_id``, if any."""
        return self._tasks.get(task_id)

    async def save_task(self, task: Task) -> None:
        """Insert or replace ``task``, then forget the oldest finished tasks past the bound."""
        task.updated_at = time.time()
        self._tasks[task.id] = task
        if task.state.terminal:
            self._finished[task.id] = None
        while len(self._tasks) > self._max_tasks and self._finished:
            del self._tasks[self._finished.popitem(last=False)[0]]

    async def list_tasks(
        self, agent: str, context_id: str | None, state: TaskState | None, limit: int, offset: int
    ) -> tuple[list[Task], int]:
        """A page of ``agent``'s tasks, newest first, and the total that match."""
        matching = [
            task
            for task in self._tasks.values()
            if task.agent == agent
            and (context_id is None or task.context_id == context_id)
            and (state is None or task.state == state)
        ]
        matching.sort(key=lambda task: task.created_at, reverse=True)
        return matching[offset : offset + limit], len(matching)

    async def history(self, context_id: str, limit: int) -> list[Message]:
        """The last ``limit`` messages of session ``context_id``, oldest first."""
        session = self._sessions.get(context_id)
        if session is None:
            return []
        self._sessions.move_to_end(context_id)
        return session[-limit:] if limit else []

    async def append(self, context_id: str, messages: list[Message]) -> None:
        """Add ``messages`` to session ``context_id``, forgetting the least recently used
        session past the bound."""
        session = self._sessions.get(context_id)
        if session is None:
            session = self._sessions[context_id] = []
            if len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(context_id)
        session.extend(messages)

    async def usage(self, tenant: str, period: str) -> int:
        """Tokens ``tenant`` used in ``period``."""
        return self._usage.get((tenant, period), 0)

    async def add_usage(self, tenant: str, period: str, tokens: int) -> int:
        """Add ``tokens`` to ``tenant``'s usage in ``period``; returns the new total."""
        total = self._usage[(tenant, period)] = self._usage.get((tenant, period), 0) + tokens
        return total

    async def close(self) -> None:
        """Nothing to release in memory."""
