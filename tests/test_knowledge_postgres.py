"""Document stores indexed in a real PostgreSQL (``index: {type: postgres}``): tsvector
search that ranks and cites like the SQLite index, incremental refresh, a second replica
that finds the index already built, vectors for hybrid search, and the search tool through
a real server whose store is postgres."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hector_py.config.knowledge import DocumentStoreConfig
from hector_py.knowledge.store import DocumentStore
from tests.conftest import Server, rpc, v03_message
from tests.postgres_server import Postgres, new_schema
from tests.test_knowledge import search, write_corpus
from tests.test_knowledge_server import wait_ready


def pg_store(tmp_path: Path, postgres: Postgres, schema: str, name: str = "docs") -> DocumentStore:
    config = DocumentStoreConfig.model_validate(
        {
            "source": {"path": str(tmp_path / "docs")},
            "index": {"type": "postgres", "dsn": postgres.dsn, "schema": schema},
        }
    )
    return DocumentStore(name, config)


def test_postgres_index_ranks_cites_and_refreshes(tmp_path: Path, postgres: Postgres) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs)
    schema = new_schema()
    store = pg_store(tmp_path, postgres, schema)
    report = store.refresh()
    assert (report.added, report.documents, report.skipped) == (3, 3, 0)
    assert search(store, "how many days of paid leave?")[0] == "policy.html#pto"
    assert search(store, "roll back a release")[0] == "guides/deploy.md (line 7)"
    assert search(store, "coffee")[0] == "notes.txt (lines 1-5)"
    assert search(store, "earlier releases")[0].startswith("guides/deploy.md")  # stemmed
    assert search(store, "!!!") == [] and search(store, "& | ! ( ):*") == []  # syntax is text
    assert len(search(store, "days", top_k=1)) == 1

    # a second replica on the same database: the index is there, nothing to write
    replica = pg_store(tmp_path, postgres, schema)
    again = replica.refresh()
    assert (again.added, again.unchanged, again.documents) == (0, 3, 3)
    # another store name in the same database is another index
    other = pg_store(tmp_path, postgres, schema, name="other")
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


def test_the_search_tool_over_a_postgres_index(
    serve: Any, tmp_path: Path, postgres: Postgres
) -> None:
    write_corpus(tmp_path / "docs")
    config = tmp_path / "hector.yaml"
    config.write_text(
        f"storage: {{type: postgres, dsn: '{postgres.dsn}', schema: {new_schema()}}}\n"
        "llms: {default: {provider: demo, stream_delay: 0}}\n"
        "agents: {assistant: {knowledge: [handbook]}}\n"
        "document_stores:\n  handbook:\n"
        f"    source: {{path: '{tmp_path / 'docs'}'}}\n"
        "    index: {type: postgres}\n"
    )
    server: Server = serve("-c", str(config))
    health = wait_ready(server)  # indexed in the background first
    assert health["components"]["knowledge"]["stores"]["handbook"]["documents"] == 3
    query = json.dumps({"query": "paid leave days"})
    result = rpc(server.url + "/", "message/send", v03_message(f"use search_knowledge {query}"))
    text = result["result"]["artifacts"][0]["parts"][0]["text"]
    assert "source: policy.html#pto" in text
