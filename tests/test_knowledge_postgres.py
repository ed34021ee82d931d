"""Document stores indexed in a real PostgreSQL (``index: {type: postgres}``): tsvector
search that ranks and cites like the SQLite index, incremental refresh, replicas that
refresh together reading each file once, vectors for hybrid search, an outage, and the
errors of a database that cannot be reached. Real servers: test_knowledge_postgres_server.py."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from hector_py.agent.stores.availability import StoreUnavailable
from hector_py.config.knowledge import DocumentStoreConfig
from hector_py.config.loader import ConfigError
from hector_py.config.model import Config
from hector_py.knowledge.index import Indexed
from hector_py.knowledge.store import DocumentStore, Report
from tests.conftest import hector
from tests.postgres_server import Postgres, cluster, new_schema
from tests.test_knowledge import search, write_corpus
from tests.test_knowledge_server import wait_until

Replica = Callable[[Path], DocumentStore]


def pg_store(
    docs: Path, dsn: str, schema: str, name: str = "docs", watch: bool = True
) -> DocumentStore:
    config = DocumentStoreConfig.model_validate(
        {
            "source": {"path": str(docs), "watch": watch},
            "index": {"type": "postgres", "dsn": dsn, "schema": schema},
        }
    )
    return DocumentStore(name, config)


@pytest.fixture
def replica(postgres: Postgres) -> Iterator[Replica]:
    """Factory: one process's store ``docs`` of a folder, every one on the same fresh
    schema (closed after the test)."""
    schema = new_schema()
    stores: list[DocumentStore] = []

    def open_replica(docs: Path) -> DocumentStore:
        stores.append(pg_store(docs, postgres.dsn, schema, watch=False))
        return stores[-1]

    yield open_replica
    for store in stores:
        store.close()


def chunk_ids(store: DocumentStore) -> set[int]:
    return {hit.chunk for hit in store.index.search("days release coffee office", 50)}


def test_postgres_index_ranks_cites_and_refreshes(tmp_path: Path, postgres: Postgres) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs)
    schema = new_schema()
    store = pg_store(docs, postgres.dsn, schema)
    report = store.refresh()
    assert (report.added, report.documents, report.skipped) == (3, 3, 0)
    assert search(store, "how many days of paid leave?")[0] == "policy.html#pto"
    assert search(store, "roll back a release")[0] == "guides/deploy.md (line 7)"
    assert search(store, "coffee")[0] == "notes.txt (lines 1-5)"
    assert search(store, "earlier releases")[0].startswith("guides/deploy.md")  # stemmed
    assert search(store, "!!!") == [] and search(store, "& | ! ( ):*") == []  # syntax is text
    assert len(search(store, "days", top_k=1)) == 1

    # a second replica on the same database: the index is there, nothing to write
    replica = pg_store(docs, postgres.dsn, schema)
    again = replica.refresh()
    assert (again.added, again.unchanged, again.documents) == (0, 3, 3)
    # another store name in the same database is another index
    other = pg_store(docs, postgres.dsn, schema, name="other")
    assert search(other, "coffee") == []

    (docs / "notes.txt").write_text("The tea kettle is on floor three.\n")
    (docs / "policy.html").unlink()
    changed = store.refresh()
    assert (changed.updated, changed.removed, changed.documents) == (1, 1, 2)
    assert search(replica, "kettle") == ["notes.txt (line 1)"]  # the replica sees it at once
    assert search(replica, "paid leave") == [] and search(store, "coffee") == []

    # vectors for hybrid search live beside the chunks
    pending = store.index.missing_vectors("fake-embedder", 100)
    assert len(pending) == changed.chunks
    store.index.put_vectors(
        "fake-embedder", [(c, [1.0, float(i)]) for i, (c, _) in enumerate(pending)]
    )
    assert store.index.missing_vectors("fake-embedder", 100) == []
    assert replica.index.has_vectors("fake-embedder")
    nearest = replica.index.nearest("fake-embedder", [1.0, 0.0], 1)
    assert nearest[0].chunk == pending[0][0] and nearest[0].score == 1.0
    for opened in (store, replica, other):
        opened.close()


def test_replicas_refreshing_together_read_each_file_once(replica: Replica, tmp_path: Path) -> None:
    write_corpus(tmp_path / "docs")
    stores = [replica(tmp_path / "docs") for _ in range(3)]
    reports: list[Report] = []
    threads = [threading.Thread(target=lambda s=s: reports.append(s.refresh())) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # one refresh at a time: one replica read, parsed and wrote every file, the others
    # found them indexed (without the store's lock each parses all three)
    assert sorted((r.added, r.unchanged) for r in reports) == [(0, 3), (0, 3), (3, 0)]
    indexed = chunk_ids(stores[0])
    assert max(indexed) <= stores[0].index.counts()[1]  # ids from 1: no row written twice
    assert search(stores[2], "how many days of paid leave?")[0] == "policy.html#pto"

    # a replica with its own copy of the files (other mtimes, the same content) reads and
    # hashes them, and rewrites nothing
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "docs", copy)
    for path in copy.rglob("*.*"):
        path.touch()
    c = replica(copy)
    report = c.refresh()
    assert (report.added, report.updated, report.unchanged, report.documents) == (0, 0, 3, 3)
    assert chunk_ids(c) == indexed

    # content already there is not written again, whoever puts it
    known = c.index.documents()["notes.txt"]
    c.index.put("notes.txt", Indexed(known.mtime_ns + 1, known.size, known.sha256), "x", [])
    assert chunk_ids(stores[0]) == indexed

    # a change one replica sees is what every replica searches
    (copy / "notes.txt").write_text("The tea kettle is on floor three.\n")
    assert c.refresh().updated == 1 and search(stores[0], "kettle") == ["notes.txt (line 1)"]


async def lockers(dsn: str) -> int:
    """Sessions that asked for a store's refresh lock (the last thing they did)."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE query LIKE 'SELECT pg_try_advisory_lock%'"
            )
        )
    finally:
        await conn.close()


def test_a_replica_closing_while_another_refreshes_stops_waiting(
    postgres: Postgres, tmp_path: Path
) -> None:
    write_corpus(tmp_path / "docs")
    schema = new_schema()
    a, b = (pg_store(tmp_path / "docs", postgres.dsn, schema, watch=False) for _ in "ab")
    reports: list[Report] = []
    with a.index.exclusive(lambda: False):  # A is refreshing
        waiting = threading.Thread(target=lambda: reports.append(b.refresh()))
        waiting.start()
        wait_until(lambda: asyncio.run(lockers(postgres.dsn)) == 2, "B asking for the lock")
        b.close()  # returns once B's refresh gave up waiting
        waiting.join()
    assert reports[0].added == 0  # B wrote nothing
    assert a.refresh().added == 3
    a.close()


def test_an_outage_fails_searches_and_refreshes_then_catches_up(tmp_path: Path) -> None:
    write_corpus(tmp_path / "docs")
    with cluster() as server:  # its own: stopping the shared one would fail other tests
        store = pg_store(tmp_path / "docs", server.dsn, "hector", watch=False)
        try:
            store.refresh()
            server.stop()  # fast: commits survive (the test cluster runs without fsync)
            (tmp_path / "docs" / "notes.txt").write_text("The tea kettle is on floor three.\n")
            with pytest.raises(StoreUnavailable, match="store unavailable: "):
                search(store, "kettle")
            with pytest.raises(StoreUnavailable, match="store unavailable: "):
                store.refresh()
            server.start()
            assert store.refresh().updated == 1  # the pool reconnects by itself
            assert search(store, "kettle") == ["notes.txt (line 1)"]
        finally:
            store.close()


def test_a_database_that_cannot_be_reached_is_a_config_error(
    postgres: Postgres, tmp_path: Path
) -> None:
    write_corpus(tmp_path / "docs")
    closed = postgres.dsn.replace(f":{postgres.port}/", ":1/")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"document_stores:\n  docs:\n    source: {{path: '{tmp_path / 'docs'}'}}\n"
        f"    index: {{type: postgres, dsn: '{closed}'}}\n"
    )
    result = hector("index", "-c", str(config))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "error: document_stores.docs.index: cannot open the index: store unavailable: "
    )
    assert "Connect call failed" in result.stderr  # the reason, not just its type

    no_database = postgres.dsn.rsplit("/", 1)[0] + "/nowhere"
    with pytest.raises(ConfigError) as raised:
        pg_store(tmp_path / "docs", no_database, "hector")
    [problem] = raised.value.problems
    assert problem.path == "document_stores.docs.index"
    assert problem.message.endswith('database "nowhere" does not exist')


def test_index_config_errors_and_secrets(tmp_path: Path) -> None:
    def validate(index: str, storage: str = "") -> str:
        config = tmp_path / "c.yaml"
        config.write_text(
            f"{storage}document_stores:\n  h:\n    source: {{path: '{tmp_path}'}}\n"
            f"    index: {index}\n"
        )
        return hector("validate", str(config)).stdout.strip().rsplit(" (", 1)[0]

    assert validate("{type: postgres}") == (
        "document_stores.h.index.dsn: required for a postgres index (or use storage.type: postgres)"
    )
    storage = "storage: {type: postgres, dsn: 'postgresql://h@db/d'}\n"
    assert validate("{type: postgres}", storage).endswith(": valid")
    assert validate("{type: postgres, path: x.db, dsn: 'postgresql://h@db/d'}").startswith(
        "document_stores.h.index: path: only for type: sqlite"
    )
    assert validate("{schema: s}").startswith("document_stores.h.index: schema: only for type:")

    config = Config.model_validate(
        {
            "document_stores": {
                "h": {
                    "source": {"path": str(tmp_path)},
                    "index": {"type": "postgres", "dsn": "postgresql://h:pw@db/d"},
                }
            }
        }
    )
    assert "postgresql://h:pw@db/d" in config.secret_values()  # kept out of logs and spans
