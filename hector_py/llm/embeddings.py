"""Embeddings from an ``llms:`` entry's endpoint, through the providers' HTTP layer (its
timeouts, retries, error messages and key handling): OpenAI-compatible ``/embeddings``
or Ollama's ``/api/embed``."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from hector_py.config.model import LLMConfig
from hector_py.llm.http import OnRetry
from hector_py.llm.ollama import OllamaLLM
from hector_py.llm.openai import OpenAILLM
from hector_py.llm.remote import SHAPE_ERRORS


@dataclass(frozen=True)
class Embedded:
    """Vectors in the order of the texts, and the tokens the upstream counted."""

    vectors: list[list[float]]
    tokens: int


class Embedder:
    """``embed(texts)`` with ``model`` on the endpoint of ``config``."""

    def __init__(
        self,
        config: LLMConfig,
        model: str,
        session: aiohttp.ClientSession,
        *,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.model = model
        self.provider = config.provider
        client_type = OllamaLLM if config.provider == "ollama" else OpenAILLM
        self._client = client_type(config, session, on_retry=on_retry)

    async def embed(self, texts: list[str]) -> Embedded:
        """One request for ``texts``; raises ``LLMError`` when the upstream fails."""
        client = self._client
        headers = client._headers()
        if self.provider == "ollama":
            url = f"{client.base_url}/api/embed"
        else:
            url = f"{client.base_url}/embeddings"
        data = client.checked(
            await client.http.post_json(url, {"model": self.model, "input": texts}, headers)
        )
        try:
            if self.provider == "ollama":
                vectors = [list(map(float, v)) for v in data["embeddings"]]
                tokens = int(data.get("prompt_eval_count", 0))
            else:
                rows = sorted(data["data"], key=lambda row: row["index"])
                vectors = [list(map(float, row["embedding"])) for row in rows]
                tokens = int((data.get("usage") or {}).get("prompt_tokens", 0))
        except SHAPE_ERRORS as exc:
            raise client._shape_error(exc) from None
        if len(vectors) != len(texts):
            raise client.http.error(f"{len(vectors)} embeddings for {len(texts)} texts")
        return Embedded(vectors, tokens)
