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
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.background import BackgroundServer


@dataclass(frozen=True)
class Received:
    """One request: lower-case headers, the raw body and its JSON."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class WebhookReceiver(BackgroundServer):
    """Records every POST to any path and answers 200 (or 503 for the first ``fail_first``)."""

    def __init__(self, *, fail_first: int = 0, hold: bool = False) -> None:
        super().__init__(self._app)
        self.fail_first = fail_first
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._released = threading.Event()
        if not hold:
            self._released.set()

    @property
    def url(self) -> str:
        return f"{super().url}/hook"

    async def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        return app

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

    def stop(self) -> None:
        """Let held answers go, then stop."""
        self.release()
        super().stop()
