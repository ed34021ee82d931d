"""Hostile answers for the fake upstreams (``Reply.fault``), to prove what reading bounds.

Floods answer in any dialect with more than a client should read, written piece by piece
so the fake holds little memory, and stop when the client goes away:

- ``gzip_bomb``: ``Content-Encoding: gzip`` that decompresses to 1 GiB of zeros (64
  gzip members of 16 MiB each, about 1 MB on the wire), whether or not gzip was asked for;
- ``huge``: a valid OpenAI-shaped JSON reply of 200 MB (the text is ``"a"`` repeated);
- ``endless``: a stream of OpenAI chunks that never ends (bounded at 10 million events);
- ``long_line``: a stream whose first line, ``data: aaa...``, never ends (400 MB).

Tampers change an OpenAI-shaped answer (blocking or streamed, event by event):

- ``bad_usage``: usage with a negative and a string count;
- ``invalid_arguments``: tool call arguments that are not valid JSON (the ``}`` dropped).

``Reply.set_cookie`` (any answer) adds a ``Set-Cookie`` header.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

JSON = dict[str, Any]
FLOODS = ("gzip_bomb", "huge", "endless", "long_line")
TAMPERS = ("bad_usage", "invalid_arguments")
MiB = 1024 * 1024
Note = Callable[..., None]


@functools.cache
def _gzip_member(size: int = 16 * MiB) -> bytes:
    """One gzip member of ``size`` zeros (compressed once, then reused)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return compressor.compress(bytes(size)) + compressor.flush()


def _pieces(fault: str) -> tuple[int, Iterator[bytes]]:
    """How many pieces a flood has, and the pieces."""
    if fault == "gzip_bomb":
        return 64, (_gzip_member() for _ in range(64))
    if fault == "huge":
        head = b'{"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, '
        head += b'"model": "fake", "choices": [{"index": 0, "message": {"role": "assistant", '
        head += b'"content": "'
        tail = b'"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, '
        tail += b'"completion_tokens": 1, "total_tokens": 2}}'
        return 202, iter([head, *(b"a" * MiB for _ in range(200)), tail])
    if fault == "endless":
        event = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "fake",
            "choices": [{"index": 0, "delta": {"content": "spam "}, "finish_reason": None}],
        }
        frame = f"data: {json.dumps(event)}\n\n".encode()
        return 10_000_000, (frame for _ in range(10_000_000))
    # long_line
    return 6401, iter([b"data: ", *(b"a" * (64 * 1024) for _ in range(6400))])


async def flood(
    request: web.Request, fault: str, stream: bool, note: Note, headers: dict[str, str]
) -> web.StreamResponse:
    """Answer with the flood ``fault``; ``note`` records how far it got."""
    total, pieces = _pieces(fault)
    streams = stream or fault in ("endless", "long_line")
    kind = "text/event-stream" if streams else "application/json"
    response = web.StreamResponse(headers={"Content-Type": kind, **headers})
    if fault == "gzip_bomb":
        response.headers["Content-Encoding"] = "gzip"
    note(events_total=total)
    sent = 0
    try:
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
            sent += 1
            if sent % 64 == 0 or sent == total:
                note(events_sent=sent)
        await response.write_eof()
    except ConnectionError:
        note(events_sent=sent, completed=False, disconnected=True)
        return response
    note(completed=True)
    return response


def tamper(data: JSON | str, fault: str | None) -> JSON | str:
    """``data`` (an OpenAI answer or stream event) changed as ``fault`` asks."""
    if not isinstance(data, dict) or fault not in TAMPERS:
        return data
    data = json.loads(json.dumps(data))
    if fault == "bad_usage" and isinstance(data.get("usage"), dict):
        data["usage"] = {"prompt_tokens": -5, "completion_tokens": "many", "total_tokens": None}
    if fault == "invalid_arguments":
        for choice in data.get("choices", []):
            message = choice.get("message") or choice.get("delta") or {}
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                function["arguments"] = function.get("arguments", "").replace("}", "")
    return data
