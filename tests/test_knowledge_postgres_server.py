"""A PostgreSQL index through real ``hector serve`` processes: two replicas starting
together on one index (each file written once, search_knowledge on both, postgresql spans,
watch add/change/delete), a server whose index database goes away and comes back, and one
whose first indexing pass fails."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from tests.conftest import Server, hector
from tests.fakes.trace_receivers import OTLPHttpReceiver
from tests.metrics_helpers import scrape
from tests.postgres_server import Postgres, cluster, new_schema
from tests.test_knowledge_server import (
    search_reply,
    wait_ready,
    wait_until,
    watch_scenario,
    write_docs,
)

CATCH_UP_S = 20.0  # a failed refresh is retried every 5 s (RETRY_S)


async def chunk_rows(dsn: str, schema: str) -> tuple[int, int]:
    """(chunks, highest chunk id) of the index in ``schema``."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(f'SELECT count(*), max(id) FROM "{schema}".kb_chunks')
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), int(row[1])


def test_two_servers_share_one_index(serve: Any, postgres: Postgres, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_docs(docs)
    schema = new_schema()
    config = tmp_path / "hector.yaml"
    with OTLPHttpReceiver() as receiver:
        config.write_text(
            f"storage: {{type: postgres, dsn: '{postgres.dsn}', schema: {schema},"
            " pool: {min: 1, max: 4}}\n"
            "llms: {default: {provider: demo, stream_delay: 0}}\n"
            "agents: {assistant: {knowledge: [handbook]}}\n"
            f"document_stores:\n  handbook:\n    source: {{path: '{docs}'}}\n"
            "    index: {type: postgres}\n"
            "observability:\n  metrics: {enabled: true}\n"
            f"  tracing: {{enabled: true, endpoint: '{receiver.endpoint}'}}\n"
        )
        a: Server = serve("-c", str(config))
        b: Server = serve("-c", str(config))  # both start indexing at once
        for server in (a, b):
            stores = wait_ready(server)["components"]["knowledge"]["stores"]
            assert stores["handbook"] == {"status": "ok", "documents": 2, "chunks": 3, "skipped": 0}
        # 3 chunks written, ids 1-3: whichever replica came second wrote none
        assert asyncio.run(chunk_rows(postgres.dsn, schema)) == (3, 3)
        for server in (a, b):
            reply = search_reply(server, "how many days of paid leave")
            assert "source: policy.html#pto" in reply and "27 days" in reply
        spans = receiver.wait_for(
            lambda got: sum(s.name == "vectorstore.search" for s in got) == 2, what="2 searches"
        )
    assert {s.attributes["db.system.name"] for s in spans if s.name == "vectorstore.search"} == {
        "postgresql"
    }
    offline = hector("index", "-c", str(config))
    assert "0 added, 0 updated, 0 removed, 2 unchanged" in offline.stdout, offline.stderr

    # the replicas watch the folder: whichever indexes a change, both search it
    watch_scenario(docs, a, b)
    metrics = scrape(a.url + "/metrics")
    assert metrics.value("hector_vectorstore_searches_total", store="handbook") >= 3
    for server in (a, b):
        assert server.stop() == 0
        assert not any("Traceback" in line for line in server.log_lines())


def test_a_server_rides_out_an_index_outage(serve: Any, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_docs(docs)
    with cluster() as database:  # its own: stopping the shared one would fail other tests
        config = tmp_path / "hector.yaml"
        config.write_text(
            "llms: {default: {provider: demo, stream_delay: 0}}\n"
            "agents: {assistant: {knowledge: [handbook]}}\n"
            f"document_stores:\n  handbook:\n    source: {{path: '{docs}'}}\n"
            f"    index: {{type: postgres, dsn: '{database.dsn}'}}\n"
        )
        server: Server = serve("-c", str(config))
        wait_ready(server)
        assert "source: policy.html#pto" in search_reply(server, "paid leave")

        database.stop()
        reply = search_reply(server, "paid leave")
        assert "the document index is unavailable; try again later" in reply
        (docs / "guides" / "deploy.md").write_text("# Deploying\n\nDeploys happen on Mondays.\n")

        def refresh_failed() -> bool:
            return any("refresh failed, retrying" in line for line in server.log_lines())

        wait_until(refresh_failed, "the watch's refresh failing")
        database.start()
        # nothing changes after the outage: the watch retries the refresh by itself
        wait_until(
            lambda: "Mondays" in search_reply(server, "deploys mondays"),
            "the change made during the outage",
            timeout=CATCH_UP_S,
        )
        assert server.stop() == 0
    lines = server.log_lines()
    assert sum("refresh failed, retrying" in line for line in lines) == 1  # once per outage
    assert not any("Traceback" in line for line in lines)


@contextlib.contextmanager
def refreshing_elsewhere(dsn: str, *stores: str) -> Iterator[None]:
    """Another replica refreshing ``stores`` (in schema ``hector``): it holds their refresh
    locks until the database stops."""
    taken = threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(dsn)
        for store in stores:
            await conn.execute(
                "SELECT pg_advisory_lock(hashtext($1))", f"kb-refresh:hector:{store}"
            )
        taken.set()
        with contextlib.suppress(Exception):  # until the database stops
            await conn.execute("SELECT pg_sleep(120)")

    thread = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    thread.start()
    assert taken.wait(10), "the refresh locks"
    yield
    thread.join(10)


def test_a_failed_first_pass_is_retried(serve: Any, tmp_path: Path) -> None:
    docs, manual = tmp_path / "docs", tmp_path / "manual"
    write_docs(docs)
    manual.mkdir()
    (manual / "printer.md").write_text("# Printing\n\nThe printer is on floor 3.\n")
    with cluster() as database:
        config = tmp_path / "hector.yaml"
        index = f"index: {{type: postgres, dsn: '{database.dsn}'}}"
        config.write_text(
            "llms: {default: {provider: demo, stream_delay: 0}}\n"
            "agents: {assistant: {knowledge: [handbook, manual]}}\n"
            f"document_stores:\n  handbook:\n    source: {{path: '{docs}'}}\n    {index}\n"
            f"  manual:\n    source: {{path: '{manual}', watch: false}}\n    {index}\n"
            "observability:\n  metrics: {enabled: true}\n"
        )
        # the first pass waits for a replica refreshing both stores; the database then
        # goes down, so both first passes fail: a watched store and one that is not
        with refreshing_elsewhere(database.dsn, "handbook", "manual"):
            server: Server = serve("-c", str(config))
            database.stop()
        stores = wait_ready(server)["components"]["knowledge"]["stores"]  # serving
        assert stores["handbook"]["documents"] == stores["manual"]["documents"] == 0
        database.start()
        wait_until(lambda: "27 days" in search_reply(server, "paid leave"), "handbook", timeout=15)
        wait_until(lambda: "floor 3" in search_reply(server, "printer"), "manual", timeout=15)
        metrics = scrape(server.url + "/metrics")
        for store in ("handbook", "manual"):
            errors = metrics.value(
                "hector_knowledge_index_errors_total", store=store, reason="refresh"
            )
            assert errors == 1  # once per run of failures
        assert server.stop() == 0
    lines = server.log_lines()
    for store in ("handbook", "manual"):
        failed = f"document store {store}: refresh failed, retrying every 5 s"
        assert sum(failed in line for line in lines) == 1, lines
        assert any(f"document store {store}: refreshed again" in line for line in lines)
    assert not any("Traceback" in line for line in lines)
