"""Tasks and sessions. A session (A2A ``contextId``) is the conversation history."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from hector_py.llm.base import Message


class TaskState(StrEnum):
    """Lifecycle of one task (an agent run)."""

    SUBMITTED = "submitted"
    WORKING = "working"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass
class ChatTurn:
    """A user or agent message as the protocol saw it."""

    id: str
    role: str  # "user" | "agent"
    text: str


@dataclass
class Task:
    """One agent run for one incoming message."""

    id: str
    context_id: str
    agent: str
    state: TaskState = TaskState.SUBMITTED
    history: list[ChatTurn] = field(default_factory=list)
    reply: str | None = None
    error: str | None = None
    updated_at: float = field(default_factory=time.time)


def new_id() -> str:
    """A fresh random identifier."""
    return str(uuid.uuid4())


class MemoryStore:
    """Keeps tasks and session histories in process memory."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._sessions: dict[str, list[Message]] = {}

    async def get_task(self, task_id: str) -> Task | None:
        """The task with ``task_id``, if any."""
        return self._tasks.get(task_id)

    async def save_task(self, task: Task) -> None:
        """Insert or replace ``task``."""
        task.updated_at = time.time()
        self._tasks[task.id] = task

    async def history(self, context_id: str) -> list[Message]:
        """The conversation so far in session ``context_id``."""
        return list(self._sessions.get(context_id, ()))

    async def append(self, context_id: str, messages: list[Message]) -> None:
        """Add ``messages`` to session ``context_id``."""
        self._sessions.setdefault(context_id, []).extend(messages)

    async def close(self) -> None:
        """Release resources (nothing to do in memory)."""
