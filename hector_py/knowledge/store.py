"""A document store: a directory source, chunked into an SQLite index, kept up to date.

``refresh`` is incremental: a file whose mtime and size are unchanged is not read, and one
whose content hash is unchanged is not re-parsed. Files that cannot be indexed (unreadable,
binary, not UTF-8, too large) are logged once per version, counted, and skipped; the rest
of the store keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path

import asyncpg
import watchfiles

from hector_py.agent.stores.availability import StoreUnavailable
from hector_py.agent.stores.pg_schema import SchemaTooNew
from hector_py.config.knowledge import DirectorySource, DocumentStoreConfig
from hector_py.config.loader import ConfigError, Problem
from hector_py.config.model import ObservabilityConfig, StorageConfig
from hector_py.knowledge.chunking import chunk
from hector_py.knowledge.hybrid import Embedding, Embeds, fuse
from hector_py.knowledge.index import Indexed, SqliteIndex
from hector_py.knowledge.parsing import UnusableFile, parse
from hector_py.knowledge.pg_index import PgIndex
from hector_py.knowledge.vectors import Hit
from hector_py.observability.knowledge import KnowledgeTelemetry
from hector_py.observability.telemetry import Telemetry

log = logging.getLogger("hector.knowledge")
WATCH_DEBOUNCE_MS = 300
RETRY_S = 5  # a store whose refresh failed tries again this often
CANDIDATES = 4  # with an embedder, each ranking offers top_k * CANDIDATES to the fusion
MAX_PENDING_WRITES = 8  # parsed files waiting for the writer (bounds memory)
SEARCHES = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="hector-search")
"""Searches run one per core, first come first served: at high concurrency each waits its
turn instead of all slowing each other down on the same cores (the default executor runs
several at once per core; python3-doc at c=16 on 2 cores: p99 42 -> 24 ms)."""


@dataclass
class Report:
    """What one refresh did, and what the index holds after it."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: int = 0
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0


def _matches(path: str, patterns: list[str]) -> bool:
    """Whether the relative ``path`` matches a glob (``**/x`` also matches ``x``)."""
    return any(
        fnmatchcase(path, p) or (p.startswith("**/") and fnmatchcase(path, p[3:])) for p in patterns
    )


def included(source: DirectorySource, path: str) -> bool:
    """Whether ``source`` indexes the file at relative ``path``."""
    return _matches(path, source.include) and not _matches(path, source.exclude)


def open_index(
    name: str, config: DocumentStoreConfig, storage: StorageConfig | None
) -> SqliteIndex | PgIndex:
    """The store's index, opened (a postgres one migrated); ``ConfigError`` naming the
    setting when it cannot be."""
    index = config.index
    if index.type == "postgres":
        dsn, schema = config.index_database(storage)
        if dsn is None:
            raise ConfigError([Problem(f"document_stores.{name}.index.dsn", "required", "config")])
        try:
            return PgIndex(name, dsn.get_secret_value(), schema)
        except (StoreUnavailable, SchemaTooNew, asyncpg.PostgresError) as exc:
            where = f"document_stores.{name}.index"
            raise ConfigError([Problem(where, f"cannot open the index: {exc}", "config")]) from None
    path = config.index_path(name)
    try:
        return SqliteIndex(path)
    except (sqlite3.Error, OSError) as exc:
        where = f"document_stores.{name}.index.path"
        raise ConfigError([Problem(where, f"cannot open {path}: {exc}", "config")]) from None


class DocumentStore:
    """One ``document_stores:`` entry."""

    def __init__(
        self,
        name: str,
        config: DocumentStoreConfig,
        telemetry: KnowledgeTelemetry | None = None,
        embedder: Embeds | None = None,
        storage: StorageConfig | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.root = Path(config.source.path)
        self.index = open_index(name, config, storage)
        self.telemetry = telemetry or KnowledgeTelemetry(Telemetry(ObservabilityConfig()))
        self.embedding = None
        if embedder is not None:
            price = config.embedder.cost_per_million_tokens if config.embedder else None
            self.embedding = Embedding(name, embedder, self.telemetry, price)
        self.ready = False  # the first refresh is done
        self.last = Report()  # what the last refresh did
        self._lock = threading.Lock()
        self._closing = False
        self._reported: set[tuple[str, int, int]] = set()  # skipped file versions, logged

    def files(self) -> Iterator[tuple[str, Path]]:
        """(relative path, path) of every file the source includes, in a stable order."""
        for directory, subdirectories, names in os.walk(self.root):
            subdirectories.sort()
            for name in sorted(names):
                path = Path(directory, name)
                relative = path.relative_to(self.root).as_posix()
                if included(self.config.source, relative):
                    yield relative, path

    def refresh(self) -> Report:
        """Bring the index in line with the directory (blocking: run it in a thread)."""
        with self._lock, self.index.exclusive(lambda: self._closing):
            try:
                report = self._refresh()
            finally:
                self.index.commit()
        self.ready = True
        self.last = report
        self.telemetry.indexed(self.name, report.documents, report.chunks)
        return report

    def _refresh(self) -> Report:
        started = time.perf_counter()
        report = Report()
        known = self.index.documents()
        if not self.root.is_dir():
            self._skip(str(self.root), 0, 0, "unreadable", "not a directory", report)
            report.documents, report.chunks = self.index.counts()
            return report
        seen = set()
        # Files are read and parsed here while one writer thread puts the previous ones in
        # the index: SQLite releases the GIL while it tokenizes, so two cores can work.
        with ThreadPoolExecutor(1, thread_name_prefix=f"index-{self.name}") as writer:
            pending: deque[Future[None]] = deque()
            for relative, path in self.files():
                if self._closing:
                    break
                seen.add(relative)
                put = self._refresh_file(relative, path, known.get(relative), report)
                if put is not None:
                    pending.append(writer.submit(put))
                while pending and (len(pending) > MAX_PENDING_WRITES or pending[0].done()):
                    pending.popleft().result()
            for future in pending:
                future.result()
        if self._closing:
            return report
        gone = [path for path in known if path not in seen]
        self.index.remove(gone)
        report.removed += len(gone)
        self.index.commit()
        report.documents, report.chunks = self.index.counts()
        report.seconds = time.perf_counter() - started
        return report

    def _refresh_file(
        self, relative: str, path: Path, known: Indexed | None, report: Report
    ) -> Callable[[], None] | None:
        """Look at one file; what to write to the index, if anything."""
        try:
            stat = path.stat()
        except OSError as exc:
            self._skip(relative, 0, 0, "unreadable", exc.strerror or str(exc), report)
            return self._forget(relative, known, report)
        mtime, size = stat.st_mtime_ns, stat.st_size
        if known is not None and (known.mtime_ns, known.size) == (mtime, size):
            report.unchanged += 1
            return None
        limit = self.config.source.max_file_bytes
        if size > limit:
            message = f"{size} bytes, more than max_file_bytes ({limit})"
            self._skip(relative, mtime, size, "too_large", message, report)
            return self._forget(relative, known, report)
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._skip(relative, mtime, size, "unreadable", exc.strerror or str(exc), report)
            return self._forget(relative, known, report)
        digest = hashlib.sha256(data).hexdigest()
        if known is not None and known.sha256 == digest:
            report.unchanged += 1
            return partial(self.index.touch, relative, mtime)
        try:
            document = parse(relative, data)
            chunks = chunk(document.blocks, self.config.chunking)
        except UnusableFile as exc:
            self._skip(relative, mtime, size, exc.reason, str(exc), report)
            return self._forget(relative, known, report)
        except Exception as exc:  # a parser bug must not stop the rest of the store
            self._skip(relative, mtime, size, "parse", type(exc).__name__, report)
            return self._forget(relative, known, report)
        if known is None:
            report.added += 1
        else:
            report.updated += 1
        return partial(
            self.index.put, relative, Indexed(mtime, size, digest), document.title, chunks
        )

    def _forget(
        self, relative: str, known: Indexed | None, report: Report
    ) -> Callable[[], None] | None:
        """A file that can no longer be indexed leaves the index."""
        if known is None:
            return None
        report.removed += 1
        return partial(self.index.remove, [relative])

    def _skip(
        self, relative: str, mtime: int, size: int, reason: str, message: str, report: Report
    ) -> None:
        report.skipped += 1
        version = (relative, mtime, size)
        if version in self._reported:
            return
        self._reported.add(version)
        log.warning("document store %s: skipped %s: %s", self.name, relative, message)
        self.telemetry.skipped(self.name, reason)

    async def embed_pending(self) -> int:
        """Give vectors to the chunks that have none yet (with an embedder); how many got
        one. Stops at the first failure: the next refresh tries again."""
        embedding = self.embedding
        if embedding is None or self.config.embedder is None:
            return 0
        done = 0
        while not self._closing and embedding.available:
            pending = await asyncio.to_thread(
                self.index.missing_vectors, embedding.model, self.config.embedder.batch_size
            )
            vectors = await embedding.embed([text for _, text in pending]) if pending else None
            if vectors is None:
                break
            rows = [(chunk, vector) for (chunk, _), vector in zip(pending, vectors, strict=True)]
            await asyncio.to_thread(self.index.put_vectors, embedding.model, rows)
            await asyncio.to_thread(self.index.commit)  # searchable batch by batch
            done += len(pending)
        return done

    async def search(self, query: str, top_k: int) -> list[Hit]:
        """The ``top_k`` best chunks for ``query`` (a ``vectorstore.search`` span): BM25,
        fused with the nearest vectors when the store has an embedder that answers."""
        with self.telemetry.search(self.name, self.index.system, top_k) as scope:
            hits = await self._search(query, top_k)
            scope.found(len(hits), hits[0].score if hits else None)
            return hits

    async def _search(self, query: str, top_k: int) -> list[Hit]:
        loop, index, embedding = asyncio.get_running_loop(), self.index, self.embedding
        if embedding is None:
            return await loop.run_in_executor(SEARCHES, index.search, query, top_k)
        depth = top_k * CANDIDATES
        lexical = await loop.run_in_executor(SEARCHES, index.search, query, depth)
        if not await loop.run_in_executor(SEARCHES, index.has_vectors, embedding.model):
            return lexical[:top_k]
        vectors = await embedding.embed([query])
        if vectors is None:
            return lexical[:top_k]
        near = await loop.run_in_executor(
            SEARCHES, index.nearest, embedding.model, vectors[0], depth
        )
        return fuse([lexical, near])[:top_k]

    async def attempt(self, failed: bool) -> Report | None:
        """Refresh (``refresh`` in a thread), then give new chunks their vectors; ``None``
        when either fails (the index's database can go in between). ``failed``: the last
        attempt failed too, so only the first failure in a row is logged and counted, and
        the one that works again is logged."""
        try:
            report = await asyncio.to_thread(self.refresh)
            await self.embed_pending()
        except Exception as exc:  # e.g. the index's database is down
            if not failed:
                log.warning(
                    "document store %s: refresh failed, retrying every %d s: %s",
                    self.name,
                    RETRY_S,
                    exc,
                )
                self.telemetry.refresh_failed(self.name)
            return None
        if failed:
            log.info(
                "document store %s: refreshed again: %d documents, %d chunks",
                self.name,
                report.documents,
                report.chunks,
            )
        return report

    async def retry(self, stop: asyncio.Event) -> None:
        """Refresh every ``RETRY_S`` until it works or ``stop`` (after a failed refresh of a
        store that is not watched)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_S)
                return
            if await self.attempt(failed=True) is not None:
                return

    async def watch(
        self, stop: asyncio.Event, *, polling: bool = False, failed: bool = False
    ) -> None:
        """Refresh whenever an included file is added, changed or removed (and every
        ``RETRY_S`` after a refresh failed: ``failed`` says the last one did), until
        ``stop``; ``polling`` checks the files every ``WATCH_DEBOUNCE_MS`` instead of
        asking the OS (when inotify is out of watches, or does not see a mounted folder's
        changes)."""
        source, root = self.config.source, self.root.resolve()
        logging.getLogger("watchfiles").setLevel(logging.WARNING)  # a line per change else

        def relevant(_: watchfiles.Change, path: str) -> bool:
            try:
                relative = Path(path).relative_to(root).as_posix()
            except ValueError:
                return False
            return included(source, relative)

        async for changes in watchfiles.awatch(
            root,
            watch_filter=relevant,
            stop_event=stop,
            debounce=WATCH_DEBOUNCE_MS,
            recursive=True,
            force_polling=polling,
            poll_delay_ms=WATCH_DEBOUNCE_MS,
            rust_timeout=RETRY_S * 1000,
            yield_on_timeout=True,  # no change within RETRY_S: an empty set
        ):
            if not (changes or failed):
                continue
            report = await self.attempt(failed)
            failed = report is None
            if report is None:
                continue
            log.info(
                "document store %s: %d added, %d updated, %d removed",
                self.name,
                report.added,
                report.updated,
                report.removed,
            )

    def close(self) -> None:
        """Close the index, once a refresh under way has stopped (blocking)."""
        self._closing = True
        with self._lock:
            self.index.close()
