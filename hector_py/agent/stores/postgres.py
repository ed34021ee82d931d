"""The PostgreSQL store: one database shared by every replica (asyncpg and its pool).

Every operation is one statement (or one transaction), so replicas never see a half-written
task; token usage is charged by one atomic upsert. A process owns the tasks it saves
(``owner``); the lease primitives here let the others find and fail a dead owner's tasks.
Losing the database marks the store unavailable (readiness fails, requests get 503) until a
probe reaches it again; the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import orjson

from hector_py.agent.stores.availability import StoreHealth, StoreUnavailable
from hector_py.agent.stores.base import Task, TaskQuery, TaskState
from hector_py.agent.stores.pg_schema import LATEST, migrate, schema_version
from hector_py.llm.base import Message

CONNECT_TIMEOUT_S = 3.0
COMMAND_TIMEOUT_S = 10.0
ACQUIRE_TIMEOUT_S = 5.0
PROBE_INTERVAL_S = 1.0
UNFINISHED = (TaskState.SUBMITTED.value, TaskState.WORKING.value)

# What "the database is not there" looks like: refused or dropped connections, timeouts,
# a server shutting down or still starting.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,  # a connection cut mid-operation
)


def _without_traceback(record: logging.LogRecord) -> bool:
    """asyncpg's pool logs each failed reconnect with a traceback; the outage is already
    reported once (``store unavailable``), so keep its one line only."""
    record.exc_info = None
    record.exc_text = None
    return True


logging.getLogger("asyncpg.pool").addFilter(_without_traceback)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Hand a connection back to the pool as it is. The store's statements change no session
    state (no LISTEN, SET or advisory lock; asyncpg still rolls back an open transaction),
    so asyncpg's default reset query would only add a round trip to every operation."""


def reason(exc: BaseException) -> str:
    """What went wrong, in one line (the exception's type and message)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection (for migrations and ``validate --check-connections``); raises
    :class:`StoreUnavailable` when the database cannot be reached."""
    try:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except UNREACHABLE as exc:
        raise StoreUnavailable(reason(exc)) from None
    except (asyncpg.PostgresError, ValueError) as exc:  # bad password, unknown database,
        raise StoreUnavailable(reason(exc)) from None  # a malformed dsn, ...


class PostgresStore:
    """Tasks, histories, usage and leases in PostgreSQL, shared by every replica."""

    def __init__(self, pool: asyncpg.Pool, owner: str, health: StoreHealth) -> None:
        self._pool = pool
        self.owner = owner
        self.health = health
        self._probe: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, dsn: str, schema: str, pool_min: int, pool_max: int, owner: str, health: StoreHealth
    ) -> PostgresStore:
        """Migrate ``schema`` (under an advisory lock), open the pool and start probing."""
        conn = await connect(dsn)
        try:
            await migrate(conn, schema)
        finally:
            await conn.close()
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=pool_min,
                max_size=pool_max,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                reset=_keep_session,
                server_settings={"search_path": schema, "application_name": "hector"},
            )
        except UNREACHABLE as exc:
            raise StoreUnavailable(reason(exc)) from None
        store = cls(pool, owner, health)
        store._probe = asyncio.create_task(store._watch())
        return store

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A pooled connection; an unreachable database becomes :class:`StoreUnavailable`."""
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                yield conn
        except UNREACHABLE as exc:
            self.health.failed(reason(exc))
            raise StoreUnavailable(reason(exc)) from None

    def connection(
        self,
    ) -> contextlib.AbstractAsyncContextManager[asyncpg.pool.PoolConnectionProxy]:
        """A pooled connection; ``StoreUnavailable`` when the database is away."""
        return self._conn()

    async def _watch(self) -> None:
        """Probe the database every second: readiness follows it, both ways."""
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            with contextlib.suppress(StoreUnavailable):
                async with self._conn() as conn:
                    await conn.fetchval("SELECT 1")
                self.health.recovered()

    async def get_task(self, tenant: str, task_id: str) -> Task | None:
        """``tenant``'s task ``task_id``; ``None`` if unknown or another tenant's."""
        async with self._conn() as conn:
            data = await conn.fetchval(
                "SELECT data FROM tasks WHERE id = $1 AND tenant = $2", task_id, tenant
            )
        return Task.from_json(data) if data is not None else None

    async def find_task(self, task_id: str) -> Task | None:
        """The task ``task_id`` whoever's it is (for the fleet, after the caller's check)."""
        async with self._conn() as conn:
            data = await conn.fetchval("SELECT data FROM tasks WHERE id = $1", task_id)
        return Task.from_json(data) if data is not None else None

    async def save_task(self, task: Task) -> None:
        """Insert or replace ``task``, stamping ``updated_at``; this process owns it."""
        task.updated_at = time.time()
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO tasks (id, context_id, agent, tenant, state, owner, created_at,"
                " updated_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
                " owner = excluded.owner, updated_at = excluded.updated_at, data = excluded.data",
                task.id,
                task.context_id,
                task.agent,
                task.tenant,
                task.state.value,
                self.owner,
                task.created_at,
                task.updated_at,
                task.to_json().decode(),
            )

    async def list_tasks(self, query: TaskQuery) -> tuple[list[Task], int]:
        """A page of the tasks ``query`` selects, newest status first, and how many match."""
        where = ["tenant = $1", "agent = $2"]
        args: list[str | float] = [query.tenant, query.agent]
        filters = (
            ("context_id =", query.context_id),
            ("state =", query.state and query.state.value),
            ("updated_at >", query.updated_after),
        )
        for condition, value in filters:
            if value is not None:
                args.append(value)
                where.append(f"{condition} ${len(args)}")
        clause = " AND ".join(where)
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT data, count(*) OVER () AS total FROM tasks WHERE {clause}"
                f" ORDER BY updated_at DESC, id DESC"
                f" LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
                *args,
                query.limit,
                query.offset,
            )
            if rows or query.offset == 0:
                total = int(rows[0]["total"]) if rows else 0
            else:  # a page past the end: count on its own
                total = int(
                    await conn.fetchval(f"SELECT count(*) FROM tasks WHERE {clause}", *args)
                )
        return [Task.from_json(row["data"]) for row in rows], total

    async def history(self, tenant: str, context_id: str, limit: int) -> list[Message]:
        """The last ``limit`` messages of ``tenant``'s session ``context_id``, oldest first."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT role, content FROM messages WHERE tenant = $1 AND context_id = $2"
                " ORDER BY seq DESC LIMIT $3",
                tenant,
                context_id,
                limit,
            )
        return [Message(row["role"], row["content"]) for row in reversed(rows)]

    async def append(self, tenant: str, context_id: str, messages: list[Message]) -> None:
        """Add ``messages`` to ``tenant``'s session ``context_id`` in one statement."""
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO messages (tenant, context_id, role, content)"
                " SELECT $1, $2, role, content"
                " FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS m(role, content, n)"
                " ORDER BY n",
                tenant,
                context_id,
                [m.role for m in messages],
                [m.content for m in messages],
            )

    async def usage(self, tenant: str, period: str) -> int:
        """Tokens ``tenant`` used in ``period``."""
        async with self._conn() as conn:
            tokens = await conn.fetchval(
                "SELECT tokens FROM token_usage WHERE tenant = $1 AND period = $2", tenant, period
            )
        return int(tokens or 0)

    async def add_usage(self, tenant: str, period: str, tokens: int) -> int:
        """Add ``tokens`` to ``tenant``'s usage in ``period`` (one atomic upsert)."""
        async with self._conn() as conn:
            total = await conn.fetchval(
                "INSERT INTO token_usage (tenant, period, tokens) VALUES ($1, $2, $3)"
                " ON CONFLICT (tenant, period)"
                " DO UPDATE SET tokens = token_usage.tokens + excluded.tokens RETURNING tokens",
                tenant,
                period,
                tokens,
            )
        return int(total)

    async def save_push_config(self, tenant: str, task_id: str, config: dict[str, Any]) -> None:
        """Insert or replace the push-notification config ``config["id"]`` of a task."""
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO push_configs (tenant, task_id, id, created_at, data)"
                " VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (tenant, task_id, id)"
                " DO UPDATE SET data = excluded.data",
                tenant,
                task_id,
                config["id"],
                time.time(),
                orjson.dumps(config).decode(),
            )

    async def push_configs(self, tenant: str, task_id: str) -> list[dict[str, Any]]:
        """The push-notification configs of ``tenant``'s task, oldest first."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT data::text FROM push_configs WHERE tenant = $1 AND task_id = $2"
                " ORDER BY created_at, id",
                tenant,
                task_id,
            )
        return [orjson.loads(row[0]) for row in rows]

    async def delete_push_config(self, tenant: str, task_id: str, config_id: str) -> bool:
        """Remove one push-notification config; whether it existed."""
        async with self._conn() as conn:
            status = await conn.execute(
                "DELETE FROM push_configs WHERE tenant = $1 AND task_id = $2 AND id = $3",
                tenant,
                task_id,
                config_id,
            )
        return bool(status != "DELETE 0")

    # --- leases and cross-process requests (see stores/fleet.py) ------------------------

    async def renew_lease(self, seconds: float) -> None:
        """This process is alive for ``seconds`` more."""
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO replicas (owner, expires_at)"
                " VALUES ($1, now() + make_interval(secs => $2))"
                " ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at",
                self.owner,
                seconds,
            )

    async def unfinished_owners(self) -> dict[str, bool]:
        """Owners of unfinished tasks other than this process, and whether each one's lease
        is still current."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT t.owner, coalesce(bool_or(r.expires_at > now()), false) AS live"
                " FROM (SELECT DISTINCT owner FROM tasks"
                "       WHERE state = ANY($1::text[]) AND owner <> $2) t"
                " LEFT JOIN replicas r ON r.owner = t.owner GROUP BY t.owner",
                list(UNFINISHED),
                self.owner,
            )
        return {row["owner"]: bool(row["live"]) for row in rows}

    async def own_unfinished(self, before: float) -> list[str]:
        """The ids of this process's tasks the store has as unfinished since ``before``."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id FROM tasks WHERE owner = $1 AND state = ANY($2::text[])"
                " AND updated_at < $3",
                self.owner,
                list(UNFINISHED),
                before,
            )
        return [row["id"] for row in rows]

    async def fail_owned(self, owners: Sequence[str], error: str) -> list[str]:
        """Mark every unfinished task of ``owners`` failed with ``error``; their ids."""
        failed = await self._fail("owner", owners, error)
        async with self._conn() as conn:
            await conn.execute("DELETE FROM replicas WHERE owner = ANY($1::text[])", list(owners))
        return failed

    async def fail_tasks(self, task_ids: Sequence[str], error: str) -> list[str]:
        """Mark the unfinished ones of ``task_ids`` failed with ``error``; their ids."""
        return await self._fail("id", task_ids, error)

    async def _fail(self, column: str, values: Sequence[str], error: str) -> list[str]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "UPDATE tasks SET state = 'failed', data = data || jsonb_build_object("
                " 'state', 'failed', 'error', $3::text, 'updated_at', $4::float8),"
                f" updated_at = $4 WHERE {column} = ANY($1::text[])"
                " AND state = ANY($2::text[]) RETURNING id",
                list(values),
                list(UNFINISHED),
                error,
                time.time(),
            )
        return [row["id"] for row in rows]

    async def request_cancel(self, task_id: str) -> bool:
        """Ask the owner of unfinished task ``task_id`` to cancel it; False if finished."""
        async with self._conn() as conn:
            status = await conn.execute(
                "INSERT INTO cancel_requests (task_id, owner)"
                " SELECT id, owner FROM tasks WHERE id = $1 AND state = ANY($2::text[])"
                " ON CONFLICT (task_id) DO NOTHING",
                task_id,
                list(UNFINISHED),
            )
        return bool(status.endswith(" 1"))

    async def take_cancel_requests(self) -> list[str]:
        """The ids of this process's tasks others asked to cancel (each returned once)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "DELETE FROM cancel_requests WHERE owner = $1 RETURNING task_id", self.owner
            )
        return [row["task_id"] for row in rows]

    async def close(self) -> None:
        """Stop probing, give up this process's lease and close the pool."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        with contextlib.suppress(StoreUnavailable):
            async with self._conn() as conn:
                await conn.execute("DELETE FROM replicas WHERE owner = $1", self.owner)
        try:
            await asyncio.wait_for(self._pool.close(), COMMAND_TIMEOUT_S)
        except Exception:  # the database is gone (or too slow): drop the connections
            self._pool.terminate()


async def check_connection(dsn: str, schema: str) -> tuple[bool, str]:
    """``hector validate --check-connections``: can we connect, and which schema version
    is there? (ok, one line saying so)."""
    try:
        conn = await connect(dsn)
    except StoreUnavailable as exc:
        return False, f"cannot connect to PostgreSQL: {exc.reason}"
    try:
        version = await schema_version(conn, schema)
    finally:
        await conn.close()
    if version > LATEST:
        return (
            False,
            f"schema '{schema}' is at version {version}, newer than this hector's {LATEST}",
        )
    note = "" if version == LATEST else " (serve migrates it at start-up)"
    return True, f"PostgreSQL reachable; schema '{schema}' at version {version} of {LATEST}{note}"
