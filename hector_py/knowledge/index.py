"""The SQLite index of a document store: FTS5 full-text search ranked by BM25, and
optional embeddings (float32 blobs, searched by cosine similarity with numpy in memory).

No model and no network: it works offline. One writer (the indexer) and any number of
readers (searches, one connection per thread) share the file in WAL mode.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hector_py.knowledge.chunking import Chunk
from hector_py.knowledge.stopwords import STOP_WORDS
from hector_py.knowledge.vectors import Hit, Matrix, VectorSearch, unit_matrix
from hector_py.sqlite_tuning import unshared_allocator

unshared_allocator()  # before any connection: else searches on two threads run as one

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    title TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    document INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    heading TEXT NOT NULL,
    locator TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, heading, text, content='chunks', content_rowid='id', tokenize='porter unicode61'
);
CREATE TABLE IF NOT EXISTS vectors (
    chunk INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    embedding BLOB NOT NULL
);
-- put() fills chunks_fts itself, a document at a time (twice as fast as a trigger row by
-- row); files written by earlier versions have the trigger.
DROP TRIGGER IF EXISTS chunks_added;
CREATE TRIGGER IF NOT EXISTS chunks_removed AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, title, heading, text)
    VALUES ('delete', old.id, old.title, old.heading, old.text);
END;
"""
BATCH = 64  # changes per commit
OPTIMIZE_AFTER = 100  # documents written: then FTS5's segments are merged into one
COMMON_SHARE = 0.1  # a term in more chunks than this share is too common to rank by
CHEAP_CHUNKS = 1000  # a search matching no more chunks than this is cheap as it is
MAX_TERMS = 4  # the rarest words of a query carry its meaning (and cost the least)
MAX_REMEMBERED_TERMS = 10_000
# BM25 column weights: a match in the page title or section heading says more.
RANKING = "bm25(chunks_fts, 4.0, 2.0, 1.0)"
_TERM = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Indexed:
    """What the index holds about a file, to tell whether it changed."""

    mtime_ns: int
    size: int
    sha256: str


def query_terms(query: str) -> list[str]:
    """The distinct words of ``query``, lower-cased, stop words left out when other words
    remain."""
    terms = list(dict.fromkeys(term.lower() for term in _TERM.findall(query)))
    return [term for term in terms if term not in STOP_WORDS] or terms


def _phrase(term: str) -> str:
    """One word as an FTS5 string: quoting keeps FTS5's query syntax out of user text."""
    return '"' + term.replace('"', '""') + '"'


class SqliteIndex(VectorSearch):
    """An index file; ``search`` may be called from any thread."""

    system = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        self._writer = self._connect()
        self._writer.executescript(SCHEMA)
        self._write_lock = threading.Lock()
        self._changes = 0
        self._written = 0  # documents put since FTS5's segments were last merged
        self._frequencies: dict[str, int] = {}  # term -> chunks holding it; "" -> all
        self._matrices: dict[str, Matrix] = {}  # model -> (ids, unit vectors)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA busy_timeout=10000")  # several workers share the file
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _reader(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self._closed:  # no new connection to a closed index, whatever the thread
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            connection = self._local.connection = self._connect()
            self._readers.append(connection)  # list.append is atomic
        return connection

    def documents(self) -> dict[str, Indexed]:
        """Every indexed file by path (as the writer sees it)."""
        with self._write_lock:
            rows = self._writer.execute("SELECT path, mtime_ns, size, sha256 FROM documents")
            return {path: Indexed(mtime, size, digest) for path, mtime, size, digest in rows}

    @contextmanager
    def exclusive(self, cancelled: Callable[[], bool]) -> Iterator[None]:
        """Nothing to hold: each process refreshes the file for itself (see PgIndex's)."""
        yield

    @contextmanager
    def _change(self) -> Iterator[sqlite3.Connection]:
        """One atomic change (a savepoint) within a batch of ``BATCH`` changes, committed
        together (``commit`` ends a batch early): one commit per file would cost more than
        indexing a small one."""
        with self._write_lock:
            db = self._writer
            if not db.in_transaction:
                db.execute("BEGIN IMMEDIATE")
            db.execute("SAVEPOINT change")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK TO change")
                db.execute("RELEASE change")
                raise
            db.execute("RELEASE change")
            self._changes += 1
            if self._changes >= BATCH:
                self._commit()

    def _commit(self) -> None:
        if self._writer.in_transaction:
            self._writer.execute("COMMIT")
        self._changes = 0
        self._frequencies = {}
        self._matrices = {}

    def commit(self) -> None:
        """Make the changes so far visible to searches; after ``OPTIMIZE_AFTER`` documents
        written, merge FTS5's segments (python3-doc: 0.1 s, searches ~8 % cheaper)."""
        with self._write_lock:
            self._commit()
            if self._written >= OPTIMIZE_AFTER:
                self._writer.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
                self._written = 0

    def touch(self, path: str, mtime_ns: int) -> None:
        """Note a new mtime for a file whose content did not change."""
        with self._change() as db:
            db.execute("UPDATE documents SET mtime_ns = ? WHERE path = ?", (mtime_ns, path))

    def put(self, path: str, indexed: Indexed, title: str, chunks: Sequence[Chunk]) -> None:
        """Replace what the index holds for ``path``."""
        with self._change() as db:
            db.execute("DELETE FROM documents WHERE path = ?", (path,))
            cursor = db.execute(
                "INSERT INTO documents (path, mtime_ns, size, sha256, title)"
                " VALUES (?, ?, ?, ?, ?)",
                (path, indexed.mtime_ns, indexed.size, indexed.sha256, title),
            )
            document = cursor.lastrowid
            # One statement for all the chunks (as JSON), not one per chunk: the writer
            # waits for the GIL after each statement while the refresh thread parses.
            db.execute(
                "INSERT INTO chunks (document, title, heading, locator, text)"
                " SELECT ?, ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
                " json_extract(value, '$[2]') FROM json_each(?)",
                (document, title, json.dumps([(c.heading, c.locator, c.text) for c in chunks])),
            )
            db.execute(
                "INSERT INTO chunks_fts (rowid, title, heading, text)"
                " SELECT id, title, heading, text FROM chunks WHERE document = ?",
                (document,),
            )
            self._written += 1

    def remove(self, paths: Iterable[str]) -> None:
        """Forget these files."""
        with self._change() as db:
            db.executemany("DELETE FROM documents WHERE path = ?", [(p,) for p in paths])

    def counts(self) -> tuple[int, int]:
        """(documents, chunks) in the index."""
        db = self._reader()
        [(documents,)] = db.execute("SELECT count(*) FROM documents")
        [(chunks,)] = db.execute("SELECT count(*) FROM chunks")
        return documents, chunks

    def _frequency(self, db: sqlite3.Connection, term: str) -> int:
        """How many chunks hold ``term``, or all chunks for ``""`` (remembered until the
        next commit)."""
        found = self._frequencies.get(term)
        if found is None:
            if term:
                sql = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
                [(found,)] = db.execute(sql, (_phrase(term),))
            else:
                [(found,)] = db.execute("SELECT count(*) FROM chunks")
            if len(self._frequencies) >= MAX_REMEMBERED_TERMS:
                self._frequencies.clear()
            self._frequencies[term] = found
        return found

    def _selective(self, db: sqlite3.Connection, terms: list[str]) -> list[str]:
        """The terms worth ranking by. BM25 scores every chunk that holds any term, so a
        search costs as many chunks as its terms match: in a big index, terms in more than
        ``COMMON_SHARE`` of the chunks (which rank next to nothing) are left out and only
        the ``MAX_TERMS`` rarest kept (the rarest one in any case). Small indexes keep all."""
        frequencies = {term: self._frequency(db, term) for term in terms}
        rarest = sorted((t for t in terms if frequencies[t]), key=frequencies.__getitem__)
        if sum(frequencies[term] for term in rarest) <= CHEAP_CHUNKS:
            return rarest
        limit = max(COMMON_SHARE * self._frequency(db, ""), CHEAP_CHUNKS)
        selective = [term for term in rarest if frequencies[term] <= limit]
        return selective[:MAX_TERMS] or rarest[:1]

    def search(self, query: str, top_k: int) -> list[Hit]:
        """The ``top_k`` chunks that best match ``query``, best first."""
        db = self._reader()
        # One read transaction: the rows named by the ranking are read from the same
        # snapshot, and FTS5's per-match lookups (a statement each for the chunk's size)
        # skip autocommit's end-of-statement work (python3-doc: ~10 % cheaper).
        db.execute("BEGIN")
        try:
            terms = self._selective(db, query_terms(query))
            if not terms:
                return []
            # SQLite keeps the best ``top_k`` scores as FTS5 yields the matches (a third
            # cheaper on python3-doc than FTS5's own ``ORDER BY rank``); the few rows left
            # are then read in a second statement (cheaper than a join, ~0.05 ms).
            best = db.execute(
                f"SELECT rowid, {RANKING} AS rank FROM chunks_fts WHERE chunks_fts MATCH ?"
                " ORDER BY rank LIMIT ?",
                (" OR ".join(map(_phrase, terms)), top_k),
            ).fetchall()
            rows = {row[-1]: row for row in self.chunk_rows([chunk for chunk, _ in best])}
        finally:
            db.execute("COMMIT")
        hits = []
        for chunk, rank in best:
            path, locator, title, heading, text, _ = rows[chunk]
            hits.append(Hit(path, locator, title, heading, text, round(-rank, 4), chunk))
        return hits

    # --- vectors --------------------------------------------------------------------------

    def missing_vectors(self, model: str, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` (chunk id, text to embed) without a vector from ``model``."""
        rows = self._reader().execute(
            "SELECT c.id, c.title || ' > ' || c.heading || char(10) || c.text FROM chunks c"
            " LEFT JOIN vectors v ON v.chunk = c.id AND v.model = ?"
            " WHERE v.chunk IS NULL ORDER BY c.id LIMIT ?",
            (model, limit),
        )
        return [(chunk, text) for chunk, text in rows]

    def put_vectors(self, model: str, vectors: Iterable[tuple[int, list[float]]]) -> None:
        """Store the vectors of some chunks (those deleted meanwhile are left out)."""
        import numpy  # with the first vectors (vectors.py)

        with self._change() as db:
            db.executemany(
                "INSERT OR REPLACE INTO vectors (chunk, model, embedding)"
                " SELECT id, ?, ? FROM chunks WHERE id = ?",
                [(model, numpy.asarray(v, numpy.float32).tobytes(), c) for c, v in vectors],
            )

    def matrix(self, model: str) -> Matrix:
        """(chunk ids, unit vectors) of ``model``, kept until the next commit."""
        cached = self._matrices.get(model)
        if cached is None:
            rows = (
                self._reader()
                .execute(
                    "SELECT chunk, embedding FROM vectors WHERE model = ? ORDER BY chunk", (model,)
                )
                .fetchall()
            )
            cached = self._matrices[model] = unit_matrix(rows)
        return cached

    def chunk_rows(self, ids: list[int]) -> Iterable[Sequence[Any]]:
        """The rows of these chunks (path, locator, title, heading, text, id)."""
        marks = ",".join("?" * len(ids))
        return self._reader().execute(
            "SELECT d.path, c.locator, c.title, c.heading, c.text, c.id FROM chunks c"
            f" JOIN documents d ON d.id = c.document WHERE c.id IN ({marks})",
            ids,
        )

    def close(self) -> None:
        """Commit, and close every connection."""
        self._closed = True
        self.commit()
        for connection in self._readers:
            connection.close()
        self._writer.close()
