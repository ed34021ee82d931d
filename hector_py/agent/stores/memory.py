"""The in-memory store: bounded, per process."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Any

from hector_py.agent.stores.base import Task, TaskQuery
from hector_py.llm.base import Message

SESSION_MAX_MESSAGES = 1_000
SESSION_MAX_CHARS = 2_000_000


class _Session:
    """One session's most recent messages, within :data:`SESSION_MAX_MESSAGES` and
    :data:`SESSION_MAX_CHARS` (older ones are dropped: the runner reads only the last few)."""

    def __init__(self) -> None:
        self.messages: deque[Message] = deque()
        self.chars = 0

    def extend(self, messages: list[Message]) -> None:
        for message in messages:
            self.messages.append(message)
            self.chars += len(message.content)
        while self.messages and (
            len(self.messages) > SESSION_MAX_MESSAGES or self.chars > SESSION_MAX_CHARS
        ):
            self.chars -= len(self.messages.popleft().content)


class MemoryStore:
    """Keeps tasks and session histories in process memory, within bounds.

    Past ``max_tasks`` it forgets the tasks that finished longest ago (never one that has not
    finished); past ``max_sessions``, the least recently used session. A session keeps only
    its latest messages (:data:`SESSION_MAX_MESSAGES`, :data:`SESSION_MAX_CHARS`).
    """

    def __init__(self, max_tasks: int, max_sessions: int) -> None:
        self._max_tasks = max_tasks
        self._max_sessions = max_sessions
        self._tasks: dict[str, Task] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()  # terminal ids, oldest first
        self._sessions: OrderedDict[tuple[str, str], _Session] = OrderedDict()  # LRU first
        self._usage: dict[tuple[str, str], int] = {}
        self._push: dict[str, dict[str, dict[str, Any]]] = {}  # task id -> config id -> config

    async def get_task(self, tenant: str, task_id: str) -> Task | None:
        """``tenant``'s task ``task_id``; ``None`` if unknown or another tenant's."""
        task = self._tasks.get(task_id)
        return task if task is not None and task.tenant == tenant else None

    async def save_task(self, task: Task) -> None:
        """Insert or replace ``task``, then forget the oldest finished tasks past the bound."""
        task.updated_at = time.time()
        self._tasks[task.id] = task
        if task.state.terminal:
            self._finished[task.id] = None
        else:
            self._finished.pop(task.id, None)  # resumed (input-required -> working)
        while len(self._tasks) > self._max_tasks and self._finished:
            forgotten = self._finished.popitem(last=False)[0]
            del self._tasks[forgotten]
            self._push.pop(forgotten, None)

    async def list_tasks(self, query: TaskQuery) -> tuple[list[Task], int]:
        """A page of the tasks ``query`` selects, newest status first, and how many match."""
        matching = [task for task in self._tasks.values() if query.matches(task)]
        matching.sort(key=lambda task: (task.updated_at, task.id), reverse=True)
        return matching[query.offset : query.offset + query.limit], len(matching)

    async def history(self, tenant: str, context_id: str, limit: int) -> list[Message]:
        """The last ``limit`` messages of ``tenant``'s session ``context_id``, oldest first."""
        session = self._sessions.get((tenant, context_id))
        if session is None or not limit:
            return []
        self._sessions.move_to_end((tenant, context_id))
        return list(session.messages)[-limit:]

    async def append(self, tenant: str, context_id: str, messages: list[Message]) -> None:
        """Add ``messages`` to ``tenant``'s session ``context_id``, forgetting the least
        recently used session past the bound."""
        key = (tenant, context_id)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session()
            if len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(key)
        session.extend(messages)

    async def usage(self, tenant: str, period: str) -> int:
        """Tokens ``tenant`` used in ``period``."""
        return self._usage.get((tenant, period), 0)

    async def add_usage(self, tenant: str, period: str, tokens: int) -> int:
        """Add ``tokens`` to ``tenant``'s usage in ``period``; returns the new total."""
        total = self._usage[(tenant, period)] = self._usage.get((tenant, period), 0) + tokens
        return total

    async def save_push_config(self, tenant: str, task_id: str, config: dict[str, Any]) -> None:
        """Insert or replace the push-notification config ``config["id"]`` of a task (one
        about to start, too: forgotten with its task)."""
        self._push.setdefault(task_id, {})[config["id"]] = config

    def has_push_configs(self, task_id: str) -> bool:
        """Whether a task has push configs (no ``await``: one process holds them all)."""
        return bool(self._push.get(task_id))

    async def push_configs(self, tenant: str, task_id: str) -> list[dict[str, Any]]:
        """The push-notification configs of ``tenant``'s task, oldest first."""
        if await self.get_task(tenant, task_id) is None:
            return []
        return list(self._push.get(task_id, {}).values())

    async def delete_push_config(self, tenant: str, task_id: str, config_id: str) -> bool:
        """Remove one push-notification config; whether it existed."""
        if await self.get_task(tenant, task_id) is None:
            return False
        return self._push.get(task_id, {}).pop(config_id, None) is not None

    async def close(self) -> None:
        """Nothing to release in memory."""
