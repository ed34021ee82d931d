"""A custom provider for ``provider: "tests.fakes.llm_custom:ShoutLLM"``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from hector_py.config.model import LLMConfig
from hector_py.llm.base import LLMChunk, LLMRequest, LLMResponse, Message, Usage


class ShoutLLM:
    """Answers with the last message in capitals; keeps what it was built with."""

    provider = "shout"

    def __init__(self, config: LLMConfig, session: aiohttp.ClientSession) -> None:
        self.model = config.model
        self.config = config
        self.session = session

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The last message, upper-cased."""
        text = request.messages[-1].content.upper()
        return LLMResponse(Message("assistant", text), Usage(1, 1))

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """The same, in one chunk."""
        response = await self.complete(request)
        yield LLMChunk(text=response.message.content, usage=response.usage)


class NotAnLLM:
    """Builds fine but lacks the LLM interface."""

    def __init__(self, config: LLMConfig, session: aiohttp.ClientSession) -> None:
        self.config = config


class BrokenLLM(ShoutLLM):
    """Streams a first chunk, then fails with an error no provider should raise (a bug)."""

    provider = "broken"

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """A chunk, then ``RuntimeError``."""
        yield LLMChunk(text="half an answer")
        raise RuntimeError("a bug in a custom provider")
