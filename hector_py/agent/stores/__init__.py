"""Tasks and sessions behind one :class:`Store` protocol: in memory (bounded) or in sqlite."""

from __future__ import annotations

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
from hector_py.agent.stores.sqlite import SqliteStore
from hector_py.agent.stores.traced import TracedStore
from hector_py.config.model import StorageConfig
from hector_py.observability.telemetry import Telemetry

__all__ = [
    "INTERRUPTED",
    "ChatTurn",
    "MemoryStore",
    "SqliteStore",
    "Store",
    "Task",
    "TaskQuery",
    "TaskState",
    "TracedStore",
    "new_id",
    "open_store",
]


async def open_store(config: StorageConfig, telemetry: Telemetry) -> Store:
    """The store ``storage:`` describes. With tracing on, each sqlite operation is a ``db``
    span; in-memory operations take microseconds and get none."""
    if config.type == "memory":
        return MemoryStore(config.max_tasks, config.max_sessions)
    store = await SqliteStore.open(config.path)
    return TracedStore(store, telemetry, "sqlite") if telemetry.tracer is not None else store
