"""Fake OpenAI-, Anthropic-, Gemini- and Ollama-compatible upstreams, in-process or standalone.

One aiohttp server on 127.0.0.1 (ephemeral port) answers all four dialects, whose routes
differ; ``provider`` only chooses which ``base_url`` it advertises:

    POST /v1/chat/completions                    OpenAI (streams when "stream": true)
    POST /v1/messages                            Anthropic (streams when "stream": true)
    POST /v1beta/models/{model}:generateContent  Gemini (":streamGenerateContent?alt=sse" streams)
    POST /api/chat                               Ollama (NDJSON stream unless "stream": false)
    GET  /_fake/requests                         every request received, as JSON
    POST /_fake/script                           replace the script: a JSON list of Reply fields

Each request takes the next ``Reply`` of the script; once the script is used up,
``default`` answers. A ``Reply`` with ``text=None`` echoes the last user message
(``"echo: <text>"``), or quotes a tool result when the last message is one
(``"The tool returned: <result>"``), so an agent loop can run end to end. Every request
is recorded (headers and JSON body) in ``requests``, with how its answer went:
``completed`` is ``None`` while the fake is still answering, ``True`` once the whole
answer was sent and ``False`` when it was not (the client went away, or a ``fault``
dropped the connection); ``disconnected`` is ``True`` when the client closed the
connection before the answer was complete; streams also count ``events_sent`` out of
``events_total``. ``GET /_fake/requests`` shows the same fields, so a test can prove that
a client stopped reading an upstream stream.

In-process, from async code::

    script = [Reply.failure(429, retry_after="1"), Reply(text="hi", usage=(3, 2))]
    async with FakeLLMServer("openai", script) as fake:
        ...  # point the provider at fake.base_url; then look at fake.requests

Standalone (for end-to-end tests), printing the provider's base URL as its first stdout
line and serving until SIGINT/SIGTERM::

    python -m tests.fakes.llm_servers --provider openai --port 0 \\
        [--tool-call NAME:JSONARGS]... [--reply TEXT]... [--usage P,C] [--delay S] \\
        [--chunk-size N] [--chunk-delay S] [--fail-first N [--status 429] [--retry-after S]
        [--error-message TEXT] [--fault FAULT]]

The script is: the ``--fail-first`` failures, then one tool-call reply per ``--tool-call``,
then one text reply per ``--reply``, then the echo default. ``--usage``, ``--delay``,
``--chunk-size`` and ``--chunk-delay`` apply to every reply. ``FAULT`` is one of
``Fault`` (``reset``, ``cut``, ``invalid_json``, or a hostile one from
``tests/fakes/hostile.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import signal
import sys
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

from aiohttp import web

from tests.fakes import hostile

JSON = dict[str, Any]
Fault = Literal[
    "reset",
    "cut",
    "invalid_json",
    "gzip_bomb",
    "huge",
    "endless",
    "long_line",
    "bad_usage",
    "invalid_arguments",
]
PROVIDERS = ("openai", "anthropic", "gemini", "ollama")
MODEL_LISTS = ("/v1/models", "/v1beta/models", "/api/tags")  # GET: the models listed


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    ``text`` (``None``: echo), ``tool_calls`` as (name, arguments) pairs, ``usage`` as
    (prompt, completion) tokens. ``status`` >= 400 answers with the dialect's error body
    carrying ``error``, plus ``Retry-After: retry_after`` when set. ``delay`` is seconds
    before the first byte; streams send ``chunk_size`` characters of text (or of tool
    arguments) per event, ``chunk_delay`` seconds apart. ``fault``: ``reset`` closes the
    connection without answering, ``cut`` drops it halfway through the body, and
    ``invalid_json`` sends a body (or, in a stream, an event) that is not JSON; the hostile
    faults (floods and tampers) are described in ``tests/fakes/hostile.py``.
    ``set_cookie`` adds a ``Set-Cookie`` header to the answer, ``headers`` any others
    (a 2xx answer's: rate-limit headroom, say). ``model`` is the model the
    answer names (default: the one asked for); ``truncated`` ends the answer at the token
    limit (OpenAI ``length``, Anthropic ``max_tokens``).
    """

    text: str | None = None
    tool_calls: tuple[tuple[str, JSON], ...] = ()
    usage: tuple[int, int] = (11, 7)
    status: int = 200
    error: str = "scripted failure"
    retry_after: str | None = None
    delay: float = 0.0
    chunk_size: int = 4
    chunk_delay: float = 0.0
    fault: Fault | None = None
    set_cookie: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    truncated: bool = False
    details: tuple[int, int] = (0, 0)  # cached prompt and reasoning tokens (of the usage)

    @classmethod
    def tool_call(cls, name: str, arguments: JSON, **fields: Any) -> Reply:
        """A reply that asks for one tool call."""
        return cls(tool_calls=((name, arguments),), **fields)

    @classmethod
    def failure(
        cls, status: int, error: str = "scripted failure", retry_after: str | None = None
    ) -> Reply:
        """An HTTP error reply."""
        return cls(status=status, error=error, retry_after=retry_after)

    @classmethod
    def from_json(cls, data: JSON) -> Reply:
        """A reply from JSON fields (lists where the dataclass has tuples)."""
        data = dict(data)
        data["tool_calls"] = tuple((name, args) for name, args in data.get("tool_calls", ()))
        if "usage" in data:
            data["usage"] = tuple(data["usage"])
        return cls(**data)


@dataclass(frozen=True)
class Recorded:
    """One request the fake received, and how its answer went (see the module docstring)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    completed: bool | None = None
    disconnected: bool = False
    events_sent: int = 0
    events_total: int = 0


@dataclass
class Answer:
    """What to send for one request, in dialect-neutral form."""

    model: str
    text: str
    calls: list[tuple[str, str, JSON]]  # (id, name, arguments)
    usage: tuple[int, int]
    chunk_size: int
    truncated: bool = False
    details: tuple[int, int] = (0, 0)

    def pieces(self, text: str) -> list[str]:
        """``text`` in ``chunk_size`` pieces."""
        size = max(1, self.chunk_size)
        return [text[i : i + size] for i in range(0, len(text), size)]


class Dialect(ABC):
    """One upstream API's shapes."""

    stream_content_type = "text/event-stream"

    @abstractmethod
    def wants_stream(self, request: web.Request, body: JSON) -> bool:
        """Whether the client asked for a stream."""

    @abstractmethod
    def last_turn(self, body: JSON) -> tuple[bool, str]:
        """(is a tool result, its text) of the last message."""

    @abstractmethod
    def answer(self, answer: Answer) -> JSON:
        """The blocking answer."""

    @abstractmethod
    def events(self, answer: Answer) -> list[JSON | str]:
        """The streamed answer, event by event (a str is sent as is)."""

    @abstractmethod
    def error(self, status: int, message: str) -> JSON:
        """The error body."""

    def model(self, request: web.Request, body: JSON) -> str:
        """The model the client asked for."""
        return str(body.get("model", "fake"))

    def frame(self, event: JSON | str) -> bytes:
        """One event on the wire."""
        data = event if isinstance(event, str) else json.dumps(event)
        return f"data: {data}\n\n".encode()


class OpenAIDialect(Dialect):
    """Chat Completions."""

    def wants_stream(self, request: web.Request, body: JSON) -> bool:
        return body.get("stream") is True

    def last_turn(self, body: JSON) -> tuple[bool, str]:
        last = body["messages"][-1]
        return last["role"] == "tool", _text(last.get("content"))

    def answer(self, answer: Answer) -> JSON:
        message: JSON = {"role": "assistant", "content": answer.text or None}
        if answer.calls:
            message["tool_calls"] = [
                {
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for id, name, args in answer.calls
            ]
        return {
            **self._envelope(answer, "chat.completion"),
            "choices": [{"index": 0, "message": message, "finish_reason": _finish(answer)}],
            "usage": _openai_usage(answer),
        }

    def events(self, answer: Answer) -> list[JSON | str]:
        def chunk(delta: JSON, finish: str | None = None) -> JSON:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {**self._envelope(answer, "chat.completion.chunk"), "choices": [choice]}

        events: list[JSON | str] = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in answer.pieces(answer.text)]
        for index, (id, name, args) in enumerate(answer.calls):
            start = {"index": index, "id": id, "type": "function"}
            function = {"name": name, "arguments": ""}
            events.append(chunk({"tool_calls": [{**start, "function": function}]}))
            events += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in answer.pieces(json.dumps(args))
            ]
        events.append(chunk({}, _finish(answer)))
        usage_chunk = self._envelope(answer, "chat.completion.chunk")
        events += [{**usage_chunk, "choices": [], "usage": _openai_usage(answer)}, "[DONE]"]
        return events

    def error(self, status: int, message: str) -> JSON:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    def _envelope(self, answer: Answer, kind: str) -> JSON:
        return {"id": "chatcmpl-fake", "object": kind, "created": 0, "model": answer.model}


class AnthropicDialect(Dialect):
    """Messages API."""

    def wants_stream(self, request: web.Request, body: JSON) -> bool:
        return body.get("stream") is True

    def last_turn(self, body: JSON) -> tuple[bool, str]:
        content = body["messages"][-1]["content"]
        if isinstance(content, list):
            results = [b for b in content if b.get("type") == "tool_result"]
            if results:
                return True, _text(results[-1].get("content"))
        return False, _text(content)

    def answer(self, answer: Answer) -> JSON:
        return {
            **self._message(answer),
            "content": self._blocks(answer),
            "stop_reason": _anthropic_stop(answer),
            "usage": _anthropic_usage(answer, answer.usage[1]),
        }

    def events(self, answer: Answer) -> list[JSON | str]:
        start = {**self._message(answer), "content": [], "stop_reason": None}
        start["usage"] = _anthropic_usage(answer, 1)
        events: list[JSON | str] = [{"type": "message_start", "message": start}, {"type": "ping"}]
        for index, block in enumerate(self._blocks(answer)):
            if block["type"] == "text":
                opening, kind, key, whole = (
                    {**block, "text": ""},
                    "text_delta",
                    "text",
                    block["text"],
                )
            else:
                opening, kind, key = {**block, "input": {}}, "input_json_delta", "partial_json"
                whole = json.dumps(block["input"])
            events.append({"type": "content_block_start", "index": index, "content_block": opening})
            events += [
                {"type": "content_block_delta", "index": index, "delta": {"type": kind, key: piece}}
                for piece in answer.pieces(whole)
            ]
            events.append({"type": "content_block_stop", "index": index})
        stop = _anthropic_stop(answer)
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": answer.usage[1]},
            }
        )
        events.append({"type": "message_stop"})
        return events

    def error(self, status: int, message: str) -> JSON:
        kind = "invalid_request_error" if status < 500 else "api_error"
        return {"type": "error", "error": {"type": kind, "message": message}}

    def frame(self, event: JSON | str) -> bytes:
        name = event["type"] if isinstance(event, dict) else "error"
        return f"event: {name}\n".encode() + super().frame(event)

    def _message(self, answer: Answer) -> JSON:
        return {"id": "msg_fake", "type": "message", "role": "assistant", "model": answer.model}

    def _blocks(self, answer: Answer) -> list[JSON]:
        blocks: list[JSON] = [{"type": "text", "text": answer.text}] if answer.text else []
        return blocks + [
            {"type": "tool_use", "id": id, "name": name, "input": args}
            for id, name, args in answer.calls
        ]


class GeminiDialect(Dialect):
    """generateContent; function calls carry no id, as Gemini's mostly do not."""

    def wants_stream(self, request: web.Request, body: JSON) -> bool:
        return request.match_info["target"].endswith(":streamGenerateContent")

    def model(self, request: web.Request, body: JSON) -> str:
        return request.match_info["target"].partition(":")[0]

    def last_turn(self, body: JSON) -> tuple[bool, str]:
        parts = body["contents"][-1]["parts"]
        results = [p["functionResponse"] for p in parts if "functionResponse" in p]
        if results:
            response = results[-1].get("response") or {}
            return True, _text(response.get("content", json.dumps(response)))
        return False, "".join(p.get("text", "") for p in parts)

    def answer(self, answer: Answer) -> JSON:
        parts = [{"text": answer.text}] if answer.text else []
        return self._response(answer, parts + self._calls(answer), final=True)

    def events(self, answer: Answer) -> list[JSON | str]:
        events: list[JSON | str] = [
            self._response(answer, [{"text": piece}], final=False)
            for piece in answer.pieces(answer.text)
        ]
        if answer.calls:
            events.append(self._response(answer, self._calls(answer), final=False))
        events.append(self._response(answer, [{"text": ""}], final=True))
        return events

    def error(self, status: int, message: str) -> JSON:
        kind = "INVALID_ARGUMENT" if status < 500 else "INTERNAL"
        return {"error": {"code": status, "message": message, "status": kind}}

    def _calls(self, answer: Answer) -> list[JSON]:
        return [{"functionCall": {"name": name, "args": args}} for _, name, args in answer.calls]

    def _response(self, answer: Answer, parts: list[JSON], *, final: bool) -> JSON:
        candidate: JSON = {"content": {"role": "model", "parts": parts}, "index": 0}
        prompt, completion = answer.usage
        usage: JSON = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        if final:
            candidate["finishReason"] = "STOP"
            cached, thoughts = answer.details
            usage = {**usage, "candidatesTokenCount": completion - thoughts}
            usage["totalTokenCount"] = prompt + completion
            if cached:
                usage["cachedContentTokenCount"] = cached
            if thoughts:
                usage["thoughtsTokenCount"] = thoughts
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": answer.model}


class OllamaDialect(Dialect):
    """Native /api/chat; tool calls carry no id."""

    stream_content_type = "application/x-ndjson"

    def wants_stream(self, request: web.Request, body: JSON) -> bool:
        return body.get("stream", True) is not False

    def last_turn(self, body: JSON) -> tuple[bool, str]:
        last = body["messages"][-1]
        return last["role"] == "tool", _text(last.get("content"))

    def answer(self, answer: Answer) -> JSON:
        message: JSON = {"role": "assistant", "content": answer.text}
        if answer.calls:
            message["tool_calls"] = self._calls(answer)
        return {**self._line(answer, message), **self._done(answer)}

    def events(self, answer: Answer) -> list[JSON | str]:
        events: list[JSON | str] = [
            self._line(answer, {"role": "assistant", "content": piece})
            for piece in answer.pieces(answer.text)
        ]
        if answer.calls:
            message = {"role": "assistant", "content": "", "tool_calls": self._calls(answer)}
            events.append(self._line(answer, message))
        final = self._line(answer, {"role": "assistant", "content": ""})
        events.append({**final, **self._done(answer)})
        return events

    def error(self, status: int, message: str) -> JSON:
        return {"error": message}

    def frame(self, event: JSON | str) -> bytes:
        return (event if isinstance(event, str) else json.dumps(event)).encode() + b"\n"

    def _calls(self, answer: Answer) -> list[JSON]:
        return [{"function": {"name": name, "arguments": args}} for _, name, args in answer.calls]

    def _line(self, answer: Answer, message: JSON) -> JSON:
        created = "2025-01-01T00:00:00Z"
        return {"model": answer.model, "created_at": created, "message": message, "done": False}

    def _done(self, answer: Answer) -> JSON:
        prompt, completion = answer.usage
        return {
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": prompt,
            "eval_count": completion,
        }


DIALECTS: dict[str, Dialect] = {
    "openai": OpenAIDialect(),
    "anthropic": AnthropicDialect(),
    "gemini": GeminiDialect(),
    "ollama": OllamaDialect(),
}


@dataclass
class FakeLLMServer:
    """The fake upstream; use as ``async with FakeLLMServer(provider, script) as fake``."""

    provider: str = "openai"
    script: Iterable[Reply] = ()
    default: Reply = field(default_factory=Reply)
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._script: deque[Reply] = deque(self.script)
        self._runner: web.AppRunner | None = None
        self._calls = 0

    @property
    def base_url(self) -> str:
        """What to set as ``base_url`` for ``provider`` (OpenAI's includes ``/v1``)."""
        return f"{self.url}/v1" if self.provider == "openai" else self.url

    def set_script(self, replies: Iterable[Reply]) -> None:
        """Replace the replies still to come."""
        self._script = deque(replies)

    async def _models(self, request: web.Request) -> web.Response:
        """Each API's free model listing (what ``hector doctor`` asks)."""
        return web.json_response({"data": [{"id": "fake"}], "models": [{"name": "fake"}]})

    async def start(self) -> str:
        """Listen on ``host:port`` (0: a free port); returns ``base_url``."""
        app = web.Application()
        app.add_routes(
            [
                web.post("/v1/chat/completions", self._dialect("openai")),
                web.post("/v1/messages", self._dialect("anthropic")),
                web.post("/v1beta/models/{target}", self._dialect("gemini")),
                web.post("/api/chat", self._dialect("ollama")),
                *(web.get(path, self._models) for path in MODEL_LISTS),
                web.get("/_fake/requests", self._get_requests),
                web.post("/_fake/script", self._post_script),
            ]
        )
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.2
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _dialect(self, name: str) -> Any:
        dialect = DIALECTS[name]

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(dialect, request)

        return handle

    async def _handle(self, dialect: Dialect, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        index = len(self.requests)
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        reply = self._script.popleft() if self._script else self.default
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.fault == "reset":
            self._note(index, completed=False)
            return _drop(request, web.Response())
        if reply.status >= 400:
            headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
            error = dialect.error(reply.status, reply.error)
            self._note(index, completed=True)
            return web.json_response(error, status=reply.status, headers=headers)
        cookie = {**reply.headers, **({"Set-Cookie": reply.set_cookie} if reply.set_cookie else {})}
        if reply.fault in hostile.FLOODS:
            stream = dialect.wants_stream(request, body)
            note = functools.partial(self._note, index)
            return await hostile.flood(request, reply.fault, stream, note, cookie)
        answer = self._answer(dialect, request, body, reply)
        if dialect.wants_stream(request, body):
            return await self._stream(dialect, request, answer, reply, index, cookie)
        data = json.dumps(hostile.tamper(dialect.answer(answer), reply.fault)).encode()
        if reply.fault == "invalid_json":
            data = b'{"choices": [ this is not JSON'
        if reply.fault == "cut":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            self._note(index, completed=False)
            return _drop(request, response)
        self._note(index, completed=True)
        return web.Response(body=data, content_type="application/json", headers=cookie)

    def _note(self, index: int, **outcome: Any) -> None:
        """Record how the answer to request ``index`` went."""
        self.requests[index] = replace(self.requests[index], **outcome)

    def _answer(self, dialect: Dialect, request: web.Request, body: JSON, reply: Reply) -> Answer:
        text = reply.text
        if text is None and reply.tool_calls:
            text = ""
        elif text is None:
            is_tool, last = dialect.last_turn(body)
            text = f"The tool returned: {last}" if is_tool else f"echo: {last}"
        calls = []
        for name, args in reply.tool_calls:
            self._calls += 1
            calls.append((f"call_fake_{self._calls}", name, args))
        model = reply.model or dialect.model(request, body)
        return Answer(
            model, text, calls, reply.usage, reply.chunk_size, reply.truncated, tuple(reply.details)
        )

    async def _stream(
        self,
        dialect: Dialect,
        request: web.Request,
        answer: Answer,
        reply: Reply,
        index: int,
        headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        events = dialect.events(answer)
        frames = [dialect.frame(hostile.tamper(event, reply.fault)) for event in events]
        if reply.fault == "invalid_json":
            frames.insert(1, dialect.frame("{this is not JSON"))
        total = len(frames)
        if reply.fault == "cut":
            frames = frames[: max(1, len(frames) // 2)]
        self._note(index, events_total=total)
        response = web.StreamResponse(
            headers={"Content-Type": dialect.stream_content_type, **(headers or {})}
        )
        sent = 0
        try:
            await response.prepare(request)
            for position, frame in enumerate(frames):
                if position and reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                await response.write(frame)
                sent += 1
                self._note(index, events_sent=sent)
            if reply.fault == "cut":
                self._note(index, completed=False)
                return _drop(request, response)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            # the client went away mid-stream: writing to its closed connection failed
            # (or, with handler cancellation on, aiohttp cancelled this handler)
            self._note(index, completed=False, disconnected=True)
            raise
        self._note(index, completed=True)
        return response

    async def _get_requests(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in self.requests])

    async def _post_script(self, request: web.Request) -> web.Response:
        self.set_script(Reply.from_json(item) for item in await request.json())
        return web.json_response({"replies": len(self._script)})


def _drop(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Close the connection abruptly (the client sees a reset or a cut body)."""
    if request.transport is not None:
        request.transport.abort()
    return response


def _text(content: Any) -> str:
    """Text of a message content: a string, or a list of text parts/blocks."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _finish(answer: Answer) -> str:
    return "tool_calls" if answer.calls else "length" if answer.truncated else "stop"


def _anthropic_usage(answer: Answer, output: int) -> JSON:
    """Anthropic counts prompt tokens read from its cache apart from ``input_tokens``."""
    cached = answer.details[0]
    usage: JSON = {"input_tokens": answer.usage[0] - cached, "output_tokens": output}
    if cached:
        usage["cache_read_input_tokens"] = cached
    return usage


def _anthropic_stop(answer: Answer) -> str:
    return "tool_use" if answer.calls else "max_tokens" if answer.truncated else "end_turn"


def _openai_usage(answer: Answer) -> JSON:
    prompt, completion = answer.usage
    usage: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    cached, reasoning = answer.details
    if cached or reasoning:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def script_from_args(args: argparse.Namespace) -> tuple[list[Reply], Reply]:
    """The script and default reply the command-line flags describe."""
    prompt, completion = (int(n) for n in args.usage.split(","))
    common = Reply(
        usage=(prompt, completion),
        delay=args.delay,
        chunk_size=args.chunk_size,
        chunk_delay=args.chunk_delay,
    )
    failure = replace(
        common,
        status=args.status,
        error=args.error_message,
        retry_after=args.retry_after,
        fault=args.fault,
    )
    script = [failure] * args.fail_first
    for spec in args.tool_call:
        name, _, arguments = spec.partition(":")
        script.append(replace(common, tool_calls=((name, json.loads(arguments or "{}")),)))
    script += [replace(common, text=text) for text in args.reply]
    return script, common


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The standalone command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.llm_servers")
    parser.add_argument("--provider", choices=PROVIDERS, default="openai")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tool-call", action="append", default=[], metavar="NAME:JSONARGS")
    parser.add_argument("--reply", action="append", default=[], metavar="TEXT")
    parser.add_argument("--usage", default="11,7", metavar="P,C")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before first byte")
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--fail-first", type=int, default=0, metavar="N")
    parser.add_argument("--status", type=int, default=500)
    parser.add_argument("--retry-after", default=None, metavar="SECONDS")
    parser.add_argument("--error-message", default="scripted failure")
    parser.add_argument("--fault", choices=get_args(Fault), default=None)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Run until SIGINT or SIGTERM, after printing the base URL."""
    script, default = script_from_args(args)
    fake = FakeLLMServer(args.provider, script, default, host=args.host, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(await fake.start(), flush=True)
    try:
        await stop.wait()
    finally:
        await fake.stop()


if __name__ == "__main__":
    asyncio.run(serve(parse_args(sys.argv[1:])))
