"""A small HTTP server for declared HTTP tools (``type: http``), for sync pytest tests.

It runs aiohttp on its own event loop in a daemon thread on an ephemeral 127.0.0.1 port::

    with ToolServer() as tools:
        url = tools.url + "/slow"   # hangs until the server stops (a tool that hangs)

Routes:

    GET|POST /ok      200 "ok"
    GET|POST /slow    never answers until the server stops (then 503)
    GET|POST /fail    500 whose body echoes the request's Authorization and X-Api-Key
                      headers, as a careless upstream does ("invalid key: ...")
    GET|POST /cookie  200 "ok" with ``Set-Cookie: site_session=...`` (a site's session)

``.requests`` lists (method, path, headers) of every request received.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from tests.fakes.background import BackgroundServer


class ToolServer(BackgroundServer):
    """A threaded aiohttp server answering the routes above."""

    def __init__(self) -> None:
        super().__init__(self._app)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._stop: asyncio.Event | None = None

    async def _app(self) -> web.Application:
        self._stop = asyncio.Event()
        app = web.Application()
        for path, handler in (
            ("/ok", self._ok),
            ("/slow", self._slow),
            ("/fail", self._fail),
            ("/cookie", self._cookie),
        ):
            app.router.add_route("GET", path, handler)
            app.router.add_route("POST", path, handler)
        return app

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

    async def _cookie(self, request: web.Request) -> web.Response:
        self._note(request)
        response = web.Response(text="ok")
        response.set_cookie("site_session", "set-for-the-first-caller", path="/")
        return response

    def _note(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path, dict(request.headers)))

    def stop(self) -> None:
        """Answer the held ``/slow`` requests, then stop."""
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        super().stop()
