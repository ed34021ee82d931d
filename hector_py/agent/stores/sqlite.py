"""The sqlite store: one file in WAL mode and one transaction per write, so a crash never
leaves a half-written task. Each task has its owner process; tasks of an owner found dead
are marked failed by another (stores/fleet.py), so ``--workers`` share the file safely.

Every cursor is closed as soon as it is read (``async with``): an open cursor keeps its
statement active, and a commit on the shared connection then fails or waits for it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from hector_py.agent.stores.base import Task, TaskQuery
from hector_py.agent.stores.owner import process_owner
from hector_py.agent.stores.sqlite_leases import LEASE_TABLES, SqliteLeases
from hector_py.llm.base import Message
from hector_py.sqlite_tuning import unshared_allocator

unshared_allocator()  # before any connection (see sqlite_tuning)

SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    context_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    data BLOB NOT NULL,
    tenant TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    context_id TEXT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    tenant TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS token_usage (
    tenant TEXT NOT NULL,
    period TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    PRIMARY KEY (tenant, period)
);
CREATE TABLE IF NOT EXISTS push_configs (
    tenant TEXT NOT NULL,
    task_id TEXT NOT NULL,
    id TEXT NOT NULL,
    created_at REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tenant, task_id, id)
);
"""

# Version 1 files (no tenant columns): a task's tenant and status time come from its JSON; a
# session belongs to the tenant of its first task (the anonymous tenant if it has none).
_MIGRATE_1_TO_2 = """
ALTER TABLE tasks ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN updated_at REAL NOT NULL DEFAULT 0;
UPDATE tasks SET
    tenant = COALESCE(json_extract(CAST(data AS TEXT), '$.tenant'), ''),
    updated_at = COALESCE(json_extract(CAST(data AS TEXT), '$.updated_at'), created_at);
ALTER TABLE messages ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
UPDATE messages SET tenant = COALESCE(
    (SELECT t.tenant FROM tasks t WHERE t.context_id = messages.context_id
     ORDER BY t.created_at LIMIT 1), '');
DROP INDEX IF EXISTS tasks_by_agent;
DROP INDEX IF EXISTS messages_by_context;
"""

_INDEXES = """
CREATE INDEX IF NOT EXISTS tasks_by_tenant ON tasks (tenant, agent, updated_at);
CREATE INDEX IF NOT EXISTS messages_by_session ON messages (tenant, context_id, seq);
"""


class SqliteStore(SqliteLeases):
    """Tasks and histories in one sqlite file (WAL mode, one transaction per write)."""

    def __init__(self, db: aiosqlite.Connection, owner: str) -> None:
        self._db = db
        self.owner = owner

    @classmethod
    async def open(cls, path: str, owner: str | None = None) -> SqliteStore:
        """Open (creating or migrating if needed) the database; this process (``owner``)
        owns the tasks it saves."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")  # a PRAGMA's cursor is closed on return
            await db.execute("PRAGMA synchronous=NORMAL")
            await _migrate(db)
        except BaseException:
            await db.close()  # its thread is no daemon: left open, the process never exits
            raise
        return cls(db, owner or process_owner())

    async def get_task(self, tenant: str, task_id: str) -> Task | None:
        """``tenant``'s task ``task_id``; ``None`` if unknown or another tenant's."""
        async with self._db.execute(
            "SELECT data FROM tasks WHERE id = ? AND tenant = ?", (task_id, tenant)
        ) as cursor:
            row = await cursor.fetchone()
        return Task.from_json(row[0]) if row else None

    async def save_task(self, task: Task) -> None:
        """Insert or replace ``task`` in one transaction."""
        task.updated_at = time.time()
        async with self._db.execute(
            "INSERT OR REPLACE INTO tasks"
            " (id, context_id, agent, state, created_at, data, tenant, updated_at, owner)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.id,
                task.context_id,
                task.agent,
                task.state.value,
                task.created_at,
                task.to_json(),
                task.tenant,
                task.updated_at,
                self.owner,
            ),
        ):
            pass
        await self._db.commit()

    async def list_tasks(self, query: TaskQuery) -> tuple[list[Task], int]:
        """A page of the tasks ``query`` selects, newest status first, and how many match."""
        where = ["tenant = ?", "agent = ?"]
        args: list[str | float] = [query.tenant, query.agent]
        if query.context_id is not None:
            where.append("context_id = ?")
            args.append(query.context_id)
        if query.state is not None:
            where.append("state = ?")
            args.append(query.state.value)
        if query.updated_after is not None:
            where.append("updated_at > ?")
            args.append(query.updated_after)
        clause = " AND ".join(where)
        async with self._db.execute(f"SELECT COUNT(*) FROM tasks WHERE {clause}", args) as cur:
            row = await cur.fetchone()
        total = int(row[0]) if row else 0
        async with self._db.execute(
            f"SELECT data FROM tasks WHERE {clause}"
            " ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
            [*args, query.limit, query.offset],
        ) as cursor:
            tasks = [Task.from_json(row[0]) async for row in cursor]
        return tasks, total

    async def history(self, tenant: str, context_id: str, limit: int) -> list[Message]:
        """The last ``limit`` messages of ``tenant``'s session ``context_id``, oldest first."""
        async with self._db.execute(
            "SELECT role, content FROM messages WHERE tenant = ? AND context_id = ?"
            " ORDER BY seq DESC LIMIT ?",
            (tenant, context_id, limit),
        ) as cursor:
            rows = [Message(role, content) async for role, content in cursor]
        return rows[::-1]

    async def append(self, tenant: str, context_id: str, messages: list[Message]) -> None:
        """Add ``messages`` to ``tenant``'s session ``context_id`` in one transaction."""
        async with self._db.executemany(
            "INSERT INTO messages (tenant, context_id, role, content) VALUES (?, ?, ?, ?)",
            [(tenant, context_id, m.role, m.content) for m in messages],
        ):
            pass
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

    async def save_push_config(self, tenant: str, task_id: str, config: dict[str, Any]) -> None:
        """Insert or replace the push-notification config ``config["id"]`` of a task."""
        async with self._db.execute(
            "INSERT INTO push_configs (tenant, task_id, id, created_at, data)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, task_id, id)"
            " DO UPDATE SET data = excluded.data",
            (tenant, task_id, config["id"], time.time(), orjson.dumps(config).decode()),
        ):
            pass
        await self._db.commit()

    async def push_configs(self, tenant: str, task_id: str) -> list[dict[str, Any]]:
        """The push-notification configs of ``tenant``'s task, oldest first."""
        async with self._db.execute(
            "SELECT data FROM push_configs WHERE tenant = ? AND task_id = ?"
            " ORDER BY created_at, id",
            (tenant, task_id),
        ) as cursor:
            return [orjson.loads(row[0]) async for row in cursor]

    async def delete_push_config(self, tenant: str, task_id: str, config_id: str) -> bool:
        """Remove one push-notification config; whether it existed."""
        async with self._db.execute(
            "DELETE FROM push_configs WHERE tenant = ? AND task_id = ? AND id = ?",
            (tenant, task_id, config_id),
        ) as cursor:
            deleted = cursor.rowcount > 0
        await self._db.commit()
        return deleted

    async def close(self) -> None:
        """Give up this process's lease, checkpoint and close the database."""
        await self.release_lease()
        await self._db.close()


async def _migrate(db: aiosqlite.Connection) -> None:
    """Bring the file to :data:`SCHEMA_VERSION` in one transaction (``user_version`` 0 is
    either a new file or one from before tenants: told apart by the ``tasks`` table)."""
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version >= SCHEMA_VERSION:
        return
    async with db.execute("SELECT name FROM pragma_table_info('tasks')") as cursor:
        columns = {name async for (name,) in cursor}
    script = _MIGRATE_1_TO_2 if columns and "tenant" not in columns else ""
    if columns and "owner" not in columns:  # versions 1 and 2: no task owners
        script += "\nALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL DEFAULT '';"
    await db.executescript(
        f"BEGIN;\n{_SCHEMA}\n{script}\n{_INDEXES}\n{LEASE_TABLES}\n"
        f"PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
    )
