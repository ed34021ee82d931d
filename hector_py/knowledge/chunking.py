"""Blocks to chunks: consecutive blocks under one heading are packed up to ``size``; a
chunk never spans two headings, and a block longer than ``size`` is cut at word
boundaries. Consecutive chunks of a section share ``overlap`` of text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby

from hector_py.config.knowledge import ChunkingConfig
from hector_py.knowledge.parsing import Block

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to hand to a model."""

    heading: str
    locator: str
    text: str


def _measure(unit: str) -> Callable[[str], int]:
    if unit == "tokens":
        return lambda text: len(_WORD.findall(text))
    return len


def _cut(text: str, size: int, measure: Callable[[str], int]) -> Iterator[str]:
    """``text`` in pieces of at most ``size`` (a single longer word stays whole)."""
    if measure(text) <= size:
        yield text
        return
    words = text.split(" ")
    piece: list[str] = []
    length = 0
    for word in words:
        cost = measure(word) + (1 if piece else 0)
        if piece and length + cost > size:
            yield " ".join(piece)
            piece, length = [], 0
            cost = measure(word)
        piece.append(word)
        length += cost
    if piece:
        yield " ".join(piece)


def _tail(text: str, overlap: int, measure: Callable[[str], int]) -> str:
    """The last whole words of ``text`` that fit in ``overlap``."""
    if overlap <= 0:
        return ""
    words = text.split()
    kept: list[str] = []
    length = 0
    for word in reversed(words):
        length += measure(word) + 1
        if length > overlap:
            break
        kept.append(word)
    return " ".join(reversed(kept))


def _locator(first: Block, last: Block) -> str:
    """The span from ``first`` to ``last``: an anchor, or a line range merged."""
    if first.locator.startswith("line") and last.locator.startswith("line"):
        start = first.locator.split()[1].split("-")[0]
        end = last.locator.split()[1].split("-")[-1]
        return f"lines {start}-{end}" if start != end else f"line {start}"
    return first.locator


def _section(block: Block) -> tuple[str, str]:
    """Blocks of one section share a heading (and, in HTML, an anchor)."""
    return block.heading, "" if block.locator.startswith("line") else block.locator


def _pack(
    pieces: Iterable[tuple[Block, str]], room: int, measure: Callable[[str], int]
) -> Iterator[list[tuple[Block, str]]]:
    """Consecutive ``pieces`` in batches of at most ``room``."""
    batch: list[tuple[Block, str]] = []
    length = 0
    for block, piece in pieces:
        cost = measure(piece) + 1
        if batch and length + cost > room:
            yield batch
            batch, length = [], 0
        batch.append((block, piece))
        length += cost
    if batch:
        yield batch


def chunk(blocks: Iterable[Block], config: ChunkingConfig) -> list[Chunk]:
    """The chunks of a document's ``blocks``."""
    measure = _measure(config.unit)
    room = config.size - config.overlap
    chunks: list[Chunk] = []
    for (heading, _), group in groupby(blocks, key=_section):
        pieces = ((block, piece) for block in group for piece in _cut(block.text, room, measure))
        previous = ""
        for batch in _pack(pieces, room, measure):
            body = "\n".join(piece for _, piece in batch)
            lead = _tail(previous, config.overlap, measure)
            locator = _locator(batch[0][0], batch[-1][0])
            chunks.append(Chunk(heading, locator, f"{lead} {body}" if lead else body))
            previous = body
    return chunks
