"""Store records and the one protocol every backend implements. A session (A2A ``contextId``)
is the history."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import orjson

from hector_py.llm.base import Message

INTERRUPTED = "interrupted: the server stopped before the task finished"


class TaskState(StrEnum):
    """Lifecycle of one task (an agent run)."""

    SUBMITTED = "submitted"
    WORKING = "working"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        """True once the task can no longer change."""
        return self in (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED)


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
    prompt_tokens: int = 0
    completion_tokens: int = 0
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    tenant: str = ""

    def to_json(self) -> bytes:
        """Serialized form for persistent stores."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> Task:
        """Inverse of :meth:`to_json`."""
        raw: dict[str, Any] = orjson.loads(data)
        raw["state"] = TaskState(raw["state"])
        raw["history"] = [ChatTurn(**turn) for turn in raw["history"]]
        return cls(**raw)


def new_id() -> str:
    """A fresh random identifier."""
    return str(uuid.uuid4())


class Store(Protocol):
    """Where tasks and session histories live."""

    async def get_task(self, task_id: str) -> Task | None:
        """The task with ``task_id``, if any."""
        ...

    async def save_task(self, task: Task) -> None:
        """Insert or replace ``task``."""
        ...

    async def list_tasks(
        self, agent: str, context_id: str | None, state: TaskState | None, limit: int, offset: int
    ) -> tuple[list[Task], int]:
        """A page of ``agent``'s tasks, newest first, and the total that match."""
        ...

    async def history(self, context_id: str, limit: int) -> list[Message]:
        """The last ``limit`` messages of session ``context_id``, oldest first."""
        ...

    async def append(self, context_id: str, messages: list[Message]) -> None:
        """Add ``messages`` to session ``context_id``."""
        ...

    async def usage(self, tenant: str, period: str) -> int:
        """Tokens ``tenant`` used in ``period`` (a key such as ``2026-01-31`` or ``2026-01``)."""
        ...

    async def add_usage(self, tenant: str, period: str, tokens: int) -> int:
        """Add ``tokens`` to ``tenant``'s usage in ``period``; returns the new total."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...
