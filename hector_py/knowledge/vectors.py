"""Embeddings searched in memory, for every index kind: the vectors of one model as unit
rows of a matrix (loaded once per index change), ranked by cosine similarity with numpy
(imported with the first vectors: ~12 MiB a server without an embedder does not need)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import numpy


@dataclass(frozen=True)
class Hit:
    """One search result: where it is (path and locator) and how well it matched."""

    path: str
    locator: str
    title: str
    heading: str
    text: str
    score: float
    chunk: int = 0  # the chunk's id in its index


Matrix: TypeAlias = "tuple[numpy.ndarray[Any, Any], numpy.ndarray[Any, Any]]"
"""(chunk ids, unit vectors, one row each)."""


def unit_matrix(rows: Sequence[tuple[int, Any]]) -> Matrix:
    """The matrix of ``rows`` (chunk id, vector as float32 bytes or numbers); empty when
    the vectors disagree on their length (the model changed)."""
    import numpy

    ids = numpy.array([chunk for chunk, _ in rows], numpy.int64)
    vectors = [
        numpy.frombuffer(v, numpy.float32)
        if isinstance(v, bytes)
        else numpy.asarray(v, numpy.float32)
        for _, v in rows
    ]
    if not vectors or len({len(v) for v in vectors}) != 1:
        return ids[:0], numpy.zeros((0, 0), numpy.float32)
    raw = numpy.vstack(vectors)
    norms = numpy.linalg.norm(raw, axis=1, keepdims=True)
    return ids, (raw / numpy.where(norms == 0, 1, norms)).astype(numpy.float32)


def closest(matrix: Matrix, vector: list[float], top_k: int) -> dict[int, float]:
    """The ``top_k`` chunk ids nearest to ``vector`` with their cosine similarity."""
    import numpy

    ids, units = matrix
    query = numpy.asarray(vector, numpy.float32)
    if not len(ids) or units.shape[1] != len(query) or not numpy.any(query):
        return {}
    scores = units @ (query / numpy.linalg.norm(query))
    best = numpy.argsort(-scores)[:top_k]
    return {int(ids[i]): float(scores[i]) for i in best}


class VectorSearch:
    """``has_vectors`` and ``nearest`` for an index that loads its vectors as a ``Matrix``
    (``matrix``) and reads chunks by id (``chunk_rows``: path, locator, title, heading,
    text, id)."""

    def matrix(self, model: str) -> Matrix:
        """(chunk ids, unit vectors) of ``model``."""
        raise NotImplementedError

    def chunk_rows(self, ids: list[int]) -> Iterable[Sequence[Any]]:
        """The rows of these chunks."""
        raise NotImplementedError

    def has_vectors(self, model: str) -> bool:
        """Whether any chunk has a vector from ``model``."""
        return len(self.matrix(model)[0]) > 0

    def nearest(self, model: str, vector: list[float], top_k: int) -> list[Hit]:
        """The ``top_k`` chunks whose vectors are closest (cosine) to ``vector``."""
        chosen = closest(self.matrix(model), vector, top_k)
        if not chosen:
            return []
        hits = [
            Hit(path, locator, title, heading, text, round(chosen[chunk], 4), chunk)
            for path, locator, title, heading, text, chunk in self.chunk_rows(list(chosen))
        ]
        return sorted(hits, key=lambda hit: hit.score, reverse=True)
