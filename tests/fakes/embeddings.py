"""A fake OpenAI-compatible embeddings endpoint (``POST /v1/embeddings``) with
deterministic vectors: each word (lower-cased, a few synonyms mapped to one concept) adds
1 to one of ``DIMENSIONS`` dimensions chosen by its hash, so texts that share concepts
point the same way even when they share no word."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from aiohttp import web

from tests.fakes.background import BackgroundServer

DIMENSIONS = 64
SYNONYMS = {"vacation": "leave", "holiday": "leave", "holidays": "leave", "pto": "leave"}
_WORD = re.compile(r"\w+")


def vector(text: str) -> list[float]:
    """The fake's embedding of ``text``."""
    values = [0.0] * DIMENSIONS
    for word in _WORD.findall(text.lower()):
        concept = SYNONYMS.get(word, word)
        values[int(hashlib.sha256(concept.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    return values


class FakeEmbeddings(BackgroundServer):
    """Serves ``/v1/embeddings``; ``requests`` holds each request's JSON body."""

    def __init__(self) -> None:
        super().__init__(self._app)
        self.requests: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    async def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(texts)
        ]
        tokens = sum(len(_WORD.findall(t)) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
