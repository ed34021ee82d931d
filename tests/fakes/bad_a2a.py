"""A2A agents that misbehave, for the remote-agent tools' bad-input tests::

    python -m tests.fakes.bad_a2a PORT

``/garbage`` answers every request with HTML; ``/hang`` never answers. Both serve a
valid card (so the caller is ready) under ``/.well-known/agent-card.json``."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def card(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return web.json_response({"name": name, "description": f"{name} agent", "skills": []})


async def garbage(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="<html>surprise</html>", content_type="text/html")


async def hang(request: web.Request) -> web.Response:
    await request.read()
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


def main() -> None:
    app = web.Application()
    app.router.add_get("/{name}/.well-known/agent-card.json", card)
    app.router.add_post("/garbage", garbage)
    app.router.add_post("/hang", hang)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
