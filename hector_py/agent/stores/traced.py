"""A store wrapper that makes every operation a ``db`` span."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hector_py.agent.stores.base import Store, Task, TaskQuery
from hector_py.llm.base import Message

if TYPE_CHECKING:
    from hector_py.observability.telemetry import Telemetry


class TracedStore:
    """A store whose every operation is a ``db`` span."""

    def __init__(self, inner: Store, telemetry: Telemetry, system: str) -> None:
        self._inner = inner
        self._telemetry = telemetry
        self._system = system

    @property
    def inner(self) -> Store:
        """The store it wraps."""
        return self._inner

    async def get_task(self, tenant: str, task_id: str) -> Task | None:
        """``tenant``'s task ``task_id``; ``None`` if unknown or another tenant's."""
        with self._telemetry.store_op("select", "tasks", self._system):
            return await self._inner.get_task(tenant, task_id)

    async def save_task(self, task: Task) -> None:
        """Insert or replace ``task``."""
        with self._telemetry.store_op("upsert", "tasks", self._system):
            await self._inner.save_task(task)

    async def list_tasks(self, query: TaskQuery) -> tuple[list[Task], int]:
        """A page of the tasks ``query`` selects, newest status first, and how many match."""
        with self._telemetry.store_op("select", "tasks", self._system):
            return await self._inner.list_tasks(query)

    async def history(self, tenant: str, context_id: str, limit: int) -> list[Message]:
        """The last ``limit`` messages of ``tenant``'s session ``context_id``, oldest first."""
        with self._telemetry.store_op("select", "messages", self._system):
            return await self._inner.history(tenant, context_id, limit)

    async def append(self, tenant: str, context_id: str, messages: list[Message]) -> None:
        """Add ``messages`` to ``tenant``'s session ``context_id``."""
        with self._telemetry.store_op("insert", "messages", self._system):
            await self._inner.append(tenant, context_id, messages)

    async def usage(self, tenant: str, period: str) -> int:
        """Tokens ``tenant`` used in ``period``."""
        with self._telemetry.store_op("select", "token_usage", self._system):
            return await self._inner.usage(tenant, period)

    async def add_usage(self, tenant: str, period: str, tokens: int) -> int:
        """Add ``tokens`` to ``tenant``'s usage in ``period``; returns the new total."""
        with self._telemetry.store_op("upsert", "token_usage", self._system):
            return await self._inner.add_usage(tenant, period, tokens)

    async def save_push_config(self, tenant: str, task_id: str, config: dict[str, Any]) -> None:
        """Insert or replace the push-notification config ``config["id"]`` of a task."""
        with self._telemetry.store_op("upsert", "push_configs", self._system):
            await self._inner.save_push_config(tenant, task_id, config)

    async def push_configs(self, tenant: str, task_id: str) -> list[dict[str, Any]]:
        """The push-notification configs of ``tenant``'s task, oldest first."""
        with self._telemetry.store_op("select", "push_configs", self._system):
            return await self._inner.push_configs(tenant, task_id)

    async def delete_push_config(self, tenant: str, task_id: str, config_id: str) -> bool:
        """Remove one push-notification config; whether it existed."""
        with self._telemetry.store_op("delete", "push_configs", self._system):
            return await self._inner.delete_push_config(tenant, task_id, config_id)

    async def close(self) -> None:
        """Close the wrapped store."""
        await self._inner.close()
