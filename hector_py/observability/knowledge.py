"""Telemetry of document stores: ``vectorstore.search`` spans and the knowledge metrics.

A scope on the ``Telemetry`` facade, kept in its own module so the knowledge package
never touches prometheus_client or OpenTelemetry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span, SpanKind

from hector_py.observability.light import note_usage
from hector_py.observability.scopes import failure_type, observe, outcome
from hector_py.observability.telemetry import Telemetry


@dataclass
class SearchScope:
    """One search; report what it found with ``found``."""

    span: Span | None
    results: int = 0

    def found(self, results: int, best_score: float | None) -> None:
        """The number of results and the best one's score."""
        self.results = results
        if self.span is not None:
            attributes: dict[str, Any] = {"hector.knowledge.results": results}
            if best_score is not None:
                attributes["hector.knowledge.best_score"] = best_score
            self.span.set_attributes(attributes)


@dataclass
class EmbeddingScope:
    """One embeddings request; report the tokens the upstream counted."""

    span: Span | None
    tokens: int = 0

    def usage(self, tokens: int) -> None:
        """The request's input tokens."""
        self.tokens = tokens


class KnowledgeTelemetry:
    """The knowledge scopes of one app's ``Telemetry``."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.metrics = telemetry.metrics

    @contextmanager
    def search(self, store: str, system: str, top_k: int) -> Iterator[SearchScope]:
        """One search of ``store``: ``vectorstore.search`` span (INTERNAL, under the tool or
        agent span), duration, results per search, ``errors_total`` on failure."""
        attributes = {
            "db.system.name": system,
            "db.operation.name": "search",
            "db.collection.name": store,
            "hector.knowledge.store": store,
            "hector.knowledge.top_k": top_k,
        }
        started = time.perf_counter()
        error_type: str | None = None
        with self.telemetry._span("vectorstore.search", SpanKind.INTERNAL, attributes) as span:
            scope = SearchScope(span)
            try:
                yield scope
            except BaseException as exc:
                error_type = failure_type(exc)
                raise
            finally:
                metrics = self.metrics
                if metrics is not None:
                    status = outcome(error_type)
                    metrics.vectorstore_searches.labels(store, status).inc()
                    duration = metrics.vectorstore_search_duration.labels(store)
                    observe(duration, time.perf_counter() - started, span)
                    if error_type is None:
                        metrics.vectorstore_search_results.labels(store).observe(scope.results)
                self.telemetry._count_error("knowledge", error_type)

    @contextmanager
    def embedding(
        self, store: str, provider: str, model: str, price_per_million: float | None
    ) -> Iterator[EmbeddingScope]:
        """One embeddings request: ``embeddings {model}`` client span with token usage,
        tokens and cost counted, ``errors_total{component="embeddings"}`` on failure."""
        attributes = {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "hector.knowledge.store": store,
        }
        error_type: str | None = None
        with self.telemetry._span(f"embeddings {model}", SpanKind.CLIENT, attributes) as span:
            scope = EmbeddingScope(span)
            try:
                yield scope
            except BaseException as exc:
                error_type = failure_type(exc)
                raise
            finally:
                if span is not None:
                    span.set_attribute("gen_ai.usage.input_tokens", scope.tokens)
                    note_usage(span, provider, model, scope.tokens, 0)
                if self.metrics is not None and scope.tokens:
                    self.metrics.embedding_tokens.labels(store, model).inc(scope.tokens)
                    if price_per_million is not None:
                        cost = scope.tokens * price_per_million / 1_000_000
                        self.metrics.embedding_cost.labels(store, model).inc(cost)
                self.telemetry._count_error("embeddings", error_type)

    def indexed(self, store: str, documents: int, chunks: int) -> None:
        """``store``'s index now holds ``documents`` files in ``chunks`` chunks."""
        if self.metrics is not None:
            self.metrics.knowledge_documents.labels(store).set(documents)
            self.metrics.knowledge_chunks.labels(store).set(chunks)

    def skipped(self, store: str, reason: str) -> None:
        """``store`` skipped a file for ``reason`` (counted once per file version)."""
        if self.metrics is not None:
            self.metrics.knowledge_index_errors.labels(store, reason).inc()

    def refresh_failed(self, store: str) -> None:
        """A refresh of ``store`` failed (counted once per run of failures)."""
        if self.metrics is not None:
            self.metrics.knowledge_index_errors.labels(store, "refresh").inc()
