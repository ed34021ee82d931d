"""Document stores through the real server and CLI: the search tool, inject mode, watch,
spans, metrics, ``hector index`` and ``--docs-folder``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FakeLLM, Server, hector, rpc, start_fake_llm, v03_message
from tests.fakes.trace_receivers import OTLPHttpReceiver, one
from tests.metrics_helpers import scrape

WATCH_DEADLINE_S = 5.0


def write_docs(root: Path) -> None:
    (root / "guides").mkdir(parents=True)
    (root / "guides" / "deploy.md").write_text(
        "# Deploying\n\nRun `make deploy` from the ops host.\n\n"
        "## Rollback\n\nUse `make rollback VERSION=x` to restore an earlier release.\n"
    )
    (root / "policy.html").write_text(
        "<html><head><title>Holidays</title></head><body><main>"
        '<section id="pto"><h2>Paid time off</h2><p>Employees get 27 days of paid leave.</p>'
        "</section></main></body></html>"
    )


def config_file(
    tmp_path: Path, agent: str, llm: str = "provider: demo\n    stream_delay: 0"
) -> Path:
    path = tmp_path / "knowledge.yaml"
    path.write_text(
        f"llms:\n  default:\n    {llm}\n"
        f"agents:\n  assistant:\n    {agent}\n"
        "document_stores:\n  handbook:\n"
        f"    source: {{path: '{tmp_path / 'docs'}'}}\n"
        f"    index: {{path: '{tmp_path / 'index' / 'handbook.db'}'}}\n"
        "observability:\n  metrics: {enabled: true}\n"
    )
    return path


def ask(server: Server, text: str) -> str:
    result = rpc(server.url + "/", "message/send", v03_message(text))["result"]
    assert result["status"]["state"] == "completed", result
    return "".join(p.get("text", "") for a in result["artifacts"] for p in a["parts"])


def search_reply(server: Server, query: str) -> str:
    return ask(server, "use search_knowledge " + json.dumps({"query": query}))


def watch_scenario(docs: Path, one: Server, other: Server) -> None:
    """A file written, changed and deleted under ``docs`` is found, updated and gone within
    the watch deadline, searching on ``one`` and ``other`` in turn (one server, or two
    replicas sharing an index)."""
    added = docs / "guides" / "oncall.txt"
    added.write_text("The on-call rota changes every Tuesday.\n")
    wait_until(lambda: "oncall.txt" in search_reply(other, "rota tuesday"), "added file")
    added.write_text("The on-call rota changes every Friday.\n")
    wait_until(lambda: "Friday" in search_reply(one, "rota"), "changed file")
    added.unlink()
    wait_until(lambda: "oncall.txt" not in search_reply(other, "rota"), "deleted file")
    assert "oncall.txt" not in search_reply(one, "rota")


def wait_until(check: Callable[[], bool], what: str, timeout: float = WATCH_DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def wait_ready(server: Server) -> dict[str, Any]:
    def ready() -> bool:
        return httpx.get(server.url + "/health/ready", timeout=5).status_code == 200

    wait_until(ready, "readiness", timeout=20)
    return httpx.get(server.url + "/health", timeout=5).json()  # type: ignore[no-any-return]


def test_search_tool_cites_is_traced_counted_and_watches(serve: Any, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_docs(docs)
    with OTLPHttpReceiver() as receiver:
        config = config_file(tmp_path, "knowledge: [handbook]")
        with config.open("a") as file:
            file.write(f"  tracing: {{enabled: true, endpoint: '{receiver.endpoint}'}}\n")
        server: Server = serve("-c", str(config))
        health = wait_ready(server)
        assert health["components"]["knowledge"] == {
            "status": "ok",
            "stores": {"handbook": {"status": "ok", "documents": 2, "chunks": 3, "skipped": 0}},
        }
        reply = search_reply(server, "how many days of paid leave")
        assert "source: policy.html#pto" in reply and "27 days" in reply
        spans = receiver.wait_for(
            lambda got: any(s.name == "vectorstore.search" for s in got), what="the search span"
        )
        search = one(spans, "vectorstore.search")
        tool = one(spans, "execute_tool search_knowledge")
        assert search.parent_span_id == tool.span_id and search.kind == "INTERNAL"
        assert search.attributes["db.system.name"] == "sqlite"
        assert search.attributes["db.collection.name"] == "handbook"
        assert search.attributes["hector.knowledge.top_k"] == 5
        assert search.attributes["hector.knowledge.results"] >= 1
        assert search.attributes["hector.knowledge.best_score"] > 0
    metrics = scrape(server.url + "/metrics")
    assert metrics.value("hector_vectorstore_searches_total", store="handbook") == 1
    assert metrics.value("hector_vectorstore_search_results_count", store="handbook") == 1
    assert metrics.value("hector_knowledge_documents", store="handbook") == 2
    assert metrics.value("hector_knowledge_chunks", store="handbook") >= 2
    assert metrics.value("hector_tool_calls_total", tool="search_knowledge") == 1

    # watch: a file written, changed and deleted is searchable, updated and gone
    watch_scenario(docs, server, server)
    (docs / "blob.md").write_bytes(b"\x00\x01\x02 binary")
    wait_until(
        lambda: (
            scrape(server.url + "/metrics").value(
                "hector_knowledge_index_errors_total", store="handbook", reason="binary"
            )
            == 1
        ),
        "the binary file counted",
    )
    assert "27 days" in search_reply(server, "paid leave")  # still serving
    assert server.stop() == 0
    skipped = [line for line in server.log_lines() if "skipped blob.md" in line]
    assert len(skipped) == 1, skipped


@pytest.fixture
def fake_openai() -> Iterator[FakeLLM]:
    fake = start_fake_llm("openai", "--reply", "Staff get 27 days (policy.html#pto).")
    yield fake
    fake.stop()


def test_inject_adds_the_best_chunks_before_the_first_call(
    serve: Any, tmp_path: Path, fake_openai: FakeLLM
) -> None:
    write_docs(tmp_path / "docs")
    llm = (
        "provider: openai\n    model: gpt-4o\n    api_key: sk-test\n"
        f"    base_url: {fake_openai.base_url}"
    )
    config = config_file(tmp_path, "{knowledge: [handbook], inject: 1}", llm)
    with OTLPHttpReceiver() as receiver:
        with config.open("a") as file:
            file.write(f"  tracing: {{enabled: true, endpoint: '{receiver.endpoint}'}}\n")
        server: Server = serve("-c", str(config))
        wait_ready(server)
        assert ask(server, "How many days of paid leave do I get?") == (
            "Staff get 27 days (policy.html#pto)."
        )
        spans = receiver.wait_for(
            lambda got: any(s.name == "vectorstore.search" for s in got), what="the search"
        )
    search, agent = one(spans, "vectorstore.search"), one(spans, "invoke_agent assistant")
    assert search.parent_span_id == agent.span_id  # before the first model call
    assert search.attributes["hector.knowledge.top_k"] == 1
    [request] = fake_openai.requests()
    body = request["body"]
    assert "tools" not in body or not any(
        t["function"]["name"] == "search_knowledge" for t in body["tools"]
    )
    system = body["messages"][0]
    assert system["role"] == "system"
    assert "source: policy.html#pto" in system["content"] and "27 days" in system["content"]
    assert "make deploy" not in system["content"]  # top 1 only
    metrics = scrape(server.url + "/metrics")
    assert metrics.value("hector_vectorstore_searches_total", store="handbook") == 1


def test_openai_model_calls_the_tool_and_gets_the_chunks(serve: Any, tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    fake = start_fake_llm(
        "openai",
        "--tool-call",
        'search_knowledge:{"query": "paid leave"}',
        "--reply",
        "27 days, says policy.html#pto.",
    )
    try:
        llm = (
            "provider: openai\n    model: gpt-4o\n    api_key: sk-test\n"
            f"    base_url: {fake.base_url}"
        )
        server: Server = serve("-c", str(config_file(tmp_path, "knowledge: [handbook]", llm)))
        wait_ready(server)
        assert ask(server, "How much leave do I get?") == "27 days, says policy.html#pto."
        first, second = (request["body"] for request in fake.requests())
    finally:
        fake.stop()
    [tool] = [t for t in first["tools"] if t["function"]["name"] == "search_knowledge"]
    assert tool["function"]["parameters"]["required"] == ["query"]
    [result] = [m for m in second["messages"] if m["role"] == "tool"]
    assert "source: policy.html#pto" in result["content"] and "27 days" in result["content"]


def test_index_command_and_config_errors(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    config = config_file(tmp_path, "knowledge: [handbook]")
    first = hector("index", "-c", str(config))
    assert first.returncode == 0, first.stderr
    assert "handbook: 2 documents" in first.stdout and "2 added" in first.stdout
    second = hector("index", "-c", str(config), "handbook")
    assert "0 added, 0 updated, 0 removed, 2 unchanged" in second.stdout
    unknown = hector("index", "-c", str(config), "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: document store 'nope' not found (stores: handbook)"
    missing = hector("index", "--docs-folder", str(tmp_path / "absent"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip() == (
        f"error: document_stores.docs.source.path: not a directory: {tmp_path / 'absent'} (config)"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "agents:\n  assistant:\n    knowledge: [handbok]\n"
        f"document_stores:\n  handbook:\n    source: {{path: '{tmp_path}'}}\n"
    )
    result = hector("validate", str(bad))
    assert result.returncode == 1
    assert result.stdout.startswith(
        "agents.assistant.knowledge.0: unknown document store 'handbok' (known: handbook) ("
    )
    bad.write_text(
        f"document_stores:\n  handbook:\n    source: {{path: '{tmp_path}'}}\n"
        "    chunking: {size: 100, overlap: 100}\n"
    )
    result = hector("validate", str(bad))
    assert result.returncode == 1
    assert result.stdout.strip() == (
        f"document_stores.handbook.chunking: overlap must be smaller than size ({bad}:4)"
    )


def test_docs_folder_zero_config(serve: Any, tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    server: Server = serve("--docs-folder", "docs")
    wait_ready(server)
    result = hector("call", "--url", server.url, 'use search_knowledge {"query": "rollback"}')
    assert result.returncode == 0, result.stderr
    assert "source: guides/deploy.md (line 7)" in result.stdout
    assert (tmp_path / ".hector" / "knowledge" / "docs.db").is_file()
    refused = hector("serve", "--docs-folder", str(tmp_path / "absent"), "--port", "0")
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith(
        "not a directory: " + str(tmp_path / "absent") + " (config)"
    )


def test_docs_folder_with_a_config_adds_a_store_to_the_default_agent(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    config = config_file(tmp_path, "knowledge: [handbook]")
    result = hector(
        "index", "-c", str(config), "--docs-folder", str(tmp_path / "docs"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["handbook", "docs"]


def test_an_index_file_that_is_not_a_database_is_one_error_line(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    index = tmp_path / ".hector" / "knowledge" / "docs.db"
    index.parent.mkdir(parents=True)
    index.write_text("not a database " * 100)
    expected = (
        "error: document_stores.docs.index.path: cannot open .hector/knowledge/docs.db:"
        " file is not a database (config)"
    )
    for command in (("index",), ("serve", "--port", "0", "--host", "127.0.0.1")):
        result = hector(*command, "--docs-folder", "docs", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip().splitlines()[-1] == expected
        assert "Traceback" not in result.stderr
