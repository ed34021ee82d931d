"""The JWKS of ``server.auth.jwt``: fetched in the background, never on a request's path.

A request looks its key up in memory. The set is refetched every ``REFRESH_S`` (every
``RETRY_S`` while it fails), and at most every ``MIN_REFETCH_S`` when a token names an
unknown ``kid`` (a rotation), each fetch bounded by ``FETCH_TIMEOUT_S`` and ``MAX_BYTES``.
A slow or dead JWKS therefore costs requests nothing: they get a 401 (unknown key) or a
503 (no keys known yet) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
import jwt
import orjson

log = logging.getLogger("hector.auth")

REFRESH_S = 300.0
RETRY_S = 10.0
MIN_REFETCH_S = 30.0
FETCH_TIMEOUT_S = 5.0
MAX_BYTES = 1_048_576


class JwksError(Exception):
    """The JWKS could not be fetched or holds no usable key."""


class Jwks:
    """The signing keys of one JWKS URL, by ``kid``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._fetch: asyncio.Task[bool] | None = None
        self._last_attempt = float("-inf")

    @property
    def ready(self) -> bool:
        """Whether any key is known."""
        return bool(self._keys)

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named ``kid``; when unknown, ``None`` and a refetch soon (rotation)."""
        found = self._keys.get(kid)
        if found is None and time.monotonic() - self._last_attempt >= MIN_REFETCH_S:
            self._refresh_soon()
        return found

    async def start(self) -> None:
        """Fetch once (bounded: a dead JWKS delays start-up at most ``FETCH_TIMEOUT_S``),
        then keep the set fresh in the background."""
        self._session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S),
        )
        await self._refresh_soon()
        self._loop_task = asyncio.create_task(self._keep_fresh())

    async def close(self) -> None:
        """Stop refreshing and close the HTTP session."""
        for task in (self._loop_task, self._fetch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._session is not None:
            await self._session.close()

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S if self.ready else RETRY_S)
            await self._refresh_soon()

    def _refresh_soon(self) -> asyncio.Task[bool]:
        """The fetch under way, or a new one (one at a time)."""
        if self._fetch is None or self._fetch.done():
            self._last_attempt = time.monotonic()
            self._fetch = asyncio.create_task(self._refresh())
        return self._fetch

    async def _refresh(self) -> bool:
        try:
            keys = await self._download()
        except JwksError as exc:
            log.warning("JWKS %s not refreshed: %s", self.url, exc, extra={"keys": len(self._keys)})
            return False
        if keys.keys() != self._keys.keys():
            log.info("JWKS %s: %d signing keys", self.url, len(keys))
        self._keys = keys
        return True

    async def _download(self) -> dict[str, jwt.PyJWK]:
        assert self._session is not None
        try:
            async with self._session.get(self.url) as response:
                if response.status != 200:
                    raise JwksError(f"HTTP {response.status}")
                body = await response.content.read(MAX_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise JwksError(str(exc) or type(exc).__name__) from None
        if len(body) > MAX_BYTES:
            raise JwksError(f"larger than {MAX_BYTES} bytes")
        try:
            jwk_set = jwt.PyJWKSet.from_dict(orjson.loads(body))
        except (orjson.JSONDecodeError, jwt.PyJWKSetError, TypeError, AttributeError) as exc:
            raise JwksError(f"not a JWKS: {exc}") from None
        return {key.key_id: key for key in jwk_set.keys if key.key_id}
