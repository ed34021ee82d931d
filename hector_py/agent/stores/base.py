"""Store records and the one protocol every backend implements.

A session (A2A ``contextId``) is the history. Every task and session belongs to a tenant (the
empty string is the anonymous tenant): a backend looks tasks and sessions up by tenant and id
together, so another tenant's id reads exactly like an unknown one.
"""

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
    INPUT_REQUIRED = "input-required"

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
    data: Any = None
    """The reply as JSON, when the agent has an output schema."""
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    """``provider/model`` that gave the reply (a fallback's when the primary failed)."""
    pending: dict[str, Any] | None = None
    """A run paused for approval (``agent/approval.py``), while ``input-required``."""
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


@dataclass(frozen=True)
class TaskQuery:
    """Which tasks :meth:`Store.list_tasks` returns: one tenant's tasks of one agent,
    newest status first (``updated_at`` descending, then ``id``)."""

    tenant: str
    agent: str
    context_id: str | None = None
    state: TaskState | None = None
    updated_after: float | None = None  # only tasks whose status changed after this time
    limit: int = 50
    offset: int = 0

    def matches(self, task: Task) -> bool:
        """Whether ``task`` passes the query's filters (paging aside)."""
        return (
            task.tenant == self.tenant
            and task.agent == self.agent
            and (self.context_id is None or task.context_id == self.context_id)
            and (self.state is None or task.state == self.state)
            and (self.updated_after is None or task.updated_at > self.updated_after)
        )


def new_id() -> str:
    """A fresh random identifier."""
    return str(uuid.uuid4())


class Store(Protocol):
    """Where tasks and session histories live, each scoped to its tenant."""

    async def get_task(self, tenant: str, task_id: str) -> Task | None:
        """``tenant``'s task ``task_id``; ``None`` if unknown or another tenant's."""
        ...

    async def save_task(self, task: Task) -> None:
        """Insert or replace ``task`` (owned by ``task.tenant``), stamping ``updated_at``."""
        ...

    async def list_tasks(self, query: TaskQuery) -> tuple[list[Task], int]:
        """A page of the tasks ``query`` selects, newest status first, and how many match."""
        ...

    async def history(self, tenant: str, context_id: str, limit: int) -> list[Message]:
        """The last ``limit`` messages of ``tenant``'s session ``context_id``, oldest first."""
        ...

    async def append(self, tenant: str, context_id: str, messages: list[Message]) -> None:
        """Add ``messages`` to ``tenant``'s session ``context_id`` (created if new)."""
        ...

    async def usage(self, tenant: str, period: str) -> int:
        """Tokens ``tenant`` used in ``period`` (a key such as ``2026-01-31`` or ``2026-01``)."""
        ...

    async def add_usage(self, tenant: str, period: str, tokens: int) -> int:
        """Add ``tokens`` to ``tenant``'s usage in ``period``; returns the new total.
        ``tokens`` may be negative (budgets give back what a reservation held unused), and
        concurrent calls must each see the others' (budgets rely on it)."""
        ...

    async def save_push_config(self, tenant: str, task_id: str, config: dict[str, Any]) -> None:
        """Insert or replace the push-notification config ``config["id"]`` of a task."""
        ...

    async def push_configs(self, tenant: str, task_id: str) -> list[dict[str, Any]]:
        """The push-notification configs of ``tenant``'s task, oldest first."""
        ...

    async def delete_push_config(self, tenant: str, task_id: str, config_id: str) -> bool:
        """Remove one push-notification config; whether it existed."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...
