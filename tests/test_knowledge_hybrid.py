"""Hybrid search through the real server: a fake OpenAI-compatible embeddings endpoint,
vectors fused with BM25, the embedder's spans and metrics, and BM25 alone when it is down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Server, hector, rpc, v03_message
from tests.fakes.embeddings import FakeEmbeddings
from tests.fakes.trace_receivers import OTLPHttpReceiver
from tests.metrics_helpers import scrape
from tests.test_knowledge_server import wait_ready, wait_until, write_docs


def hybrid_config(tmp_path: Path, base_url: str, tracing: str = "") -> Path:
    path = tmp_path / "hybrid.yaml"
    path.write_text(
        "llms:\n  default: {provider: demo, stream_delay: 0}\n"
        f"  embed: {{provider: openai, model: unused, api_key: sk-embed-secret,"
        f" base_url: '{base_url}', max_retries: 0}}\n"
        "agents:\n  assistant:\n    knowledge: [handbook]\n"
        "document_stores:\n  handbook:\n"
        f"    source: {{path: '{tmp_path / 'docs'}'}}\n"
        f"    index: {{path: '{tmp_path / 'handbook.db'}'}}\n"
        "    embedder: {llm: embed, model: fake-embed, batch_size: 2,"
        " cost_per_million_tokens: 0.02}\n"
        f"observability:\n  metrics: {{enabled: true}}\n{tracing}"
    )
    return path


def search(server: Server, query: str) -> str:
    text = "use search_knowledge " + json.dumps({"query": query})
    result = rpc(server.url + "/", "message/send", v03_message(text))["result"]
    return "".join(p.get("text", "") for a in result["artifacts"] for p in a["parts"])


def test_hybrid_search_finds_by_meaning_and_is_traced(serve: Any, tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    with FakeEmbeddings() as fake, OTLPHttpReceiver() as receiver:
        tracing = f"  tracing: {{enabled: true, endpoint: '{receiver.endpoint}'}}\n"
        server: Server = serve("-c", str(hybrid_config(tmp_path, fake.base_url, tracing)))
        wait_ready(server)

        # no word of the query is in the policy page: only the vectors can find it
        wait_until(
            lambda: "source: policy.html#pto" in search(server, "vacation"),
            "the vectors searchable",
            timeout=20,
        )
        spans = receiver.wait_for(
            lambda got: any(s.name == "vectorstore.search" for s in got), what="the search"
        )
        searches = {s.span_id for s in spans if s.name == "vectorstore.search"}
        query_embedding = next(
            s for s in spans if s.name == "embeddings fake-embed" and s.parent_span_id in searches
        )
        assert query_embedding.kind == "CLIENT"
        assert query_embedding.attributes["gen_ai.operation.name"] == "embeddings"
        assert query_embedding.attributes["gen_ai.usage.input_tokens"] == 1
    assert all(len(body["input"]) <= 2 for body in fake.requests)  # batch_size
    assert fake.requests[-1]["input"] == ["vacation"]
    metrics = scrape(server.url + "/metrics")
    tokens = metrics.value("hector_embedding_tokens_total", store="handbook", model="fake-embed")
    cost = metrics.value("hector_embedding_cost_usd_total", store="handbook", model="fake-embed")
    assert tokens > 0 and abs(cost - tokens * 0.02 / 1e6) < 1e-12
    assert server.stop() == 0
    assert not any("sk-embed-secret" in line for line in server.log_lines())


def test_embedder_down_falls_back_to_bm25_with_one_warning(serve: Any, tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    fake = FakeEmbeddings()
    fake.start()
    base_url = fake.base_url
    fake.stop()  # nothing listens there any more
    server: Server = serve("-c", str(hybrid_config(tmp_path, base_url)))
    wait_ready(server)
    assert "source: policy.html#pto" in search(server, "paid leave")
    assert "guides/deploy.md" in search(server, "rollback")
    assert "policy.html" not in search(server, "vacation")  # no vectors, no meaning
    metrics = scrape(server.url + "/metrics")
    assert metrics.value("hector_vectorstore_searches_total", status="success") == 3
    assert metrics.value("hector_errors_total", component="embeddings") >= 1
    assert server.stop() == 0
    warnings = [line for line in server.log_lines() if "searching with BM25 only" in line]
    assert len(warnings) == 1, warnings


def test_index_command_embeds_offline(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    with FakeEmbeddings() as fake:
        config = hybrid_config(tmp_path, fake.base_url)
        first = hector("index", "-c", str(config))
        second = hector("index", "-c", str(config))
    assert first.returncode == 0, first.stderr
    assert "handbook: 2 documents" in first.stdout and "chunks embedded" in first.stdout
    embedded = int(first.stdout.split(", ")[-1].split()[0])
    assert embedded >= 2
    assert "0 chunks embedded" in second.stdout  # nothing new to embed


def test_an_embedder_must_name_an_openai_or_ollama_llm(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "document_stores:\n"
        f"  h:\n    source: {{path: '{tmp_path}'}}\n    embedder: {{llm: nope, model: m}}\n"
        f"  g:\n    source: {{path: '{tmp_path}'}}\n    embedder: {{llm: default, model: m}}\n"
    )
    result = hector("validate", str(config))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"document_stores.h.embedder.llm: unknown llm 'nope' (known: default) ({config}:4)",
        "document_stores.g.embedder.llm: llm 'default' must be an openai or ollama provider"
        f" ({config}:7)",
    ]
