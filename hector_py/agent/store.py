"""Tasks and sessions, in memory (bounded) or in sqlite. A session (A2A ``contextId``) is the
history.

The sqlite store uses WAL mode and one transaction per write, so a crash never leaves a
half-written task; tasks found unfinished at start-up are marked failed, never stuck.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import orjson

from hector_py.config.model import StorageConfig
from hector_py.llm.base import Message
from hector_py.observability.telemetry import Telemetry

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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    context_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_agent ON tasks (agent, created_at);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    context_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_context ON messages (context_id, seq);
CREATE TABLE IF NOT EXISTS token_usage (
    tenant TEXT NOT NULL,
    period TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    PRIMARY KEY (tenant, period)
);
"""


class SqliteStore:
    """Tasks and histories in one sqlite file (WAL mode, one transaction per write)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        """Open (creating if needed) the database and fail tasks a previous run left open."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.executescript(_SCHEMA)
        store = cls(db)
        await store._fail_unfinished()
        return store

    async def _fail_unfinished(self) -> None:
        async with self._db.execute(
            "SELECT data FROM tasks WHERE state IN (?, ?)",
            (TaskState.SUBMITTED.value, TaskState.WORKING.value),
        ) as cursor:
            stuck = [Task.from_json(row[0]) async for row in cursor]
        for task in stuck:
            task.state, task.error = TaskState.FAILED, INTERRUPTED
            await self.save_task(task)

    async def get_task(self, task_id: str) -> Task | None:
        """The task with ``task_id``, if any."""
        async with self._db.execute("SELECT data FROM tasks WHERE id = ?", (task_id,)) as cursor:
            row = await cursor.fetchone()
        return Task.from_json(row[0]) if row else None

    async def save_task(self, task: Task) -> None:
        """Insert or replace ``task`` in one transaction."""
        task.updated_at = time.time()
        await self._db.execute(
            "INSERT OR REPLACE INTO tasks (id, context_id, agent, state, created_at, data)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                task.id,
                task.context_id,
                task.agent,
                task.state.value,
                task.created_at,
                task.to_json(),
            ),
        )
        await self._db.commit()

    async def list_tasks(
        self, agent: str, context_id: str | None, state: TaskState | None, limit: int, offset: int
    ) -> tuple[list[Task], int]:
        """A page of ``agent``'s tasks, newest first, and the total that match."""
        where, args = ["agent = ?"], [agent]
        if context_id is not None:
            where.append("context_id = ?")
            args.append(context_id)
        if state is not None:
            where.append("state = ?")
            args.append(state.value)
        clause = " AND ".join(where)
        async with self._db.execute(f"SELECT COUNT(*) FROM tasks WHERE {clause}", args) as cur:
            row = await cur.fetchone()
        total = int(row[0]) if row else 0
        async with self._db.execute(
            f"SELECT data FROM tasks WHERE {clause} ORDER BY created_at DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ) as cursor:
            tasks = [Task.from_json(row[0]) async for row in cursor]
        return tasks, total

    async def history(self, context_id: str, limit: int) -> list[Message]:
        """The last ``limit`` messages of session ``context_id``, oldest first."""
        async with self._db.execute(
            "SELECT role, content FROM messages WHERE context_id = ? ORDER BY seq DESC LIMIT ?",
            (context_id, limit),
        ) as cursor:
            rows = [Message(role, content) async for role, content in cursor]
        return rows[::-1]

    async def append(self, context_id: str, messages: list[Message]) -> None:
        """Add ``messages`` to session ``context_id`` in one transaction."""
        await self._db.executemany(
            "INSERT INTO messages (context_id, role, content) VALUES (?, ?, ?)",
            [(context_id, m.role, m.content) for m in messages],
        )
        await self._db.commit()

    async def usage(self, tenant: str, period: str) -> int:
        """Tokens ``tenant`` used in ``period``."""
        async with self._db.execute(
            "SELECT tokens FROM token_usage WHERE tenant = ? AND period = ?", (tenant, period)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def add_usage(self, tenant: str, period: str, tokens: int) -> int:
        """Add ``tokens`` to ``tenant``'s usage in ``period`` in one transaction."""
        async with self._db.execute(
            "INSERT INTO token_usage (tenant, period, tokens) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant, period) DO UPDATE SET tokens = tokens + excluded.tokens"
            " RETURNING tokens",
            (tenant, period, tokens),
        ) as cursor:
            row = await cursor.fetchone()
        await self._db.commit()
        return int(row[0]) if row else tokens

    async def close(self) -> None:
        """Checkpoint and close the database."""
        await self._db.close()


class TracedStore:
    """A store whose every operation is a ``db`` span."""

    def __init__(self, inner: Store, telemetry: Telemetry, system: str) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self._system = system

    async def get_task(self, task_id: str) -> Task | None:
        """The task with ``task_id``, if any."""
        with self._telemetry.store_op("select", "tasks", self._system):
            return await self._inner.get_task(task_id)

    async def save_task(self, task: Task) -> None:
        """Insert or replace ``task``."""
        with self._telemetry.store_op("upsert", "tasks", self._system):
            await self._inner.save_task(task)

    async def list_tasks(
        self, agent: str, context_id: str | None, state: TaskState | None, limit: int, offset: int
    ) -> tuple[list[Task], int]:
        """A page of ``agent``'s tasks, newest first, and the total that match."""
        with self._telemetry.store_op("select", "tasks", self._system):
            return await self._inner.list_tasks(agent, context_id, state, limit, offset)

    async def history(self, context_id: str, limit: int) -> list[Message]:
        """The last ``limit`` messages of session ``context_id``, oldest first."""
        with self._telemetry.store_op("select", "messages", self._system):
            return await self._inner.history(context_id, limit)

    async def append(self, context_id: str, messages: list[Message]) -> None:
        """Add ``messages`` to session ``context_id``."""
        with self._telemetry.store_op("insert", "messages", self._system):
            await self._inner.append(context_id, messages)

    async def usage(self, tenant: str, period: str) -> int:
        """Tokens ``tenant`` used in ``period``."""
        with self._telemetry.store_op("select", "token_usage", self._system):
            return await self._inner.usage(tenant, period)

    async def add_usage(self, tenant: str, period: str, tokens: int) -> int:
        """Add ``tokens`` to ``tenant``'s usage in ``period``; returns the new total."""
        with self._telemetry.store_op("upsert", "token_usage", self._system):
            return await self._inner.add_usage(tenant, period, tokens)

    async def close(self) -> None:
        """Close the wrapped store."""
        await self._inner.close()


async def open_store(config: StorageConfig, telemetry: Telemetry) -> Store:
    """The store ``storage:`` describes. With tracing on, each sqlite operation is a ``db``
    span; in-memory operations take microseconds and get none."""
    if config.type == "memory":
        return MemoryStore(config.max_tasks, config.max_sessions)
    store = await SqliteStore.open(config.path)
    return TracedStore(store, telemetry, "sqlite") if telemetry.tracer is not None else store
