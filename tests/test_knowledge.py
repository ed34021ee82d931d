"""Document stores: parsing, chunking, the SQLite FTS5 index, incremental refresh, bad input."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from hector_py.config.knowledge import ChunkingConfig, DocumentStoreConfig
from hector_py.knowledge import index as sqlite_index
from hector_py.knowledge.chunking import chunk
from hector_py.knowledge.parsing import parse
from hector_py.knowledge.service import Knowledge, cite
from hector_py.knowledge.store import DocumentStore

DEPLOY_MD = """# Deploying

To deploy the widget service, run `make deploy` from the ops host.

## Rollback

Use `make rollback VERSION=x` to go back to an earlier release.
"""
POLICY_HTML = """<html><head><title>Holidays</title><script>var leave = 1;</script></head>
<body><nav>menu menu menu</nav><main>
<h1 id="top">Holiday policy</h1>
<section id="pto"><h2>Paid time off<a class="headerlink">¶</a></h2>
<p>Employees get <b>27 days</b> of paid leave a year.</p></section>
<section id="sick"><h2>Sick days</h2><p>Sick leave needs a doctor's note after three days.</p>
</section></main></body></html>"""
NOTES_TXT = "Office hours\nare nine to five.\n\n\nThe coffee machine is on floor two.\n"


def write_corpus(root: Path) -> None:
    (root / "guides").mkdir(parents=True)
    (root / "guides" / "deploy.md").write_text(DEPLOY_MD)
    (root / "policy.html").write_text(POLICY_HTML)
    (root / "notes.txt").write_text(NOTES_TXT)


def store_for(tmp_path: Path, **source: object) -> DocumentStore:
    config = DocumentStoreConfig.model_validate(
        {
            "source": {"path": str(tmp_path / "docs"), **source},
            "index": {"path": str(tmp_path / "index.db")},
        }
    )
    return DocumentStore("docs", config)


def search(store: DocumentStore, query: str, top_k: int = 5) -> list[str]:
    return [cite(hit) for hit in asyncio.run(store.search(query, top_k))]


def test_parsers_give_headings_and_locators() -> None:
    html = parse("policy.html", POLICY_HTML.encode())
    assert html.title == "Holiday policy"  # the h1, not <title>
    texts = " ".join(block.text for block in html.blocks)
    assert "var leave" not in texts and "menu" not in texts  # scripts and navigation dropped
    assert "¶" not in texts
    [pto] = [b for b in html.blocks if "27 days" in b.text]
    assert (pto.heading, pto.locator) == ("Paid time off", "#pto")
    assert pto.text == "Employees get 27 days of paid leave a year."

    markdown = parse("guides/deploy.md", DEPLOY_MD.encode())
    assert markdown.title == "Deploying"
    [rollback] = [b for b in markdown.blocks if "rollback VERSION" in b.text]
    assert (rollback.heading, rollback.locator) == ("Rollback", "line 7")

    text = parse("notes.txt", NOTES_TXT.encode())
    assert [(b.locator, b.text) for b in text.blocks] == [
        ("lines 1-2", "Office hours\nare nine to five."),
        ("line 5", "The coffee machine is on floor two."),
    ]


def test_chunks_keep_to_size_and_headings_with_overlap() -> None:
    sentence = "alpha beta gamma delta epsilon zeta eta theta iota kappa. "
    markdown = f"# One\n\n{sentence * 40}\n\n{sentence * 3}\n\n# Two\n\nshort text\n"
    config = ChunkingConfig(size=300, overlap=40)
    chunks = chunk(parse("a.md", markdown.encode()).blocks, config)
    assert all(len(c.text) <= 300 for c in chunks)
    assert {c.heading for c in chunks} == {"One", "Two"}
    assert [c.text for c in chunks if c.heading == "Two"] == ["short text"]
    ones = [c for c in chunks if c.heading == "One"]
    assert len(ones) > 5
    for before, after in itertools.pairwise(ones[1:]):
        # the overlap repeats the end of the previous chunk (at most 40 characters)
        assert " ".join(after.text.split()[:3]) in before.text[-40:]
    by_words = chunk(parse("a.md", markdown.encode()).blocks, ChunkingConfig(size=60, overlap=0))
    assert max(len(c.text.split()) for c in by_words) <= 60
    tokens = ChunkingConfig(size=60, overlap=0, unit="tokens")
    assert all(
        len(c.text.split()) <= 60 for c in chunk(parse("a.md", markdown.encode()).blocks, tokens)
    )


def test_index_search_ranks_and_cites(tmp_path: Path) -> None:
    write_corpus(tmp_path / "docs")
    store = store_for(tmp_path)
    report = store.refresh()
    assert (report.added, report.documents, report.skipped) == (3, 3, 0)
    assert report.chunks >= 5
    assert search(store, "how many days of paid leave?")[0] == "policy.html#pto"
    assert search(store, "roll back a release")[0] == "guides/deploy.md (line 7)"
    assert search(store, "coffee")[0] == "notes.txt (lines 1-5)"
    assert search(store, "earlier releases")[0].startswith("guides/deploy.md")  # stemmed
    assert search(store, 'NEAR( "zzz" OR) * ^ :') == []  # FTS5 syntax in a query is just text
    assert search(store, "!!!") == []
    assert len(search(store, "days", top_k=1)) == 1
    store.close()


def test_refresh_is_incremental(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs)
    store = store_for(tmp_path)
    store.refresh()
    again = store.refresh()
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 3)
    notes = docs / "notes.txt"
    os.utime(notes, ns=(notes.stat().st_atime_ns, notes.stat().st_mtime_ns + 10**9))
    touched = store.refresh()  # a new mtime, the same content: not re-indexed
    assert (touched.updated, touched.unchanged) == (0, 3)
    notes.write_text("The tea kettle is on floor three.\n")
    (docs / "policy.html").unlink()
    (docs / "guides" / "new.md").write_text("# New\n\nQuarterly planning happens in March.\n")
    changed = store.refresh()
    assert (changed.added, changed.updated, changed.removed, changed.documents) == (1, 1, 1, 3)
    assert search(store, "coffee") == []
    assert search(store, "kettle") == ["notes.txt (line 1)"]
    assert search(store, "paid leave") == []
    assert search(store, "quarterly planning") == ["guides/new.md (line 3)"]
    store.close()
    reopened = store_for(tmp_path)  # the index is a file: a restart starts from it
    assert reopened.refresh().unchanged == 3
    reopened.close()


def test_an_index_written_with_the_old_insert_trigger_stays_consistent(tmp_path: Path) -> None:
    write_corpus(tmp_path / "docs")
    store = store_for(tmp_path)
    store.refresh()
    store.close()
    with closing(sqlite3.connect(tmp_path / "index.db")) as db, db:  # as earlier versions
        db.execute(
            "CREATE TRIGGER chunks_added AFTER INSERT ON chunks BEGIN"
            " INSERT INTO chunks_fts(rowid, title, heading, text)"
            " VALUES (new.id, new.title, new.heading, new.text); END"
        )
    (tmp_path / "docs" / "notes.txt").write_text("The tea kettle is on floor three.\n")
    reopened = store_for(tmp_path)
    assert reopened.refresh().updated == 1
    assert search(reopened, "kettle") == ["notes.txt (line 1)"]  # indexed once
    reopened.close()
    with closing(sqlite3.connect(tmp_path / "index.db")) as db:  # external content matches
        db.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")


def fts_segments(path: Path) -> int:
    """How many segments the FTS5 index has: its structure record is a 4-byte cookie, then
    varints (one byte each here) for the levels and the segments."""
    with closing(sqlite3.connect(path)) as db:
        [(structure,)] = db.execute("SELECT block FROM chunks_fts_data WHERE id = 10")
    return int(structure[5])


def test_fts_segments_are_merged_every_so_many_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_index, "BATCH", 1)  # a commit, so a segment, per document
    monkeypatch.setattr(sqlite_index, "OPTIMIZE_AFTER", 4)
    write_corpus(tmp_path / "docs")
    store = store_for(tmp_path)
    store.refresh()
    assert fts_segments(tmp_path / "index.db") == 3
    (tmp_path / "docs" / "kettle.txt").write_text("The tea kettle is on floor three.\n")
    store.refresh()  # the fourth document
    assert fts_segments(tmp_path / "index.db") == 1
    assert search(store, "kettle") == ["kettle.txt (line 1)"]
    store.close()


ALLOCATION_PROBE = """
import ctypes, sys, _sqlite3
if sys.argv[1] == "busy":  # a connection open before the index module is imported
    import sqlite3
    held = sqlite3.connect(":memory:")
from hector_py.knowledge.index import SqliteIndex
lib = ctypes.CDLL(_sqlite3.__file__)
lib.sqlite3_memory_used.restype, lib.sqlite3_malloc.restype = ctypes.c_int64, ctypes.c_void_p
before = lib.sqlite3_memory_used()
block = lib.sqlite3_malloc(4096)
print(lib.sqlite3_memory_used() > before, SqliteIndex(sys.argv[2]).counts())
"""


@pytest.mark.parametrize(("held", "counted"), [("idle", "False"), ("busy", "True")])
def test_sqlite_allocation_statistics_are_off_unless_sqlite_was_in_use(
    held: str, counted: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    command = [sys.executable, "-c", ALLOCATION_PROBE, held, str(tmp_path / "index.db")]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert output.stdout.split() == [counted, "(0,", "0)"]  # SQLite works either way


def test_include_and_exclude(tmp_path: Path) -> None:
    write_corpus(tmp_path / "docs")
    (tmp_path / "docs" / "script.py").write_text("print('deploy')\n")
    store = store_for(tmp_path, include=["**/*.md", "*.txt", "**/*.py"], exclude=["**/*.py"])
    assert sorted(path for path, _ in store.files()) == ["guides/deploy.md", "notes.txt"]
    assert store.refresh().documents == 2
    store.close()


def test_bad_files_are_logged_once_counted_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs)
    (docs / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    (docs / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (docs / "huge.txt").write_text("big words " * 2000)
    (docs / "gone.md").symlink_to(tmp_path / "nowhere.md")
    store = store_for(tmp_path, max_file_bytes=10_000)
    with caplog.at_level(logging.WARNING, logger="hector.knowledge"):
        first = store.refresh()
        second = store.refresh()
    assert (first.documents, first.skipped, second.skipped) == (3, 4, 4)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # once each, not once per refresh
    assert any("image.md: binary content" in line for line in lines)
    assert any("latin1.txt: not UTF-8 text" in line for line in lines)
    assert any("huge.txt: 20000 bytes, more than max_file_bytes (10000)" in line for line in lines)
    assert any("gone.md: No such file or directory" in line for line in lines)
    assert search(store, "paid leave")[0] == "policy.html#pto"  # the rest still serves
    (docs / "notes.txt").write_bytes(b"\x00\x01binary now")
    assert store.refresh().removed == 1  # a file that turned bad leaves the index
    assert search(store, "coffee") == []
    store.close()


def test_health_says_indexing_until_the_first_pass(tmp_path: Path) -> None:
    write_corpus(tmp_path / "docs")
    config = DocumentStoreConfig.model_validate(
        {
            "source": {"path": str(tmp_path / "docs"), "watch": False},
            "index": {"path": str(tmp_path / "index.db")},
        }
    )

    async def scenario() -> tuple[str, str, str]:
        knowledge = Knowledge.build({"docs": config}, None)
        before = knowledge.health()["status"]
        knowledge.start()
        for _ in range(500):
            if knowledge.health()["status"] == "ok":
                break
            await asyncio.sleep(0.01)
        context = await knowledge.context(["docs"], 2, "paid leave")
        await knowledge.close()
        return before, knowledge.health()["status"], context or ""

    before, after, context = asyncio.run(scenario())
    assert (before, after) == ("indexing", "ok")
    assert "source: policy.html#pto" in context and "27 days" in context


def test_search_over_several_stores_interleaves_their_rankings(tmp_path: Path) -> None:
    configs = {}
    for name, text in (("hr", "Paid leave: 27 days.\n"), ("facilities", "Paid parking: B2.\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.txt").write_text(text)  # the same path (and chunk id) in both
        configs[name] = DocumentStoreConfig.model_validate(
            {
                "source": {"path": str(tmp_path / name), "watch": False},
                "index": {"path": str(tmp_path / f"{name}.db")},
            }
        )

    async def scenario() -> list[str]:
        knowledge = Knowledge.build(configs, None)
        for store in knowledge.stores.values():
            await asyncio.to_thread(store.refresh)
        hits = await knowledge.search(["hr", "facilities"], "paid", 5)
        await knowledge.close()
        return [hit.text for hit in hits]

    assert sorted(asyncio.run(scenario())) == ["Paid leave: 27 days.", "Paid parking: B2."]


def test_a_failing_search_leaves_inject_without_context(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_corpus(tmp_path / "docs")
    config = DocumentStoreConfig.model_validate(
        {
            "source": {"path": str(tmp_path / "docs"), "watch": False},
            "index": {"path": str(tmp_path / "index.db")},
        }
    )

    async def scenario() -> str | None:
        knowledge = Knowledge.build({"docs": config}, None)
        store = knowledge.stores["docs"]
        await asyncio.to_thread(store.refresh)
        store.index.close()  # every search now fails
        return await knowledge.context(["docs"], 2, "paid leave")

    with caplog.at_level(logging.WARNING, logger="hector.knowledge"):
        assert asyncio.run(scenario()) is None
    assert [r.getMessage() for r in caplog.records] == [
        "knowledge search for the prompt failed: ProgrammingError"
    ]


def test_polling_watch_picks_up_changes(tmp_path: Path) -> None:
    """The fallback when the OS cannot watch the folder (out of inotify watches...)."""
    write_corpus(tmp_path / "docs")
    store = store_for(tmp_path)
    store.refresh()

    async def found(query: str) -> list[str]:
        return [cite(hit) for hit in await store.search(query, 5)]

    async def scenario() -> None:
        stop = asyncio.Event()
        watching = asyncio.create_task(store.watch(stop, polling=True))
        added = tmp_path / "docs" / "added.txt"
        for _ in range(100):  # at most 10 s
            # written again until seen: a write before the watcher's first look is no change
            added.write_text("The espresso machine is in the lobby.\n")
            if await found("espresso"):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(watching, 10)
        assert await found("espresso") == ["added.txt (line 1)"]

    asyncio.run(scenario())
    store.close()
