"""Rate-limit buckets in Redis (``rate_limits.backend: redis://…``), shared by every replica
whatever the store: each take is one Lua script on the bucket's hash, refilled from its
stored timestamp by Redis's clock (``TIME``); Redis runs a script alone, so a take is
atomic. Needs the ``redis`` extra (redis-py's asyncio client, the maintained one)."""

from __future__ import annotations

from typing import Any

from hector_py.agent.stores.availability import StoreUnavailable
from hector_py.config.loader import ConfigError, Problem

TIMEOUT_S = 3.0
# KEYS[1] the bucket; ARGV: per minute, amount, mode (take | force | peek). Returns
# {taken 0|1, level} (the level as a string: Lua numbers come back as integers).
SCRIPT = """
local cap, amount, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(stored[1]) or cap
level = math.min(cap, level + math.max(0, now - (tonumber(stored[2]) or now)) * cap / 60)
if mode == 'peek' or (mode == 'take' and level < math.min(amount, cap)) then
  return {0, tostring(level)}
end
level = level - amount
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.max(60, math.ceil((cap - level) * 60 / cap)) + 1)
return {1, tostring(level)}
"""


class RedisBuckets:
    """``Buckets`` in the Redis at ``url``, keys under ``prefix``."""

    def __init__(self, url: str, prefix: str) -> None:
        try:
            from redis.asyncio import Redis
            from redis.exceptions import ConnectionError, TimeoutError
        except ImportError:
            need = "needs the redis client: pip install 'hector-py[redis]'"
            raise ConfigError([Problem("rate_limits.backend", need, "config")]) from None
        self._client = Redis.from_url(
            url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
        )
        self._unreachable = (ConnectionError, TimeoutError, OSError)
        self._script = self._client.register_script(SCRIPT)
        self._prefix = prefix

    async def _run(self, key: str, per_minute: int, amount: float, mode: str) -> tuple[bool, float]:
        try:
            result: list[Any] = await self._script(
                keys=[self._prefix + key], args=[per_minute, amount, mode]
            )
        except self._unreachable as exc:  # 503, as for a store that is away
            raise StoreUnavailable(f"rate-limit backend: {exc}") from None
        level = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
        return bool(int(result[0])), float(level)

    async def take(self, key: str, per_minute: int, amount: float, force: bool = False) -> float:
        """See ``ratelimit.Buckets.take``."""
        taken, level = await self._run(key, per_minute, amount, "force" if force else "take")
        if taken:
            return 0.0
        return max((min(amount, per_minute) - level) * 60 / per_minute, 0.001)

    async def level(self, key: str, per_minute: int) -> float:
        """See ``ratelimit.Buckets.level``."""
        return (await self._run(key, per_minute, 0, "peek"))[1]

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
