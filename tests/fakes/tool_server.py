"""A small HTTP server for declared HTTP tools (``type: http``), for sync pytest tests.

It runs aiohttp on its own event loop in a daemon thread on an ephemeral 127.0.0.1 port::

    with ToolServer() as tools:
        url = tools.url + "/slow"   # hangs until the server stops (a tool that hangs)

Routes:

    GET|POST /ok      200 "ok"
    GET|POST /slow    never answers until the server stops (then 503)
    GET|POST /fail    500 whose body echoes the request's Authorization and X-Api-Key
                      headers, as a careless upstream does ("invalid key: ...")

``.requests`` lists (method, path, headers) of every request received.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Self

from aiohttp import web

HOST = "127.0.0.1"
TIMEOUT_S = 10.0


class ToolServer:
    """A threaded aiohttp server answering the routes above."""

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def _ok(self, request: web.Request) -> web.Response:
        self._note(request)
        return web.Response(text="ok")

    async def _slow(self, request: web.Request) -> web.Response:
        self._note(request)
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), 60)
        return web.Response(status=503, text="stopped")

    async def _fail(self, request: web.Request) -> web.Response:
        self._note(request)
        echoed = " ".join(
            f"{name}={request.headers.get(name, '')}" for name in ("Authorization", "X-Api-Key")
        )
        return web.Response(status=500, text=f"upstream refused the credentials: {echoed}")

    def _note(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path, dict(request.headers)))

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        for path, handler in (("/ok", self._ok), ("/slow", self._slow), ("/fail", self._fail)):
            app.router.add_route("GET", path, handler)
            app.router.add_route("POST", path, handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)

        async def up() -> int:
            self._stop = asyncio.Event()
            await runner.setup()
            await web.TCPSite(runner, HOST, 0).start()
            port: int = runner.addresses[0][1]
            return port

        self._thread = threading.Thread(target=loop.run_forever, name="tool-server", daemon=True)
        self._thread.start()
        self._loop, self._runner = loop, runner
        self.port = asyncio.run_coroutine_threadsafe(up(), loop).result(TIMEOUT_S)

    def stop(self) -> None:
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is None or runner is None or thread is None:
            return
        if self._stop is not None:
            loop.call_soon_threadsafe(self._stop.set)
        try:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(TIMEOUT_S)
            if not thread.is_alive():
                loop.close()
            self._loop = self._runner = self._thread = None

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
