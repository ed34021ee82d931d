"""Rate limits: token buckets of requests and tokens per minute, per tenant and per model.
A request takes one request and its prompt estimate up front; the run's real usage
corrects the token bucket afterwards (it may go below zero: the next requests wait).
Per process (README): with ``--workers`` or replicas each process has its own buckets."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from hector_py.config.limits import RateLimit, RateLimitsConfig

MAX_TENANTS = 10_000
"""Buckets kept for unnamed tenants (the least recently seen go first)."""


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


@dataclass
class Limiter:
    """The buckets of one limit (a tenant or a model)."""

    limit: RateLimit
    requests: Bucket | None = None
    tokens: Bucket | None = None

    def __post_init__(self) -> None:
        if self.limit.requests_per_minute:
            self.requests = Bucket(self.limit.requests_per_minute)
        if self.limit.tokens_per_minute:
            self.tokens = Bucket(self.limit.tokens_per_minute)

    def admit(self, estimate: int, where: str) -> None:
        """Take one request and ``estimate`` tokens, or ``RateLimited``."""
        for kind, bucket, amount in (
            ("requests", self.requests, 1),
            ("tokens", self.tokens, estimate),
        ):
            if bucket is not None and (wait := bucket.wait_for(amount)) > 0:
                raise RateLimited(kind, bucket.per_minute, wait, where)
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(estimate)

    def correct(self, estimate: int, used: int) -> None:
        """Charge the real usage instead of the estimate."""
        if self.tokens is not None:
            self.tokens.take(used - estimate)

    def headroom(self) -> dict[str, tuple[int, int, float]]:
        """Per kind: the limit, what remains now, and seconds until full."""
        out = {}
        for kind, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                level = bucket.refill()
                reset = (bucket.per_minute - level) * 60 / bucket.per_minute
                out[kind] = (bucket.per_minute, max(0, int(level)), reset)
        return out


class TenantLimits:
    """Each tenant's limiter (``rate_limits:``); bounded for tenants without a name of
    their own in the config."""

    def __init__(self, config: RateLimitsConfig) -> None:
        self.config = config
        self._limiters: OrderedDict[str, Limiter] = OrderedDict()
        self._estimates: dict[str, tuple[str, int]] = {}  # task id -> tenant, estimate

    def limiter(self, tenant: str) -> Limiter | None:
        """``tenant``'s limiter, or ``None`` when it has no limit."""
        limit = self.config.tenants.get(tenant, self.config.per_tenant)
        if not (limit.requests_per_minute or limit.tokens_per_minute):
            return None
        found = self._limiters.get(tenant)
        if found is None:
            found = self._limiters[tenant] = Limiter(limit)
            while len(self._limiters) > MAX_TENANTS + len(self.config.tenants):
                self._limiters.popitem(last=False)
        self._limiters.move_to_end(tenant)
        return found

    def admit(self, tenant: str, text: str, task_id: str | None = None) -> Limiter | None:
        """Admit one request of ``tenant`` for ``text`` (its prompt estimate: a token per
        four characters), or ``RateLimited``. With ``task_id``, ``settle`` corrects it
        when the task ends."""
        limiter = self.limiter(tenant)
        if limiter is not None:
            limiter.admit(estimate(text), f"tenant '{tenant or 'anonymous'}'")
            if task_id is not None:
                self._estimates[task_id] = (tenant, estimate(text))
        return limiter

    def settle(self, task_id: str, used: int) -> None:
        """A task ended having used ``used`` tokens."""
        tenant, guessed = self._estimates.pop(task_id, ("", -1))
        limiter = self.limiter(tenant) if guessed >= 0 else None
        if limiter is not None:
            limiter.correct(guessed, used)


def estimate(text: str) -> int:
    """A prompt's tokens, roughly (four characters each)."""
    return len(text) // 4 + 1
