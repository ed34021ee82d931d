"""What lets several processes share one sqlite file (``--workers N``): task owners, leases
and cancel requests, as for PostgreSQL (see stores/fleet.py). Mixed into ``SqliteStore``."""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiosqlite

from hector_py.agent.stores.base import Task, TaskState

UNFINISHED = (TaskState.SUBMITTED.value, TaskState.WORKING.value)

LEASE_TABLES = """
CREATE TABLE IF NOT EXISTS replicas (owner TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS cancel_requests (task_id TEXT PRIMARY KEY, owner TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks (owner)
    WHERE state IN ('submitted', 'working');
"""


def _marks(values: Sequence[str]) -> str:
    return ", ".join("?" for _ in values)


class SqliteLeases:
    """Lease and cancel-request primitives on the store's connection."""

    _db: aiosqlite.Connection
    owner: str

    async def _rows(self, sql: str, args: Sequence[object]) -> list[tuple[object, ...]]:
        async with self._db.execute(sql, args) as cursor:
            return [tuple(row) async for row in cursor]

    async def find_task(self, task_id: str) -> Task | None:
        """The task ``task_id`` whoever's it is (for the fleet, after the caller's check)."""
        rows = await self._rows("SELECT data FROM tasks WHERE id = ?", (task_id,))
        return Task.from_json(rows[0][0]) if rows else None  # type: ignore[arg-type]

    async def renew_lease(self, seconds: float) -> None:
        """This process is alive for ``seconds`` more."""
        await self._rows(
            "INSERT INTO replicas (owner, expires_at) VALUES (?, ?)"
            " ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at",
            (self.owner, time.time() + seconds),
        )
        await self._db.commit()

    async def unfinished_owners(self) -> dict[str, bool]:
        """Owners of unfinished tasks other than this process, and whether each one's lease
        is still current."""
        rows = await self._rows(
            "SELECT t.owner, COALESCE(MAX(r.expires_at > ?), 0) FROM"
            " (SELECT DISTINCT owner FROM tasks WHERE state IN (?, ?) AND owner <> ?) t"
            " LEFT JOIN replicas r ON r.owner = t.owner GROUP BY t.owner",
            (time.time(), *UNFINISHED, self.owner),
        )
        return {str(owner): bool(live) for owner, live in rows}

    async def own_unfinished(self, before: float) -> list[str]:
        """The ids of this process's tasks the store has as unfinished since ``before``."""
        rows = await self._rows(
            "SELECT id FROM tasks WHERE owner = ? AND state IN (?, ?) AND updated_at < ?",
            (self.owner, *UNFINISHED, before),
        )
        return [str(row[0]) for row in rows]

    async def fail_owned(self, owners: Sequence[str], error: str) -> list[str]:
        """Mark every unfinished task of ``owners`` failed with ``error``; their ids."""
        failed = await self._fail("owner", owners, error)
        await self._rows(f"DELETE FROM replicas WHERE owner IN ({_marks(owners)})", owners)
        await self._db.commit()
        return failed

    async def fail_tasks(self, task_ids: Sequence[str], error: str) -> list[str]:
        """Mark the unfinished ones of ``task_ids`` failed with ``error``; their ids."""
        return await self._fail("id", task_ids, error)

    async def _fail(self, column: str, values: Sequence[str], error: str) -> list[str]:
        now = time.time()
        rows = await self._rows(
            "UPDATE tasks SET state = 'failed', updated_at = ?, data = json_set("
            " CAST(data AS TEXT), '$.state', 'failed', '$.error', ?, '$.updated_at', ?)"
            f" WHERE {column} IN ({_marks(values)}) AND state IN (?, ?) RETURNING id",
            (now, error, now, *values, *UNFINISHED),
        )
        await self._db.commit()
        return [str(row[0]) for row in rows]

    async def request_cancel(self, task_id: str) -> bool:
        """Ask the owner of unfinished task ``task_id`` to cancel it; False if finished."""
        rows = await self._rows(
            "INSERT INTO cancel_requests (task_id, owner)"
            " SELECT id, owner FROM tasks WHERE id = ? AND state IN (?, ?)"
            " ON CONFLICT (task_id) DO NOTHING RETURNING task_id",
            (task_id, *UNFINISHED),
        )
        await self._db.commit()
        return bool(rows)

    async def take_cancel_requests(self) -> list[str]:
        """The ids of this process's tasks others asked to cancel (each returned once)."""
        asked = "SELECT 1 FROM cancel_requests WHERE owner = ? LIMIT 1"
        if not await self._rows(asked, (self.owner,)):  # the usual case: no write at all
            return []
        rows = await self._rows(
            "DELETE FROM cancel_requests WHERE owner = ? RETURNING task_id", (self.owner,)
        )
        await self._db.commit()
        return [str(row[0]) for row in rows]

    async def release_lease(self) -> None:
        """Give up this process's lease (at close)."""
        await self._rows("DELETE FROM replicas WHERE owner = ?", (self.owner,))
        await self._db.commit()
