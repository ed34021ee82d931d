"""The hostile side of ``scripts/soak.py --hostile``: slow clients, forged JWTs, and a JWKS.

Everything stays on 127.0.0.1 (the slow clients come from 127.0.0.2, a distinct client
address on the loopback) and stops at a deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

SLOW_PEER = "127.0.0.2"
DRIBBLE_S = 5.0


@dataclass
class Hostile:
    """What the hostile clients did."""

    slow_opened: int = 0
    slow_cut: int = 0
    forged: int = 0
    forged_status: dict[int, int] = field(default_factory=dict)
    oversized: int = 0
    oversized_status: dict[int, int] = field(default_factory=dict)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def start_jwks() -> tuple[web.AppRunner, str]:
    """A JWKS (kid ``k1``) on 127.0.0.1 that the server trusts; no token here uses it."""
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_key().public_key()))
    body = {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}
    app = web.Application()
    app.router.add_get("/jwks.json", lambda _: web.json_response(body))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/jwks.json"


def forged_tokens(count: int = 16) -> list[str]:
    """JWTs naming the trusted kid (or an unknown one) but signed by another key."""
    key, now = _key(), int(time.time())
    claims = {"sub": "mallory", "iat": now, "exp": now + 3600}
    return [
        jwt.encode({**claims, "n": n}, key, "RS256", headers={"kid": "k1" if n % 2 else f"x{n}"})
        for n in range(count)
    ]


async def slow_client(host: str, port: int, stop_at: float, stats: Hostile) -> None:
    """Keep one connection open with a request head that never ends, a byte every
    ``DRIBBLE_S``; reopen it whenever the server cuts it."""
    while time.monotonic() < stop_at:
        writer = None
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(SLOW_PEER, 0))
            stats.slow_opened += 1
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            while time.monotonic() < stop_at:
                try:
                    if not await asyncio.wait_for(reader.read(4096), DRIBBLE_S):
                        stats.slow_cut += 1
                        break
                except TimeoutError:
                    writer.write(b"X-Slow: a\r\n")
                    await writer.drain()
        except OSError:
            await asyncio.sleep(1.0)
        finally:
            if writer is not None:
                writer.close()


async def forged_jwts(
    session: aiohttp.ClientSession, url: str, rate: float, stop_at: float, stats: Hostile
) -> None:
    """POST chat completions with forged bearers at ``rate`` per second."""
    tokens = forged_tokens()
    body = {"model": "assistant", "messages": [{"role": "user", "content": "let me in"}]}

    async def one(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
                await r.read()
                stats.forged_status[r.status] = stats.forged_status.get(r.status, 0) + 1
        except (aiohttp.ClientError, TimeoutError):
            stats.forged_status[0] = stats.forged_status.get(0, 0) + 1

    await _at_rate(rate, stop_at, lambda n: one(tokens[n % len(tokens)]), stats, "forged")


async def oversized(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    rate: float,
    stop_at: float,
    stats: Hostile,
) -> None:
    """Ask agent ``big``, whose upstream answers 200 MB, at ``rate`` per second."""
    body = {"model": "big", "messages": [{"role": "user", "content": "tell me everything"}]}

    async def one(_: int) -> None:
        try:
            async with session.post(
                url + "/v1/chat/completions", json=body, headers=headers
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        stats.oversized_status[status] = stats.oversized_status.get(status, 0) + 1

    await _at_rate(rate, stop_at, one, stats, "oversized")


async def _at_rate(
    rate: float,
    stop_at: float,
    make: Callable[[int], Awaitable[None]],
    stats: Hostile,
    counter: str,
) -> None:
    pending: set[asyncio.Task[None]] = set()
    started, n = time.monotonic(), 0
    while time.monotonic() < stop_at:
        task = asyncio.create_task(make(n))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
        setattr(stats, counter, n)
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
    if pending:
        await asyncio.wait(pending, timeout=30)
