"""The PostgreSQL index of a document store (``index: {type: postgres}``): chunks with a
generated ``tsvector`` (title, heading and text weighted A, B, D) under a GIN index,
ranked by ``ts_rank_cd``; vectors as ``real[]``, searched in memory like the SQLite
index's. Every replica on the database shares one index: a refresh holds an advisory lock
on the store (so one replica reads and parses a file version, the others then find it
indexed), and a file is written under an advisory lock on its path and skipped when the
same content (hash) is there already. A database that cannot be reached raises
``StoreUnavailable``; the pool reconnects by itself once it is back.

The index keeps the SQLite index's blocking interface (the document store calls it from
worker threads): its asyncpg pool runs on an event loop of its own, in its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import asyncpg

from hector_py.agent.stores.availability import StoreUnavailable
from hector_py.agent.stores.pg_schema import migrate
from hector_py.agent.stores.postgres import UNREACHABLE, connect, reason
from hector_py.knowledge.chunking import Chunk
from hector_py.knowledge.index import Indexed, query_terms
from hector_py.knowledge.vectors import Hit, Matrix, VectorSearch, unit_matrix

T = TypeVar("T")
CALL_TIMEOUT_S = 60.0
LOCK_POLL_S = 0.2  # how often a replica waiting to refresh the store asks for its lock
MATRIX_TTL_S = 30.0
"""Vectors other replicas added show within this long (this one's at once)."""
CHUNK_ROW = "d.path, c.locator, c.title, c.heading, c.text"
SEARCH = f"""
SELECT {CHUNK_ROW}, ts_rank_cd(c.tsv, q) AS score, c.id
FROM kb_chunks c JOIN kb_documents d ON d.id = c.document, to_tsquery('english', $2) q
WHERE c.store = $1 AND c.tsv @@ q ORDER BY score DESC, c.id LIMIT $3
"""


class PgIndex(VectorSearch):
    """One document store's index in PostgreSQL (see the module docstring)."""

    system = "postgresql"

    def __init__(self, store: str, dsn: str, schema: str) -> None:
        self.store = store
        self._lock_key = f"{schema}:{store}"  # advisory locks span the database's schemas
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"index-{store}-pg", daemon=True
        )
        self._thread.start()
        self._matrices: dict[str, tuple[float, Matrix]] = {}
        try:
            self._pool: asyncpg.Pool = self._run(_open(dsn, schema))
        except BaseException:
            self._stop()
            raise

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        try:
            return asyncio.run_coroutine_threadsafe(work, self._loop).result(CALL_TIMEOUT_S)
        except UNREACHABLE as exc:
            raise StoreUnavailable(reason(exc)) from None

    def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async def fetch() -> list[asyncpg.Record]:
            async with self._pool.acquire() as conn:
                return list(await conn.fetch(sql, *args))

        return self._run(fetch())

    @contextlib.contextmanager
    def exclusive(self, cancelled: Callable[[], bool]) -> Iterator[None]:
        """Refresh the store alone: hold its advisory lock (a session lock, so a replica
        that dies lets go), waiting while another replica refreshes; no lock once
        ``cancelled()`` (the store is closing and will write nothing)."""

        async def acquire() -> asyncpg.pool.PoolConnectionProxy:
            return await self._pool.acquire()

        conn = self._run(acquire())
        try:
            lock, key = "SELECT pg_try_advisory_lock(hashtext($1))", f"kb-refresh:{self._lock_key}"
            while not self._run(conn.fetchval(lock, key)) and not cancelled():
                time.sleep(LOCK_POLL_S)
            yield
        finally:  # asyncpg resets a released connection (its advisory locks go), or
            # closes it when it cannot (they go with the session): the lock is let go
            with contextlib.suppress(StoreUnavailable):
                self._run(self._pool.release(conn))

    def documents(self) -> dict[str, Indexed]:
        """Every indexed file of this store by path."""
        rows = self._fetch(
            "SELECT path, mtime_ns, size, sha256 FROM kb_documents WHERE store = $1", self.store
        )
        return {row[0]: Indexed(row[1], row[2], row[3]) for row in rows}

    def commit(self) -> None:
        """Changes are committed as they are made; forget the vectors read so far."""
        self._matrices = {}

    def touch(self, path: str, mtime_ns: int) -> None:
        """Note a new mtime for a file whose content did not change."""
        self._fetch(
            "UPDATE kb_documents SET mtime_ns = $3 WHERE store = $1 AND path = $2",
            self.store,
            path,
            mtime_ns,
        )

    def put(self, path: str, indexed: Indexed, title: str, chunks: Sequence[Chunk]) -> None:
        """Replace what the index holds for ``path`` (unless another replica just put the
        same content)."""
        rows = [(self.store, title, c.heading, c.locator, c.text) for c in chunks]

        async def put() -> None:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))", f"kb-file:{self._lock_key}:{path}"
                )
                there = await conn.fetchval(
                    "SELECT sha256 FROM kb_documents WHERE store = $1 AND path = $2",
                    self.store,
                    path,
                )
                if there == indexed.sha256:
                    return
                await conn.execute(
                    "DELETE FROM kb_documents WHERE store = $1 AND path = $2", self.store, path
                )
                document = await conn.fetchval(
                    "INSERT INTO kb_documents (store, path, mtime_ns, size, sha256, title)"
                    " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    self.store,
                    path,
                    indexed.mtime_ns,
                    indexed.size,
                    indexed.sha256,
                    title,
                )
                await conn.executemany(
                    "INSERT INTO kb_chunks (document, store, title, heading, locator, text)"
                    " VALUES ($1, $2, $3, $4, $5, $6)",
                    [(document, *row) for row in rows],
                )

        self._run(put())

    def remove(self, paths: Iterable[str]) -> None:
        """Forget these files."""
        self._fetch(
            "DELETE FROM kb_documents WHERE store = $1 AND path = ANY($2::text[])",
            self.store,
            list(paths),
        )

    def counts(self) -> tuple[int, int]:
        """(documents, chunks) in the index."""
        [row] = self._fetch(
            "SELECT (SELECT count(*) FROM kb_documents WHERE store = $1),"
            " (SELECT count(*) FROM kb_chunks WHERE store = $1)",
            self.store,
        )
        return int(row[0]), int(row[1])

    def search(self, query: str, top_k: int) -> list[Hit]:
        """The ``top_k`` chunks that best match any word of ``query``, best first."""
        terms = query_terms(query)
        if not terms:
            return []
        rows = self._fetch(SEARCH, self.store, " | ".join(terms), top_k)
        return [
            Hit(path, locator, title, heading, text, round(float(score), 4), chunk)
            for path, locator, title, heading, text, score, chunk in rows
        ]

    # --- vectors --------------------------------------------------------------------------

    def missing_vectors(self, model: str, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` (chunk id, text to embed) without a vector from ``model``."""
        rows = self._fetch(
            "SELECT c.id, c.title || ' > ' || c.heading || E'\\n' || c.text FROM kb_chunks c"
            " LEFT JOIN kb_vectors v ON v.chunk = c.id AND v.model = $2"
            " WHERE c.store = $1 AND v.chunk IS NULL ORDER BY c.id LIMIT $3",
            self.store,
            model,
            limit,
        )
        return [(int(row[0]), str(row[1])) for row in rows]

    def put_vectors(self, model: str, vectors: Iterable[tuple[int, list[float]]]) -> None:
        """Store the vectors of some chunks (those deleted meanwhile are left out)."""
        rows = [(chunk, model, [float(x) for x in vector]) for chunk, vector in vectors]

        async def put() -> None:
            async with self._pool.acquire() as conn:
                await conn.executemany(
                    "INSERT INTO kb_vectors (chunk, model, embedding)"
                    " SELECT id, $2, $3::real[] FROM kb_chunks WHERE id = $1"
                    " ON CONFLICT (chunk) DO UPDATE SET model = excluded.model,"
                    " embedding = excluded.embedding",
                    rows,
                )

        self._run(put())
        self._matrices.pop(model, None)

    def matrix(self, model: str) -> Matrix:
        cached = self._matrices.get(model)
        if cached is None or time.monotonic() - cached[0] > MATRIX_TTL_S:
            rows = self._fetch(
                "SELECT v.chunk, v.embedding FROM kb_vectors v JOIN kb_chunks c ON c.id = v.chunk"
                " WHERE c.store = $1 AND v.model = $2 ORDER BY v.chunk",
                self.store,
                model,
            )
            cached = self._matrices[model] = (
                time.monotonic(),
                unit_matrix([(row[0], row[1]) for row in rows]),
            )
        return cached[1]

    def chunk_rows(self, ids: list[int]) -> Iterable[Sequence[Any]]:
        """The rows of these chunks (path, locator, title, heading, text, id)."""
        rows = self._fetch(
            f"SELECT {CHUNK_ROW}, c.id FROM kb_chunks c JOIN kb_documents d ON d.id = c.document"
            " WHERE c.id = ANY($1::bigint[])",
            ids,
        )
        return [tuple(row) for row in rows]

    def close(self) -> None:
        """Close the pool and stop the index's loop."""
        try:
            self._run(self._pool.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _open(dsn: str, schema: str) -> asyncpg.Pool:
    """A small pool on ``schema``, migrated first (the same migrations as the store's)."""
    conn = await connect(dsn)
    try:
        await migrate(conn, schema)
    finally:
        await conn.close()
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=4,
        timeout=10,
        server_settings={"search_path": schema, "application_name": "hector-index"},
    )
