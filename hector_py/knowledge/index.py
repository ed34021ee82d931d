"""The SQLite index of a document store: FTS5 full-text search ranked by BM25.

No model and no network: it works offline. One writer (the indexer) and any number of
readers (searches, one connection per thread) share the file in WAL mode.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hector_py.knowledge.chunking import Chunk

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
CREATE TRIGGER IF NOT EXISTS chunks_added AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, title, heading, text)
    VALUES (new.id, new.title, new.heading, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_removed AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, title, heading, text)
    VALUES ('delete', old.id, old.title, old.heading, old.text);
END;
"""
# BM25 column weights: a match in the page title or section heading says more.
WEIGHTS = (4.0, 2.0, 1.0)
_TERM = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    """One search result: where it is (path and locator) and how well it matched."""

    path: str
    locator: str
    title: str
    heading: str
    text: str
    score: float


@dataclass(frozen=True)
class Indexed:
    """What the index holds about a file, to tell whether it changed."""

    mtime_ns: int
    size: int
    sha256: str


def match_expression(query: str) -> str | None:
    """``query``'s words as an FTS5 expression (any word matches; BM25 ranks); ``None``
    when it has no word. Quoting each word keeps FTS5's query syntax out of user text."""
    terms = dict.fromkeys(term.lower() for term in _TERM.findall(query))
    return " OR ".join(f'"{term}"' for term in terms) or None


class SqliteIndex:
    """An index file; ``search`` may be called from any thread."""

    system = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._writer = self._connect()
        self._writer.executescript(SCHEMA)
        self._write_lock = threading.Lock()

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
            connection = self._local.connection = self._connect()
            self._readers.append(connection)  # list.append is atomic
        return connection

    def documents(self) -> dict[str, Indexed]:
        """Every indexed file by path."""
        rows = self._writer.execute("SELECT path, mtime_ns, size, sha256 FROM documents")
        return {path: Indexed(mtime, size, digest) for path, mtime, size, digest in rows}

    def touch(self, path: str, mtime_ns: int) -> None:
        """Note a new mtime for a file whose content did not change."""
        with self._write_lock:
            self._writer.execute(
                "UPDATE documents SET mtime_ns = ? WHERE path = ?", (mtime_ns, path)
            )

    def put(self, path: str, indexed: Indexed, title: str, chunks: Sequence[Chunk]) -> None:
        """Replace what the index holds for ``path`` (one transaction)."""
        with self._write_lock, self._transaction() as db:
            db.execute("DELETE FROM documents WHERE path = ?", (path,))
            cursor = db.execute(
                "INSERT INTO documents (path, mtime_ns, size, sha256, title)"
                " VALUES (?, ?, ?, ?, ?)",
                (path, indexed.mtime_ns, indexed.size, indexed.sha256, title),
            )
            document = cursor.lastrowid
            db.executemany(
                "INSERT INTO chunks (document, title, heading, locator, text)"
                " VALUES (?, ?, ?, ?, ?)",
                [(document, title, c.heading, c.locator, c.text) for c in chunks],
            )

    def remove(self, paths: Iterable[str]) -> None:
        """Forget these files."""
        with self._write_lock, self._transaction() as db:
            db.executemany("DELETE FROM documents WHERE path = ?", [(p,) for p in paths])

    def _transaction(self) -> _Transaction:
        return _Transaction(self._writer)

    def counts(self) -> tuple[int, int]:
        """(documents, chunks) in the index."""
        db = self._reader()
        [(documents,)] = db.execute("SELECT count(*) FROM documents")
        [(chunks,)] = db.execute("SELECT count(*) FROM chunks")
        return documents, chunks

    def search(self, query: str, top_k: int) -> list[Hit]:
        """The ``top_k`` chunks that best match ``query``, best first."""
        expression = match_expression(query)
        if expression is None:
            return []
        rows = self._reader().execute(
            "SELECT d.path, c.locator, c.title, c.heading, c.text,"
            " bm25(chunks_fts, ?, ?, ?) AS rank"
            " FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid"
            " JOIN documents d ON d.id = c.document"
            " WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
            (*WEIGHTS, expression, top_k),
        )
        return [
            Hit(path, locator, title, heading, text, round(-rank, 4))
            for path, locator, title, heading, text, rank in rows
        ]

    def close(self) -> None:
        """Close every connection."""
        for connection in self._readers:
            connection.close()
        self._writer.close()


class _Transaction:
    """``BEGIN`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.connection.execute("ROLLBACK" if kind is not None else "COMMIT")
