"""Admission control: at most ``max_concurrent_runs`` agent runs, overall and per agent.

A run that finds no free slot waits up to ``queue_timeout`` seconds in a bounded queue
(at most as many waiters as slots), then is refused with ``Overloaded`` (HTTP 503).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

RETRY_AFTER_S = 1


class Overloaded(Exception):
    """No run slot became free in time; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Slot:
    """A held run slot; ``release`` it exactly once (later calls do nothing).

    ``owner`` is the task the run belongs to (the acquiring one unless reassigned), which
    a shutdown cancels if the run outlives the drain; ``released`` resolves on release.
    """

    def __init__(self, semaphores: list[asyncio.Semaphore], held: set[Slot]) -> None:
        self._semaphores = semaphores
        self._held = held
        self.owner = asyncio.current_task()
        self.released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        held.add(self)

    def release(self) -> None:
        """Give the slot back."""
        for semaphore in self._semaphores:
            semaphore.release()
        self._semaphores = []
        self._held.discard(self)
        if not self.released.done():
            self.released.set_result(None)


class Admission:
    """Run slots for the whole server and for agents that have their own limit."""

    def __init__(self, total: int, per_agent: Mapping[str, int], queue_timeout: float) -> None:
        self._total = asyncio.Semaphore(total)
        self._agents = {name: asyncio.Semaphore(limit) for name, limit in per_agent.items()}
        self._queue_timeout = queue_timeout
        self._max_waiting = total
        self._waiting = 0
        self._held: set[Slot] = set()

    def held(self) -> list[Slot]:
        """The slots held now: every run in progress (A2A task or ``/v1`` request)."""
        return list(self._held)

    async def acquire(self, agent: str) -> Slot:
        """A slot for one run of ``agent``; raises ``Overloaded`` when none frees in time."""
        held: list[asyncio.Semaphore] = []
        limits = [(self._total, "the server's (server.max_concurrent_runs)")]
        if agent in self._agents:
            own = f"agent '{agent}''s (agents.{agent}.max_concurrent_runs)"
            limits.insert(0, (self._agents[agent], own))
        try:
            for semaphore, limit in limits:
                await self._take(semaphore, limit)
                held.append(semaphore)
        except BaseException:
            for semaphore in held:
                semaphore.release()
            raise
        return Slot(held, self._held)

    async def _take(self, semaphore: asyncio.Semaphore, limit: str) -> None:
        """Take a slot of ``semaphore``; ``limit`` names it in the refusal."""
        if not semaphore.locked():
            await semaphore.acquire()
            return
        if self._queue_timeout <= 0 or self._waiting >= self._max_waiting:
            raise Overloaded(f"at {limit} limit of concurrent runs; retry shortly")
        self._waiting += 1
        try:
            await asyncio.wait_for(semaphore.acquire(), self._queue_timeout)
        except TimeoutError:
            raise Overloaded(
                f"no run slot within {self._queue_timeout:g} s under {limit} limit of "
                "concurrent runs; retry shortly"
            ) from None
        finally:
            self._waiting -= 1
