"""Tasks and sessions behind one :class:`Store` protocol: in memory (bounded), in sqlite,
or in PostgreSQL (shared by replicas)."""

from __future__ import annotations

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
from hector_py.observability.telemetry import Telemetry

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
]


async def open_store(
    config: StorageConfig, telemetry: Telemetry, health: StoreHealth | None = None
) -> Store:
    """The store ``storage:`` describes (a shared one reports its reachability to
    ``health``). With tracing on, each sqlite or postgres operation is a ``db`` span;
    in-memory operations take microseconds and get none."""
    if config.type == "memory":
        return MemoryStore(config.max_tasks, config.max_sessions)
    store: Store
    if config.type == "postgres":
        assert config.dsn is not None  # the config requires it
        store = await PostgresStore.open(
            config.dsn.get_secret_value(),
            config.schema_name,
            config.pool.min,
            config.pool.max,
            process_owner(),
            health or StoreHealth(),
        )
    else:
        store = await SqliteStore.open(config.path)
    return TracedStore(store, telemetry, config.type) if telemetry.tracer is not None else store
