"""The LLM interface every provider implements, and the types it speaks."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]
log = logging.getLogger("hector.llm")


@dataclass(frozen=True)
class ToolCall:
    """A model's request to run one tool."""

    id: str
    name: str
    arguments: dict[str, Any]
    signature: str | None = None
    """Opaque provider token to send back with the call (Gemini thought signatures)."""
    error: str | None = None
    """Why the arguments could not be read (they are then empty); the agent loop gives it
    back to the model as the tool result instead of running the tool."""


@dataclass(frozen=True)
class Attachment:
    """A file given to the model with a message: its media type, bytes and file name."""

    media_type: str
    data: bytes
    name: str | None = None

    @property
    def base64(self) -> str:
        """The bytes in base64, as every provider's API takes them."""
        return base64.b64encode(self.data).decode()

    @property
    def is_image(self) -> bool:
        """Whether the file is an image (``image/*``)."""
        return self.media_type.startswith("image/")

    def placeholder(self) -> str:
        """A short text standing in for the file where it cannot be passed on."""
        name = f" {self.name}" if self.name else ""
        return f"[{self.media_type} file{name}, {len(self.data)} bytes]"


@dataclass(frozen=True)
class Message:
    """One chat message. ``tool_call_id`` (and ideally ``name``) are set on ``tool`` results;
    ``attachments`` are files (images, documents) that go with ``user`` and ``tool`` messages."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    """The tool's name on ``tool`` results (Gemini and Ollama send it upstream)."""
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model: name, description and JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True)
class Usage:
    """Token counts of one LLM call; ``cached_tokens`` (of the prompt, read from the
    provider's cache) and ``reasoning_tokens`` (of the completion) where reported."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def checked(self, provider: str) -> Usage:
        """These counts, each one that is not a non-negative integer (as an upstream may
        send) replaced by 0 with a warning."""
        counts = (self.prompt_tokens, self.completion_tokens)
        valid = [c if type(c) is int and c >= 0 else 0 for c in counts]
        if valid != list(counts):
            log.warning(
                "%s reported invalid token usage (prompt %.40r, completion %.40r): ignored",
                provider,
                *counts,
            )
            return replace(self, prompt_tokens=valid[0], completion_tokens=valid[1])
        return self


@dataclass(frozen=True)
class OutputSchema:
    """The JSON Schema a final answer must match; ``name`` and ``strict`` as OpenAI's
    ``response_format`` takes them."""

    schema: dict[str, Any]
    name: str = "reply"
    strict: bool = False

    def instruction(self) -> str:
        """The schema as an instruction, for APIs without a native JSON mode."""
        schema = json.dumps(self.schema, ensure_ascii=False)
        return (
            "Answer with only a JSON value (no prose, no code fence) that matches this JSON"
            f" Schema: {schema}"
        )


@dataclass(frozen=True)
class LLMRequest:
    """What the agent loop asks of a model; ``output`` when the answer must be JSON."""

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    output: OutputSchema | None = None


@dataclass(frozen=True)
class LLMResponse:
    """A complete model answer."""

    message: Message
    usage: Usage
    finish_reason: str = "stop"
    model: str | None = None  # the model that answered, as the provider names it
    id: str | None = None  # the provider's id of the answer


@dataclass(frozen=True)
class LLMChunk:
    """One piece of a streamed answer: text, tool calls, and usage on the last chunk."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None  # on the last chunk, with the answer's model and id
    model: str | None = None
    id: str | None = None


class LLMError(Exception):
    """A model call failed; ``retryable`` says whether trying again may help.

    ``status`` is the upstream HTTP status when there was one; ``usage`` is what a stream
    had reported before it broke, when known; ``cause`` is ``timeout`` or
    ``connection_error`` when the upstream could not be reached.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        usage: Usage | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.usage = usage
        self.cause = cause

    @property
    def error_type(self) -> str:
        """A low-cardinality cause for ``error.type`` and metric labels: the upstream's
        HTTP status (``429``), ``timeout``, ``connection_error``, or ``llm_error``."""
        if self.status is not None:
            return str(self.status)
        if self.cause is not None:
            return self.cause
        inner = self.__cause__
        if isinstance(inner, TimeoutError):
            return "timeout"
        if isinstance(inner, OSError) or type(inner).__module__.startswith("aiohttp"):
            return "connection_error"
        return "llm_error"


IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""The image types every provider with vision takes."""
IMAGES_AND_PDF = IMAGES | {"application/pdf"}


def accepted_types(llm: object) -> frozenset[str]:
    """The media types a model's API takes as attachments (its ``accepts``; none if unset)."""
    accepts = getattr(llm, "accepts", None)
    return accepts if isinstance(accepts, frozenset) else frozenset()


class LLM(Protocol):
    """A chat model. It may declare ``accepts``: the media types its API takes as files."""

    provider: str
    model: str

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer in one piece."""
        ...

    def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """Answer as chunks; the last chunk carries usage."""
        ...
