"""Hybrid search: an embedder for vectors next to BM25, fused by reciprocal rank.

The embedder is whatever has ``model``, ``provider`` and ``embed(texts)`` (the server
passes ``hector_py.llm.embeddings.Embedder``): this package does no HTTP itself. An
embedder that fails is logged once per outage and counted; until it is tried again
(``RETRY_AFTER_S`` later) searches use BM25 alone and new chunks wait for their vectors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import replace
from typing import Protocol

from hector_py.knowledge.vectors import Hit
from hector_py.observability.knowledge import KnowledgeTelemetry

log = logging.getLogger("hector.knowledge")
RRF_K = 60  # the constant of reciprocal-rank fusion (Cormack et al.)
RETRY_AFTER_S = 30.0
FusionKey = Callable[[int, Hit], Hashable]


class Embedded(Protocol):
    """What an embedder answers: a vector per text, and the tokens counted."""

    @property
    def vectors(self) -> list[list[float]]: ...

    @property
    def tokens(self) -> int: ...


class Embeds(Protocol):
    """An embeddings endpoint."""

    model: str
    provider: str

    async def embed(self, texts: list[str]) -> Embedded:
        """Vectors for ``texts``; raises on failure."""
        ...


def same_chunk(_: int, hit: Hit) -> Hashable:
    """Rankings of one index: a chunk found by both is one result."""
    return hit.chunk


def fuse(rankings: Iterable[list[Hit]], key: FusionKey = same_chunk) -> list[Hit]:
    """Reciprocal-rank fusion: each result scores the sum of 1 / (60 + its rank) over the
    rankings; ``key(ranking number, hit)`` says which hits are the same result."""
    scores: dict[Hashable, float] = {}
    hits: dict[Hashable, Hit] = {}
    for number, ranking in enumerate(rankings):
        for rank, hit in enumerate(ranking, 1):
            identity = key(number, hit)
            scores[identity] = scores.get(identity, 0.0) + 1 / (RRF_K + rank)
            hits.setdefault(identity, hit)
    fused = [replace(hits[k], score=round(score, 6)) for k, score in scores.items()]
    return sorted(fused, key=lambda hit: hit.score, reverse=True)


class Embedding:
    """A store's embedder, with its telemetry and its outages."""

    def __init__(
        self,
        store: str,
        embedder: Embeds,
        telemetry: KnowledgeTelemetry,
        price_per_million: float | None,
    ) -> None:
        self.store = store
        self.model = embedder.model
        self._embedder = embedder
        self._telemetry = telemetry
        self._price = price_per_million
        self._down_until: float | None = None

    @property
    def available(self) -> bool:
        """False while an outage is recent (the embedder is then not asked)."""
        return self._down_until is None or time.monotonic() >= self._down_until

    async def embed(self, texts: list[str]) -> list[list[float]] | None:
        """Vectors for ``texts``, or ``None`` when the embedder is down."""
        if not self.available:
            return None
        embedder = self._embedder
        try:
            with self._telemetry.embedding(
                self.store, embedder.provider, self.model, self._price
            ) as scope:
                result = await embedder.embed(texts)
                scope.usage(result.tokens)
        except Exception as exc:
            if self._down_until is None:
                log.warning(
                    "document store %s: embedder %s failed, searching with BM25 only: %s",
                    self.store,
                    self.model,
                    exc,
                )
            self._down_until = time.monotonic() + RETRY_AFTER_S
            return None
        if self._down_until is not None:
            log.info("document store %s: embedder %s works again", self.store, self.model)
            self._down_until = None
        return result.vectors
