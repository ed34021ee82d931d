"""One suite every store passes unchanged: memory, sqlite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from hector_py.agent.stores import StoreHealth, Task, TaskQuery, TaskState, open_store
from hector_py.agent.stores.base import ChatTurn, Store
from hector_py.agent.stores.pg_schema import LATEST, SchemaTooNew, migrate, schema_version
from hector_py.config.model import ObservabilityConfig, StorageConfig
from hector_py.llm.base import Message
from hector_py.observability.telemetry import Telemetry
from tests.postgres_server import Postgres, new_schema

T = TypeVar("T")
BACKENDS = ("memory", "sqlite", "postgres")


def storage_config(kind: str, tmp_path: Path, postgres: Postgres | None) -> StorageConfig:
    """A fresh, empty store of ``kind``."""
    if kind == "sqlite":
        return StorageConfig(type="sqlite", path=str(tmp_path / "hector.db"))
    if kind == "postgres":
        assert postgres is not None
        return StorageConfig.model_validate(
            {"type": "postgres", "dsn": postgres.dsn, "schema": new_schema()}
        )
    return StorageConfig()


@pytest.fixture(params=BACKENDS)
def with_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[Callable[[Store], Awaitable[T]]], T]:
    """Run ``body(store)`` on a fresh store of each backend, closing it after."""
    kind = request.param
    postgres = request.getfixturevalue("postgres") if kind == "postgres" else None
    config = storage_config(kind, tmp_path, postgres)

    def run(body: Callable[[Store], Awaitable[T]]) -> T:
        async def main() -> T:
            store = await open_store(config, Telemetry(ObservabilityConfig()), StoreHealth())
            try:
                return await body(store)
            finally:
                await store.close()

        return asyncio.run(main())

    return run


def task(n: int, **fields: Any) -> Task:
    base: dict[str, Any] = {
        "id": f"task-{n}",
        "context_id": "ctx-a",
        "agent": "assistant",
        "created_at": 1000.0 + n,
    }
    return Task(**(base | fields))


def test_a_saved_task_reads_back_whole_and_a_save_replaces_it(with_store: Any) -> None:
    async def body(store: Store) -> tuple[Task | None, Task | None, Task | None]:
        first = task(1, history=[ChatTurn("m1", "user", "hi ✓")], tenant="acme")
        await store.save_task(first)
        saved = await store.get_task("acme", "task-1")  # the memory store hands out the live object
        before = Task.from_json(saved.to_json()) if saved else None
        first.state, first.reply, first.prompt_tokens = TaskState.COMPLETED, "hello", 7
        await store.save_task(first)
        return before, await store.get_task("acme", "task-1"), await store.get_task("acme", "no")

    before, after, missing = with_store(body)
    assert before is not None and before.state == TaskState.SUBMITTED
    assert before.history == [ChatTurn("m1", "user", "hi ✓")] and before.tenant == "acme"
    assert after is not None and after.state == TaskState.COMPLETED
    assert (after.reply, after.prompt_tokens) == ("hello", 7)
    assert missing is None


def test_list_filters_pages_newest_status_first_and_counts(with_store: Any) -> None:
    async def body(store: Store) -> list[Any]:
        for n in range(5):
            state = TaskState.COMPLETED if n % 2 else TaskState.WORKING
            await store.save_task(task(n, state=state, context_id=f"ctx-{n % 2}"))
            await asyncio.sleep(0.002)  # distinct status times
        await store.save_task(task(9, agent="other"))
        await store.save_task(task(8, tenant="someone else"))
        first = await store.get_task("", "task-0")
        assert first is not None
        await store.save_task(first)  # its status is the newest now
        return [
            await store.list_tasks(TaskQuery("", "assistant", limit=2)),
            await store.list_tasks(TaskQuery("", "assistant", limit=2, offset=4)),
            await store.list_tasks(TaskQuery("", "assistant", context_id="ctx-1")),
            await store.list_tasks(TaskQuery("", "assistant", state=TaskState.WORKING)),
            await store.list_tasks(TaskQuery("", "assistant", offset=50)),
            await store.list_tasks(TaskQuery("", "nobody")),
            await store.list_tasks(TaskQuery("", "assistant", updated_after=first.updated_at)),
        ]

    pages = with_store(body)
    ids = [([t.id for t in tasks], total) for tasks, total in pages]
    assert ids == [
        (["task-0", "task-4"], 5),
        (["task-1"], 5),
        (["task-3", "task-1"], 2),
        (["task-0", "task-4", "task-2"], 3),
        ([], 5),
        ([], 0),
        ([], 0),
    ]


def test_tasks_and_sessions_belong_to_their_tenant(with_store: Any) -> None:
    async def body(store: Store) -> list[Any]:
        await store.save_task(task(1, tenant="A"))
        await store.append("A", "ctx", [Message("user", "secret of A")])
        await store.append("B", "ctx", [Message("user", "B's own")])
        return [
            await store.get_task("B", "task-1"),
            await store.get_task("", "task-1"),
            [m.content for m in await store.history("A", "ctx", 10)],
            [m.content for m in await store.history("B", "ctx", 10)],
            await store.history("", "ctx", 10),
            await store.list_tasks(TaskQuery("B", "assistant")),
            (await store.list_tasks(TaskQuery("A", "assistant")))[1],
        ]

    assert with_store(body) == [None, None, ["secret of A"], ["B's own"], [], ([], 0), 1]


def test_push_configs_are_kept_per_task_and_tenant(with_store: Any) -> None:
    async def body(store: Store) -> list[Any]:
        await store.save_task(task(1, tenant="A"))
        first = {"id": "one", "url": "https://a.example/hook", "token": "t1"}
        await store.save_push_config("A", "task-1", first)
        await store.save_push_config("A", "task-1", {"id": "two", "url": "https://b.example"})
        await store.save_push_config("A", "task-1", {**first, "token": "t2"})  # replaces
        return [
            await store.push_configs("A", "task-1"),
            await store.push_configs("B", "task-1"),  # another tenant sees none
            await store.delete_push_config("B", "task-1", "one"),
            await store.delete_push_config("A", "task-1", "one"),
            await store.delete_push_config("A", "task-1", "one"),
            [c["id"] for c in await store.push_configs("A", "task-1")],
        ]

    configs, other, foreign_delete, deleted, again, left = with_store(body)
    assert [(c["id"], c.get("token")) for c in configs] == [("one", "t2"), ("two", None)]
    assert (other, foreign_delete, deleted, again, left) == ([], False, True, False, ["two"])


def test_history_is_the_last_messages_oldest_first(with_store: Any) -> None:
    async def body(store: Store) -> list[list[Message]]:
        for n in range(3):
            turn = [Message("user", f"q{n}"), Message("assistant", f"a{n}")]
            await store.append("", "ctx", turn)
        await store.append("", "other", [Message("user", "elsewhere")])
        return [
            await store.history("", "ctx", 3),
            await store.history("", "ctx", 100),
            await store.history("", "ctx", 0),
            await store.history("", "empty", 5),
        ]

    last3, everything, none, empty = with_store(body)
    assert [m.content for m in last3] == ["a1", "q2", "a2"]
    assert [m.content for m in everything] == ["q0", "a0", "q1", "a1", "q2", "a2"]
    assert [m.role for m in everything[:2]] == ["user", "assistant"]
    assert none == [] and empty == []


def test_usage_adds_up_exactly_under_concurrent_charges(with_store: Any) -> None:
    async def body(store: Store) -> tuple[int, int, int, list[int]]:
        totals = await asyncio.gather(
            *(store.add_usage("acme", "2026-01-02", 7) for _ in range(40))
        )
        return (
            await store.usage("acme", "2026-01-02"),
            await store.usage("acme", "2026-01"),
            await store.usage("nobody", "2026-01-02"),
            sorted(totals),
        )

    used, other_period, unknown, totals = with_store(body)
    assert used == 280 and other_period == 0 and unknown == 0
    assert totals == [7 * n for n in range(1, 41)]  # every charge saw a distinct total


def test_postgres_migrations_race_safely_and_refuse_a_newer_schema(postgres: Postgres) -> None:
    schema = new_schema()

    async def main() -> tuple[list[list[int]], int, str]:
        conns = [await asyncpg.connect(postgres.dsn) for _ in range(3)]
        try:
            applied = await asyncio.gather(*(migrate(conn, schema) for conn in conns))
            version = await schema_version(conns[0], schema)
            await conns[0].execute(
                f'INSERT INTO "{schema}".schema_migrations (version) VALUES ($1)', LATEST + 1
            )
            with pytest.raises(SchemaTooNew) as refused:
                await migrate(conns[1], schema)
            return applied, version, str(refused.value)
        finally:
            for conn in conns:
                await conn.close()

    applied, version, refusal = asyncio.run(main())
    assert sorted(applied) == [[], [], list(range(1, LATEST + 1))]  # one replica migrated
    assert version == LATEST
    assert f"version {LATEST + 1}, newer than this hector's {LATEST}" in refusal
