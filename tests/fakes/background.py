"""Serve an aiohttp app to sync tests: its own event loop in a daemon thread, on 127.0.0.1.

    class Echo(BackgroundServer):
        def __init__(self) -> None:
            super().__init__(self._app)

        async def _app(self) -> web.Application:  # built in the server's loop
            ...

    with Echo() as echo:
        httpx.get(echo.url + "/path")

Every wait is bounded: start-up by ``START_TIMEOUT_S``; the runner's cleanup and the
thread's join by ``STOP_TIMEOUT_S`` each.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0

T = TypeVar("T")


class StartStop:
    """A context manager that calls ``start()`` on entry and ``stop()`` on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class BackgroundServer(StartStop):
    """The app ``make_app()`` builds, served on an ephemeral port at ``url`` while started."""

    def __init__(self, make_app: Callable[[], Awaitable[web.Application]]) -> None:
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._make_app = make_app
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = STOP_TIMEOUT_S) -> T:
        """Run ``coro`` in the server's loop and wait (at most ``timeout``) for its result."""
        assert self.loop is not None, "not started"
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _up(self) -> int:
        app = await self._make_app()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        port: int = self._runner.addresses[0][1]
        return port

    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        try:
            self.port = self.call(self._up(), START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        loop, runner, thread = self.loop, self._runner, self._thread
        if loop is None or thread is None:
            return
        try:
            if runner is not None:
                self.call(runner.cleanup())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(STOP_TIMEOUT_S)
            if not thread.is_alive():
                loop.close()
            self.loop = self._runner = self._thread = None
