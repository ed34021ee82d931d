"""HTTP for the real providers: headers, timeouts, retries, error messages, stream framing.

Every provider sends its requests through one ``HTTPClient``, so the rules live here once:

- timeouts per attempt from ``llms.<name>.timeout`` (connect, read, total);
- retries on 429, 5xx, connection errors and timeouts that happen before the response
  starts, up to ``max_retries``, waiting ``Retry-After`` when the upstream sends it
  (capped at ``RETRY_AFTER_CAP``) and otherwise exponential backoff with full jitter;
- other failures raise ``LLMError`` at once, with a one-line message that names the
  status and the upstream's own error text and never contains the API key;
- a streamed body is never retried once the response has started;
- what is read is bounded: ``max_response_bytes`` per answer (a reply, or a whole stream,
  counted after decompression), ``MAX_LINE_BYTES`` per stream line, ``ERROR_BODY_BYTES`` of
  an error body. Requests ask for ``identity`` encoding: model answers are small and
  streamed token by token, so compression saves little; an upstream that compresses
  anyway is decompressed by aiohttp in bounded steps (>= 3.13.3) within the same cap.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import aiohttp
import orjson

from hector_py import __version__
from hector_py.config.model import LLMConfig
from hector_py.llm.base import LLMError

RETRY_AFTER_CAP = 60.0
"""Longest wait a ``Retry-After`` header can impose, in seconds."""
BACKOFF_CAP = 30.0
"""Longest computed backoff, in seconds."""
MAX_LINE_BYTES = 1024 * 1024
"""Longest line of a streamed answer (an SSE or NDJSON line)."""
ERROR_BODY_BYTES = 64 * 1024
"""Most bytes of an error body read for its message."""
READ_CHUNK = 64 * 1024
"""Bytes asked of aiohttp at a time when reading a body."""

OnRetry = Callable[[int, str, float], None]
"""Called before each retry with (retry number from 1, reason, delay in seconds).

The reason is bounded, fit for a metric label: the HTTP status (``"429"``, ``"503"``),
``"timeout"`` or ``"connection_error"``."""
InjectHeaders = Callable[[dict[str, str]], None]
"""Adds headers (e.g. W3C ``traceparent``) to each outgoing attempt, in place; given, it
stands for the session's client middlewares (``Telemetry.inject_headers``)."""
OnHeadroom = Callable[[dict[str, int]], None]
"""Told what an answer's rate-limit headers say is left (``requests``, ``tokens``)."""
Framing = Literal["sse", "ndjson"]
stream_started: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar(
    "hector_stream_started", default=None
)
"""Awaited, when set in the caller's context, once a streamed answer has started (the
upstream said 2xx) and before its first payload is read: a server relaying the stream can
commit to its own response then, so that a failure before it stays an HTTP error."""


class HTTPClient:
    """Posts JSON for one provider over the app's shared ``aiohttp.ClientSession``."""

    def __init__(
        self,
        provider: str,
        session: aiohttp.ClientSession,
        config: LLMConfig,
        *,
        secrets: tuple[str, ...] = (),
        on_retry: OnRetry | None = None,
        inject_headers: InjectHeaders | None = None,
        on_headroom: OnHeadroom | None = None,
    ) -> None:
        self.provider = provider
        self._on_headroom = on_headroom
        self._session = session
        self._max_retries = config.max_retries
        self._backoff = config.retry_backoff
        self._timeout = aiohttp.ClientTimeout(
            total=config.timeout.total,
            sock_connect=config.timeout.connect,
            sock_read=config.timeout.read,
        )
        self._max_bytes = config.max_response_bytes
        self._secrets = tuple(s for s in secrets if s)
        self._on_retry = on_retry
        self._inject_headers = inject_headers
        # The hook does what the session's middleware does (trace propagation), without
        # the middleware chain aiohttp builds per request.
        self._middlewares = None if inject_headers is None else ()

    async def post_json(self, url: str, body: Any, headers: Mapping[str, str]) -> Any:
        """POST ``body`` and return the decoded JSON answer."""
        response = await self._send(url, body, headers)
        async with response:
            if (response.content_length or 0) > self._max_bytes:
                raise self._too_large("reply")
            try:
                raw = await _read_body(response, self._max_bytes + 1)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise self.error(
                    f"reading the response failed: {_describe(exc)}", retryable=True
                ) from exc
            if len(raw) > self._max_bytes:
                raise self._too_large("reply")
        return self.parse_json(raw)

    async def post_stream(
        self, url: str, body: Any, headers: Mapping[str, str], framing: Framing
    ) -> AsyncGenerator[str, None]:
        """POST ``body`` and yield each payload of the streamed answer: the ``data`` of
        each server-sent event, or each line of newline-delimited JSON."""
        response = await self._send(url, body, headers)
        parse = _SSEParser() if framing == "sse" else _ndjson_line
        async with response:
            if (started := stream_started.get()) is not None:
                await started()
            try:
                received = 0
                pending = bytearray()  # a line not yet ended, however the bytes were chunked
                async for data in response.content.iter_any():
                    received += len(data)
                    if received > self._max_bytes:
                        raise self._too_large("stream")
                    *lines, rest = data.split(b"\n")  # only new bytes: linear however chunked
                    if lines and pending:
                        lines[0] = bytes(pending) + lines[0]
                        pending.clear()
                    for line in lines:
                        if (payload := parse(line)) is not None:
                            yield payload
                    pending += rest
                    if len(pending) > MAX_LINE_BYTES:
                        raise self.error(f"a stream line is over {MAX_LINE_BYTES} bytes")
                if pending and (payload := parse(bytes(pending))) is not None:
                    yield payload
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise self.error(f"stream interrupted: {_describe(exc)}", retryable=True) from exc

    def parse_json(self, raw: bytes | bytearray | str) -> Any:
        """``raw`` decoded; ``LLMError`` when it is not JSON."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise self.error(f"invalid JSON from the upstream: {exc}") from None

    def error(
        self, message: str, *, retryable: bool = False, status: int | None = None
    ) -> LLMError:
        """An ``LLMError`` naming the provider, on one line, with every secret masked."""
        text = " ".join(f"{self.provider}: {message}".split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return LLMError(text, retryable=retryable, status=status)

    def _too_large(self, what: str) -> LLMError:
        return self.error(
            f"the {what} is over max_response_bytes ({self._max_bytes} bytes); "
            "raise it in the llm config if such answers are expected"
        )

    async def _send(
        self, url: str, body: Any, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        """The first successful response, retrying what may succeed on another try."""
        data = orjson.dumps(body)
        attempts = self._max_retries + 1
        attempt = 0
        while True:
            attempt += 1
            request_headers = {
                "Content-Type": "application/json",
                "Accept-Encoding": "identity",
                "User-Agent": f"hector-py/{__version__}",
                **headers,
            }
            if self._inject_headers is not None:
                self._inject_headers(request_headers)
            retry_after: float | None = None
            try:
                response = await self._session.post(
                    url,
                    data=data,
                    headers=request_headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    middlewares=self._middlewares,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = "timeout" if isinstance(exc, TimeoutError) else "connection_error"
                error = self.error(_describe(exc), retryable=True)
                error.cause = reason
            else:
                if self._on_headroom is not None and (left := headroom(response.headers)):
                    self._on_headroom(left)
                if response.status < 300:
                    return response
                async with response:
                    error = await self._status_error(response)
                if not error.retryable:
                    raise error
                reason = str(response.status)
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt == attempts:
                if attempts > 1:
                    error = LLMError(
                        f"{error} (gave up after {attempts} attempts)",
                        retryable=True,
                        status=error.status,
                        cause=error.cause,
                    )
                raise error
            delay = retry_after if retry_after is not None else self._jittered(attempt)
            if self._on_retry is not None:
                self._on_retry(attempt, reason, delay)
            await asyncio.sleep(delay)

    async def _status_error(self, response: aiohttp.ClientResponse) -> LLMError:
        try:
            raw = await _read_body(response, ERROR_BODY_BYTES)
        except (aiohttp.ClientError, TimeoutError):
            raw = bytearray()
        status = response.status
        return self.error(
            f"HTTP {status} {response.reason or ''}: {_error_detail(raw)}",
            retryable=status == 429 or status >= 500,
            status=status,
        )

    def _jittered(self, attempt: int) -> float:
        return random.uniform(0, min(BACKOFF_CAP, self._backoff * 2 ** (attempt - 1)))


_HEADROOM = {  # header -> kind: what the upstream says is left of its own rate limits
    "x-ratelimit-remaining-requests": "requests",
    "x-ratelimit-remaining-tokens": "tokens",
    "anthropic-ratelimit-requests-remaining": "requests",
    "anthropic-ratelimit-tokens-remaining": "tokens",
}


def headroom(headers: Mapping[str, str]) -> dict[str, int]:
    """What an answer's rate-limit headers (OpenAI's and Anthropic's) say is left."""
    left = {}
    for header, kind in _HEADROOM.items():
        value = headers.get(header)
        if value is not None and value.isdigit():
            left[kind] = int(value)
    return left


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or HTTP-date),
    capped at ``RETRY_AFTER_CAP``; ``None`` when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


async def _read_body(response: aiohttp.ClientResponse, limit: int) -> bytearray:
    """At most ``limit`` bytes of the body (decompressed), read in bounded chunks."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(READ_CHUNK):
        body += chunk[: limit - len(body)]
        if len(body) >= limit:
            break
    return body


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out ({exc})" if str(exc) else "timed out"
    return str(exc) or type(exc).__name__


def upstream_message(data: Any) -> str | None:
    """The message of an upstream error object, in any provider's shape; ``None`` if
    ``data`` is not one (``{"error": "..."}``, ``{"error": {"message": ...}}``, or a list
    holding one, as Gemini sometimes sends)."""
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message") or orjson.dumps(error).decode()
    return str(error) if error else None


def _error_detail(raw: bytes | bytearray) -> str:
    """An error body's message, on one line, shortened."""
    try:
        message = upstream_message(orjson.loads(raw))
    except orjson.JSONDecodeError:
        message = None
    text = message or raw.decode("utf-8", "replace")
    return " ".join(text.split())[:500] or "(empty body)"


class _SSEParser:
    """Server-sent events, a line at a time: the ``data`` of each event when its blank
    line comes. Event names are not needed (every provider's payload names its own type);
    an event cut before its blank line is dropped, as the SSE spec says."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: list[bytes] = []

    def __call__(self, line: bytes) -> str | None:
        line = line.rstrip(b"\r")
        if line.startswith(b"data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
        elif not line and self._data:
            payload = b"\n".join(self._data).decode("utf-8", "replace")
            self._data.clear()
            return payload
        return None


def _ndjson_line(line: bytes) -> str | None:
    """A line of newline-delimited JSON; ``None`` when blank."""
    return line.decode("utf-8", "replace").rstrip("\r") if line.strip() else None
