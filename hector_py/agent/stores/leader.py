"""One leader among the replicas sharing a PostgreSQL database, for work that must happen
once (the cron schedules): whoever holds a session advisory lock leads. The lock lives with
the leader's connection, so when the leader dies (or loses the database) it is released and
another replica takes over within a second or two."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from hector_py.agent.stores.availability import StoreUnavailable
from hector_py.agent.stores.postgres import UNREACHABLE, connect
from hector_py.config.storage import StorageConfig

log = logging.getLogger("hector.leader")

ELECTION_S = 1.0
CHECK_TIMEOUT_S = 3.0


class Leader:
    """Runs ``lead()`` while this process holds the lock named ``key``, and ``step_down()``
    once it no longer does."""

    def __init__(
        self,
        dsn: str,
        key: str,
        lead: Callable[[], None],
        step_down: Callable[[], Awaitable[None]],
    ) -> None:
        self._dsn = dsn
        self._key = key
        self._lead = lead
        self._step_down = step_down
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start campaigning (in the background)."""
        self._task = asyncio.create_task(self._campaign())

    async def _campaign(self) -> None:
        while True:
            try:
                conn = await connect(self._dsn)
            except StoreUnavailable:
                await asyncio.sleep(ELECTION_S)
                continue
            try:
                await self._hold(conn)
            except UNREACHABLE:
                pass  # lost the database (and with it the lock): campaign again
            finally:
                conn.terminate()
            await asyncio.sleep(ELECTION_S)

    async def _hold(self, conn: asyncpg.Connection) -> None:
        lock = "SELECT pg_try_advisory_lock(hashtext($1))"
        while not await conn.fetchval(lock, self._key, timeout=CHECK_TIMEOUT_S):
            await asyncio.sleep(ELECTION_S)
        log.info("leading: this process runs the schedules", extra={"lock": self._key})
        self._lead()
        try:
            while True:
                await asyncio.sleep(ELECTION_S)
                await conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)
        finally:
            log.info("no longer leading", extra={"lock": self._key})
            await self._step_down()

    async def close(self) -> None:
        """Stop leading (releasing the lock) and campaigning."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def schedule_leader(
    config: StorageConfig, lead: Callable[[], None], step_down: Callable[[], Awaitable[None]]
) -> Leader | None:
    """The election for the cron schedules among replicas on one PostgreSQL database
    (``None`` for other stores: there, one process runs them)."""
    if config.type != "postgres" or config.dsn is None:
        return None
    key = f"hector-schedules:{config.schema_name}"
    return Leader(config.dsn.get_secret_value(), key, lead, step_down)
