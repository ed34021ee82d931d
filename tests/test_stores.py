"""The stores themselves: tenant scoping, the sqlite migration, bounds and concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
import pytest

from hector_py.agent.stores import (
    MemoryStore,
    SqliteStore,
    Store,
    Task,
    TaskQuery,
    TaskState,
    new_id,
)
from hector_py.agent.stores import memory as memory_store
from hector_py.agent.stores.sqlite import SCHEMA_VERSION
from hector_py.llm.base import Message


async def _sqlite(path: Path) -> Store:
    return await SqliteStore.open(str(path / "hector.db"))


async def _memory(path: Path) -> Store:
    return MemoryStore(1000, 1000)


@pytest.mark.parametrize("opener", [_memory, _sqlite], ids=["memory", "sqlite"])
def test_tasks_and_sessions_belong_to_their_tenant(opener: object, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opener(tmp_path)  # type: ignore[operator]
        mine = Task(id=new_id(), context_id="ctx", agent="a", tenant="A")
        await store.save_task(mine)
        await store.append("A", "ctx", [Message("user", "secret of A")])
        assert await store.get_task("A", mine.id) is not None
        assert await store.get_task("B", mine.id) is None
        assert await store.get_task("", mine.id) is None
        assert await store.history("B", "ctx", 10) == []
        await store.append("B", "ctx", [Message("user", "B's own")])
        assert [m.content for m in await store.history("A", "ctx", 10)] == ["secret of A"]
        assert [m.content for m in await store.history("B", "ctx", 10)] == ["B's own"]
        assert (await store.list_tasks(TaskQuery("B", "a"))) == ([], 0)
        page, total = await store.list_tasks(TaskQuery("A", "a"))
        assert total == 1 and page[0].id == mine.id
        await store.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("opener", [_memory, _sqlite], ids=["memory", "sqlite"])
def test_list_tasks_newest_status_first_and_filters(opener: object, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opener(tmp_path)  # type: ignore[operator]
        tasks = [Task(id=f"t{i}", context_id="c", agent="a", tenant="") for i in range(3)]
        for task in tasks:
            await store.save_task(task)
            await asyncio.sleep(0.01)  # distinct status timestamps
        cutoff = tasks[1].updated_at
        tasks[0].state = TaskState.COMPLETED
        await store.save_task(tasks[0])  # its status is now the newest
        page, total = await store.list_tasks(TaskQuery("", "a"))
        assert [t.id for t in page] == ["t0", "t2", "t1"] and total == 3
        after, _ = await store.list_tasks(TaskQuery("", "a", updated_after=cutoff))
        assert [t.id for t in after] == ["t0", "t2"]
        done, _ = await store.list_tasks(TaskQuery("", "a", state=TaskState.COMPLETED))
        assert [t.id for t in done] == ["t0"]
        second, _ = await store.list_tasks(TaskQuery("", "a", limit=2, offset=2))
        assert [t.id for t in second] == ["t1"]
        await store.close()

    asyncio.run(scenario())


def test_sqlite_migrates_a_file_from_before_tenants(tmp_path: Path) -> None:
    """A version-1 file: tasks keep their tenant (from their JSON), sessions go to the
    tenant of their first task, and the file is usable at version 2."""
    path = tmp_path / "hector.db"
    old = Task(id="old", context_id="ctx-a", agent="a", tenant="A", state=TaskState.COMPLETED)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE tasks (id TEXT PRIMARY KEY, context_id TEXT NOT NULL,
                agent TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
                data BLOB NOT NULL);
            CREATE INDEX tasks_by_agent ON tasks (agent, created_at);
            CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                context_id TEXT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL);
            CREATE INDEX messages_by_context ON messages (context_id, seq);
            CREATE TABLE token_usage (tenant TEXT NOT NULL, period TEXT NOT NULL,
                tokens INTEGER NOT NULL, PRIMARY KEY (tenant, period));
            """
        )
        db.execute(
            "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?)",
            (old.id, old.context_id, old.agent, old.state.value, old.created_at, old.to_json()),
        )
        db.executemany(
            "INSERT INTO messages (context_id, role, content) VALUES (?, ?, ?)",
            [("ctx-a", "user", "hello"), ("ctx-none", "user", "anonymous")],
        )

    async def scenario() -> None:
        store = await SqliteStore.open(str(path))
        assert await store.get_task("A", "old") is not None
        assert await store.get_task("", "old") is None
        assert [m.content for m in await store.history("A", "ctx-a", 5)] == ["hello"]
        assert await store.history("", "ctx-a", 5) == []
        assert [m.content for m in await store.history("", "ctx-none", 5)] == ["anonymous"]
        page, _ = await store.list_tasks(TaskQuery("A", "a"))
        assert [t.id for t in page] == ["old"] and page[0].updated_at == old.updated_at
        await store.close()
        reopened = await SqliteStore.open(str(path))  # version 2 now: opens as is
        assert await reopened.get_task("A", "old") is not None
        await reopened.close()

    asyncio.run(scenario())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_sqlite_keeps_every_reply_under_concurrency(tmp_path: Path) -> None:
    """2,000 tasks saved, read, listed and appended to at once on one connection: every
    task and every session message is there afterwards."""
    count = 2000

    async def one(store: Store, index: int) -> None:
        task = Task(id=f"t{index}", context_id=f"c{index}", agent="a", tenant=f"T{index % 3}")
        await store.save_task(task)
        assert await store.get_task(task.tenant, task.id) is not None
        await store.list_tasks(TaskQuery(task.tenant, "a", limit=5))
        await store.append(
            task.tenant, task.context_id, [Message("user", "q"), Message("assistant", f"r{index}")]
        )
        task.state, task.reply = TaskState.COMPLETED, f"r{index}"
        await store.save_task(task)

    async def scenario() -> None:
        store = await SqliteStore.open(str(tmp_path / "hector.db"))
        results = await asyncio.gather(
            *(one(store, i) for i in range(count)), return_exceptions=True
        )
        assert [r for r in results if r is not None] == []
        for index in range(count):
            tenant = f"T{index % 3}"
            task = await store.get_task(tenant, f"t{index}")
            assert task is not None and task.reply == f"r{index}"
            history = await store.history(tenant, f"c{index}", 10)
            assert [m.content for m in history] == ["q", f"r{index}"]
        await store.close()

    asyncio.run(scenario())


def test_memory_session_keeps_only_its_latest_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_store, "SESSION_MAX_MESSAGES", 4)
    monkeypatch.setattr(memory_store, "SESSION_MAX_CHARS", 10)

    async def scenario() -> None:
        store = MemoryStore(10, 10)
        await store.append("", "c", [Message("user", str(i)) for i in range(6)])
        assert [m.content for m in await store.history("", "c", 50)] == ["2", "3", "4", "5"]
        await store.append("", "c", [Message("assistant", "x" * 10)])
        assert [m.content for m in await store.history("", "c", 50)] == ["x" * 10]

    asyncio.run(scenario())


def test_task_json_round_trips_tenant() -> None:
    task = Task(id="t", context_id="c", agent="a", tenant="A")
    assert orjson.loads(task.to_json())["tenant"] == "A"
    assert Task.from_json(task.to_json()) == task
