"""The sqlite store: one file in WAL mode and one transaction per write, so a crash never
leaves a half-written task; tasks found unfinished at start-up are marked failed, never stuck.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiosqlite

from hector_py.agent.stores.base import INTERRUPTED, Task, TaskState
from hector_py.llm.base import Message

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
