"""A webhook receiver on 127.0.0.1 for notification tests (aiohttp in a background thread).

``fail_first=N`` answers the first N requests with 503; ``hold`` makes every answer wait
until :meth:`release` is called. ``wait_for(count)`` waits, with a deadline, until that
many requests arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Received:
    """One request: lower-case headers, the raw body and its JSON."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class WebhookReceiver:
    """Records every POST to any path and answers 200 (or 503 for the first ``fail_first``)."""

    def __init__(self, *, fail_first: int = 0, hold: bool = False) -> None:
        self.fail_first = fail_first
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        item = Received({k.lower(): v for k, v in request.headers.items()}, await request.read())
        with self._cond:
            self.received.append(item)
            failing = len(self.received) <= self.fail_first
            self._cond.notify_all()
        await asyncio.get_running_loop().run_in_executor(None, self._released.wait)
        return web.Response(status=503 if failing else 200)

    def release(self) -> None:
        """Let held answers go."""
        self._released.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The requests once at least ``count`` arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"got {len(self.received)} of {count} webhook requests")
                self._cond.wait(left)
            return list(self.received)

    def __enter__(self) -> Self:
        started = threading.Event()

        async def up() -> None:
            app = web.Application()
            app.router.add_post("/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(up())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not started.wait(START_TIMEOUT_S):
            raise AssertionError("webhook receiver did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

        async def down() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
