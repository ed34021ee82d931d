"""Tasks and sessions behind one :class:`Store` protocol: in memory (bounded), in sqlite,
or in PostgreSQL (shared by replicas)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hector_py.agent.stores.availability import StoreHealth, StoreUnavailable
from hector_py.agent.stores.base import (
    INTERRUPTED,
    ChatTurn,
    Store,
    Task,
    TaskQuery,
    TaskState,
    new_id,
)
from hector_py.agent.stores.memory import MemoryStore
from hector_py.agent.stores.owner import process_owner
from hector_py.agent.stores.postgres import PostgresStore
from hector_py.agent.stores.sqlite import SqliteStore
from hector_py.agent.stores.traced import TracedStore
from hector_py.config.model import StorageConfig

if TYPE_CHECKING:
    from hector_py.observability.telemetry import Telemetry

DB_SYSTEMS = {"sqlite": "sqlite", "postgres": "postgresql"}  # db.system.name values

__all__ = [
    "INTERRUPTED",
    "ChatTurn",
    "MemoryStore",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreHealth",
    "StoreUnavailable",
    "Task",
    "TaskQuery",
    "TaskState",
    "TracedStore",
    "new_id",
    "open_store",
    "prepare_store",
]


async def open_store(
    config: StorageConfig, telemetry: Telemetry, health: StoreHealth | None = None
) -> Store:
    """The store ``storage:`` describes (a shared one reports its reachability to
    ``health``). With tracing on, each sqlite or postgres operation is a ``db`` span;
    in-memory operations take microseconds and get none."""
    if config.type == "memory":
        return MemoryStore(config.max_tasks, config.max_sessions)
    store = await _open_file_or_database(config, health or StoreHealth())
    if telemetry.tracer is None:
        return store
    return TracedStore(store, telemetry, DB_SYSTEMS[config.type])


async def _open_file_or_database(config: StorageConfig, health: StoreHealth) -> Store:
    if config.type == "postgres":
        assert config.dsn is not None  # the config requires it
        return await PostgresStore.open(
            config.dsn.get_secret_value(),
            config.schema_name,
            config.pool.min,
            config.pool.max,
            process_owner(),
            health,
        )
    return await SqliteStore.open(config.path)


async def prepare_store(config: StorageConfig) -> None:
    """Create or migrate the store (and, for sqlite, switch the file to WAL) once, before
    ``--workers`` start: N workers doing it at once would race (``database is locked``)."""
    if config.type != "memory":
        store = await _open_file_or_database(config, StoreHealth())
        await store.close()
