"""What the HTTP providers share: key lookup, the complete/stream skeleton, stream state
and small message-mapping helpers. Each provider only maps shapes to and from its API."""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
import orjson

from hector_py.config.model import LLMConfig
from hector_py.llm.base import (
    LLMChunk,
    LLMError,
    LLMRequest,
    LLMResponse,
    Message,
    ToolCall,
    Usage,
)
from hector_py.llm.http import (
    Framing,
    HTTPClient,
    InjectHeaders,
    OnHeadroom,
    OnRetry,
    upstream_message,
)

JSON = dict[str, Any]
SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)
"""What reading an upstream's JSON of an unexpected shape raises."""


class RemoteLLM(ABC):
    """Base of the providers that speak HTTP to an upstream API.

    Constructed as ``Cls(config, session)``: ``session`` is the app's shared
    ``aiohttp.ClientSession``. ``on_retry`` is told about every retry and
    ``inject_headers`` may add headers to every outgoing request (see ``http``).
    """

    provider: str
    default_base_url: ClassVar[str]
    key_env: ClassVar[tuple[str, ...]] = ()
    """Environment variables holding the API key, in order; empty when none is needed."""
    framing: ClassVar[Framing] = "sse"
    models_path: ClassVar[str] = "/models"
    """The API's free model listing, under ``base_url`` (``hector doctor`` asks it)."""

    def __init__(
        self,
        config: LLMConfig,
        session: aiohttp.ClientSession,
        *,
        on_retry: OnRetry | None = None,
        inject_headers: InjectHeaders | None = None,
        on_headroom: OnHeadroom | None = None,
    ) -> None:
        self.model = config.model
        self.config = config
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        self._key = (
            config.api_key.get_secret_value()
            if config.api_key
            else next((os.environ[n] for n in self.key_env if os.environ.get(n)), None)
        )
        self.http = HTTPClient(
            self.provider,
            session,
            config,
            secrets=(self._key,) if self._key else (),
            on_retry=on_retry,
            inject_headers=inject_headers,
            on_headroom=on_headroom,
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer in one piece."""
        headers = self._headers()
        url, body = self._request(request, stream=False)
        data = self.checked(await self.http.post_json(url, body, headers))
        try:
            return self._parse(data)
        except SHAPE_ERRORS as exc:
            raise self._shape_error(exc) from exc

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """Text chunks as they come; the last chunk has the tool calls and the usage.

        A stream cut short raises ``LLMError`` carrying the usage reported so far."""
        headers = self._headers()
        url, body = self._request(request, stream=True)
        state = StreamState()
        try:
            async with aclosing(self.http.post_stream(url, body, headers, self.framing)) as events:
                async for payload in events:
                    try:
                        text = self._on_event(payload, state)
                    except SHAPE_ERRORS as exc:
                        raise self._shape_error(exc) from exc
                    if text:
                        yield LLMChunk(text=text)
            if not state.done:
                raise self.http.error(
                    "the stream ended before the answer was complete", retryable=True
                )
        except LLMError as exc:
            exc.usage = exc.usage or state.usage()
            raise
        calls = state.tool_calls(self)
        yield LLMChunk(
            tool_calls=calls,
            usage=state.usage() or Usage(),
            finish_reason=finish_reason(calls, truncated=state.truncated),
            model=state.model,
            id=state.id,
        )

    def checked(self, data: Any) -> Any:
        """``data`` unless it is an upstream error object (``{"error": ...}``)."""
        message = upstream_message(data)
        if message is not None:
            raise self.http.error(f"upstream error: {message}", retryable=True)
        return data

    def event(self, payload: str) -> Any:
        """One streamed payload decoded and checked."""
        return self.checked(self.http.parse_json(payload))

    def tool_call(self, id: str, name: str, arguments: str | dict[str, Any] | None) -> ToolCall:
        """A tool call with its arguments from a JSON text (or an already decoded object);
        arguments that are not a JSON object leave it empty with ``error`` saying why."""
        if isinstance(arguments, dict):
            return ToolCall(id, name, arguments)
        if not arguments or not arguments.strip():
            return ToolCall(id, name, {})
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError as exc:
            error = f"the arguments are not valid JSON ({exc}): {arguments[:200]}"
        else:
            if isinstance(parsed, dict):
                return ToolCall(id, name, parsed)
            error = f"the arguments are not a JSON object: {arguments[:200]}"
        return ToolCall(id, name, {}, error=error)

    def probe(self) -> tuple[str, dict[str, str]]:
        """The URL and headers of a request that costs nothing (the model listing), to
        check reachability and the key; ``LLMError`` when no key is set."""
        return self.base_url + self.models_path, self._headers()

    def _headers(self) -> dict[str, str]:
        if self._key is None:
            if self.key_env and self.base_url == self.default_base_url:
                raise self.http.error(
                    f"no API key: set api_key in the llm config or {' / '.join(self.key_env)}"
                )
            return {}
        return self._auth_headers(self._key)

    def _shape_error(self, exc: Exception) -> LLMError:
        """A surprise in the upstream's JSON (one of ``SHAPE_ERRORS``) as an ``LLMError``."""
        return self.http.error(f"unexpected response shape: {exc!r}")

    @abstractmethod
    def _auth_headers(self, key: str) -> dict[str, str]:
        """The headers that carry ``key``."""

    @abstractmethod
    def _request(self, request: LLMRequest, *, stream: bool) -> tuple[str, JSON]:
        """The URL and JSON body for ``request``."""

    @abstractmethod
    def _parse(self, data: Any) -> LLMResponse:
        """A blocking answer's JSON as an ``LLMResponse``."""

    @abstractmethod
    def _on_event(self, payload: str, state: StreamState) -> str:
        """Fold one streamed payload into ``state``; returns its new text."""


@dataclass(slots=True)
class PartialCall:
    """A tool call whose JSON arguments arrive in pieces."""

    id: str
    name: str
    arguments: str = ""


@dataclass(slots=True)
class StreamState:
    """What a stream has reported so far."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    done: bool = False
    truncated: bool = False  # stopped at the token limit
    model: str | None = None  # as the answer names it
    id: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    partial: dict[int, PartialCall] = field(default_factory=dict)

    def partial_call(
        self, index: int, id: str | None = None, name: str | None = None
    ) -> PartialCall:
        """The call being streamed at ``index``, started if new; ``id``/``name`` if given."""
        call = self.partial.setdefault(index, PartialCall(id or new_call_id(), name or ""))
        call.id, call.name = id or call.id, name or call.name
        return call

    def usage(self) -> Usage | None:
        """Token counts reported so far; ``None`` when none were."""
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return Usage(
            self.prompt_tokens or 0,
            self.completion_tokens or 0,
            self.cached_tokens,
            self.reasoning_tokens,
        )

    def tool_calls(self, llm: RemoteLLM) -> tuple[ToolCall, ...]:
        """Every call, the streamed ones with their arguments decoded."""
        streamed = (
            llm.tool_call(call.id, call.name, call.arguments)
            for _, call in sorted(self.partial.items())
        )
        return (*self.calls, *streamed)


def response(
    text: str,
    calls: Sequence[ToolCall],
    usage: Usage,
    *,
    truncated: bool,
    model: str | None = None,
    id: str | None = None,
) -> LLMResponse:
    """An assistant answer; ``truncated`` when the upstream stopped at the token limit;
    ``model`` and ``id`` as the answer names them."""
    reason = finish_reason(calls, truncated=truncated)
    message = Message("assistant", text, tool_calls=tuple(calls))
    return LLMResponse(message, usage, reason, model, id)


def finish_reason(calls: Sequence[ToolCall], *, truncated: bool) -> str:
    """The OpenAI-vocabulary finish reason: ``tool_calls``, ``length`` or ``stop``."""
    return "tool_calls" if calls else "length" if truncated else "stop"


def new_call_id() -> str:
    """An id for a tool call the upstream gave none."""
    return f"call_{uuid.uuid4().hex[:24]}"


def split_system(messages: Sequence[Message]) -> tuple[str | None, list[Message]]:
    """The system messages joined into one instruction, and the other messages."""
    system = [m.content for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    return ("\n\n".join(system) if system else None), rest


def tool_names(messages: Iterable[Message]) -> dict[str, str]:
    """Tool call id -> tool name, for results that lack ``name``."""
    return {call.id: call.name for m in messages for call in m.tool_calls}


def tool_name(message: Message, names: dict[str, str]) -> str:
    """The name of the tool whose result ``message`` is."""
    return message.name or names.get(message.tool_call_id or "", "tool")


def merge_turns(turns: Iterable[tuple[str, list[JSON]]]) -> list[tuple[str, list[JSON]]]:
    """Consecutive turns of one role merged (APIs that want strict user/model turns)."""
    merged: list[tuple[str, list[JSON]]] = []
    for role, parts in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(parts)
        else:
            merged.append((role, list(parts)))
    return merged
