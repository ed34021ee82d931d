"""Rate limits: token buckets of requests and tokens per minute, per tenant and per model.
A request takes one request and its prompt estimate up front; the run's real usage
corrects the token bucket afterwards (it may go below zero: the next requests wait).
The buckets live in this process, or with the postgres store in the database, so every
replica and worker shares them (``stores/pg_buckets.py``)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from hector_py.config.limits import RateLimit, RateLimitsConfig

log = logging.getLogger("hector.ratelimit")
MAX_KEYS = 20_000
"""Buckets kept in a process (the least recently used go first)."""


class RateLimited(Exception):
    """Over a limit: ``kind`` (``requests`` or ``tokens``), the limit, and when to retry."""

    def __init__(self, kind: str, limit: int, retry_after: float, where: str) -> None:
        super().__init__(
            f"rate limit of {limit} {kind} per minute reached for {where};"
            f" retry after {math.ceil(retry_after)} s"
        )
        self.kind, self.limit, self.retry_after = kind, limit, retry_after


@dataclass
class Bucket:
    """A token bucket that refills ``per_minute`` over a minute, at most ``per_minute``."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    level: float = field(init=False)
    at: float = field(init=False)

    def __post_init__(self) -> None:
        self.level, self.at = float(self.per_minute), self.clock()

    def refill(self) -> float:
        """The level now."""
        now = self.clock()
        rate = self.per_minute / 60
        self.level = min(float(self.per_minute), self.level + (now - self.at) * rate)
        self.at = now
        return self.level

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is there (0 if it is)."""
        missing = min(amount, self.per_minute) - self.refill()
        return max(0.0, missing * 60 / self.per_minute)

    def take(self, amount: float) -> None:
        """Take ``amount`` (the level may go below zero)."""
        self.refill()
        self.level -= amount


class Buckets(Protocol):
    """Where buckets live: this process (``LocalBuckets``) or a database every replica
    shares (``stores/pg_buckets.py``)."""

    async def take(self, key: str, per_minute: int, amount: float, force: bool = False) -> float:
        """Refill ``key``'s bucket, then take ``amount`` when it is there (or ``force``):
        0; else the seconds until it is, taking nothing."""
        ...

    async def level(self, key: str, per_minute: int) -> float:
        """What ``key``'s bucket holds now."""
        ...


class LocalBuckets:
    """Buckets in this process, the least recently used forgotten past ``MAX_KEYS``."""

    def __init__(self) -> None:
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def _bucket(self, key: str, per_minute: int) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.per_minute != per_minute:
            bucket = self._buckets[key] = Bucket(per_minute)
            while len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        return bucket

    async def take(self, key: str, per_minute: int, amount: float, force: bool = False) -> float:
        """See ``Buckets.take``."""
        bucket = self._bucket(key, per_minute)
        wait = 0.0 if force else bucket.wait_for(amount)
        if not wait:
            bucket.take(amount)
        return wait

    async def level(self, key: str, per_minute: int) -> float:
        """See ``Buckets.level``."""
        return self._bucket(key, per_minute).refill()


@dataclass(frozen=True)
class Limiter:
    """The buckets of one limit (a tenant's or a model's), named ``key``."""

    limit: RateLimit
    buckets: Buckets
    key: str

    def _kinds(self) -> list[tuple[str, int]]:
        kinds = [
            ("requests", self.limit.requests_per_minute),
            ("tokens", self.limit.tokens_per_minute),
        ]
        return [(kind, per_minute) for kind, per_minute in kinds if per_minute]

    async def admit(self, estimate: int, where: str) -> None:
        """Take one request and ``estimate`` tokens, or ``RateLimited`` (taking nothing)."""
        taken: list[tuple[str, int, int]] = []
        for kind, per_minute in self._kinds():
            amount = 1 if kind == "requests" else estimate
            wait = await self.buckets.take(f"{self.key}:{kind}", per_minute, amount)
            if wait > 0:
                for name, cap, took in taken:  # give back what the other kind took
                    await self.buckets.take(name, cap, -took, force=True)
                raise RateLimited(kind, per_minute, wait, where)
            taken.append((f"{self.key}:{kind}", per_minute, amount))

    async def correct(self, estimate: int, used: int) -> None:
        """Charge the real usage instead of the estimate (never raises: a store that fails
        is logged, and the estimate stands)."""
        if self.limit.tokens_per_minute and used != estimate:
            key = f"{self.key}:tokens"
            try:
                await self.buckets.take(
                    key, self.limit.tokens_per_minute, used - estimate, force=True
                )
            except Exception as exc:
                log.warning("rate limit %s could not be corrected: %s", self.key, exc)

    async def headroom(self) -> dict[str, tuple[int, int, float]]:
        """Per kind: the limit, what remains now, and seconds until full."""
        out = {}
        for kind, per_minute in self._kinds():
            level = await self.buckets.level(f"{self.key}:{kind}", per_minute)
            reset = (per_minute - level) * 60 / per_minute
            out[kind] = (per_minute, max(0, int(level)), reset)
        return out


class TenantLimits:
    """Each tenant's limiter (``rate_limits:``)."""

    def __init__(self, config: RateLimitsConfig, buckets: Buckets) -> None:
        self.config = config
        self.buckets = buckets
        self._estimates: dict[str, tuple[str, int]] = {}  # task id -> tenant, estimate
        self._pending: set[asyncio.Task[None]] = set()

    def limiter(self, tenant: str) -> Limiter | None:
        """``tenant``'s limiter, or ``None`` when it has no limit."""
        limit = self.config.tenants.get(tenant, self.config.per_tenant)
        if not (limit.requests_per_minute or limit.tokens_per_minute):
            return None
        return Limiter(limit, self.buckets, f"tenant:{tenant}")

    async def admit(self, tenant: str, text: str, task_id: str | None = None) -> Limiter | None:
        """Admit one request of ``tenant`` for ``text`` (its prompt estimate: a token per
        four characters), or ``RateLimited``. With ``task_id``, ``settle`` corrects it
        when the task ends."""
        limiter = self.limiter(tenant)
        if limiter is not None:
            await limiter.admit(estimate(text), f"tenant '{tenant or 'anonymous'}'")
            if task_id is not None:
                self._estimates[task_id] = (tenant, estimate(text))
        return limiter

    def settle(self, task_id: str, used: int) -> None:
        """A task ended having used ``used`` tokens: correct its estimate (in the
        background)."""
        tenant, guessed = self._estimates.pop(task_id, ("", -1))
        limiter = self.limiter(tenant) if guessed >= 0 else None
        if limiter is not None:
            job = asyncio.create_task(limiter.correct(guessed, used))
            self._pending.add(job)
            job.add_done_callback(self._pending.discard)


def model_limiter(name: str, limit: RateLimit | None, buckets: Buckets) -> Limiter | None:
    """The limiter of the model ``llms.<name>`` (``rate_limit:``), if it has one."""
    if limit is None or not (limit.requests_per_minute or limit.tokens_per_minute):
        return None
    return Limiter(limit, buckets, f"model:{name}")


def estimate(text: str) -> int:
    """A prompt's tokens, roughly (four characters each)."""
    return len(text) // 4 + 1
