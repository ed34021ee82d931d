"""Token budgets per tenant (``budgets:``): refuse runs once a daily or monthly budget is
spent; usage lives in the store, so a restart (sqlite) keeps it.

A run reserves its tenant's ``reserve_tokens`` when it starts, in one atomic
``add_usage`` per period (the store returns the new total, so concurrent runs see each
other's reservations), and is refused when the budget was spent before its reservation.
When it ends, the reservation is settled: the difference with the tokens really used is
added. So the run that crosses the line finishes and the next one is refused, and runs at
once overshoot the budget by at most one reservation (when each uses no more than it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hector_py.agent.stores import Store, Task
from hector_py.config.model import TenantBudget
from hector_py.observability.telemetry import Telemetry

log = logging.getLogger("hector.budgets")

DRAIN_TIMEOUT_S = 5.0


class BudgetExceeded(Exception):
    """The tenant's budget for a period is spent."""


def periods(now: datetime) -> dict[str, str]:
    """The store keys of the current UTC day and month."""
    return {"daily": now.strftime("%Y-%m-%d"), "monthly": now.strftime("%Y-%m")}


def _limits(budget: TenantBudget) -> dict[str, int]:
    limits = {"daily": budget.daily_tokens, "monthly": budget.monthly_tokens}
    return {period: limit for period, limit in limits.items() if limit is not None}


@dataclass
class Reservation:
    """Tokens held for one run, in the periods (store keys) it started in."""

    tenant: str
    tokens: int = 0
    keys: dict[str, str] = field(default_factory=dict)
    settled: bool = False


class Budgets:
    """Reserves and settles the configured tenants' budgets; other tenants are unlimited."""

    def __init__(
        self,
        budgets: Mapping[str, TenantBudget],
        store: Store,
        telemetry: Telemetry,
    ) -> None:
        self._limits = {tenant: _limits(budget) for tenant, budget in budgets.items()}
        self._estimates = {tenant: budget.reserve_tokens for tenant, budget in budgets.items()}
        self._store = store
        self._telemetry = telemetry
        self._runs: dict[str, Reservation] = {}
        """Reservations of A2A and triggered runs, by task id, settled when the task ends."""
        self._pending: set[asyncio.Task[None]] = set()

    async def refresh(self) -> None:
        """Set every budget gauge from the stored usage (at start-up)."""
        keys = periods(datetime.now(UTC))
        for tenant, limits in self._limits.items():
            for period, limit in limits.items():
                used = await self._store.usage(tenant, keys[period])
                self._telemetry.budget(tenant, period, limit, max(limit - used, 0))

    async def reserve(self, tenant: str) -> Reservation:
        """Hold ``tenant``'s run estimate; ``BudgetExceeded`` (holding nothing) when a
        budget of ``tenant`` was spent already."""
        limits = self._limits.get(tenant)
        if not limits:  # an unbudgeted tenant: nothing to look up (on every request)
            return Reservation(tenant, settled=True)
        keys = periods(datetime.now(UTC))
        reservation = Reservation(tenant, self._estimates[tenant])
        try:
            for period, limit in limits.items():
                used = await self._store.add_usage(tenant, keys[period], reservation.tokens)
                reservation.keys[period] = keys[period]
                self._telemetry.budget(tenant, period, limit, max(limit - used, 0))
                if used - reservation.tokens >= limit:
                    raise BudgetExceeded(
                        f"tenant '{tenant}' has used its {period} budget of {limit} tokens"
                    )
        except BaseException:
            await asyncio.shield(self.settle(reservation, 0))
            raise
        return reservation

    async def refusal(self, tenant: str, spent: int) -> str | None:
        """Why ``tenant`` may not start more work (a delegation) now that its run has
        used ``spent`` tokens beyond what it reserved, or ``None``. A store that fails
        refuses nothing (the run's own reservation still holds)."""
        limits = self._limits.get(tenant)
        if not limits:
            return None
        keys = periods(datetime.now(UTC))
        over = max(spent - self._estimates[tenant], 0)  # not in the store until settled
        try:
            for period, limit in limits.items():
                if await self._store.usage(tenant, keys[period]) + over >= limit:
                    return f"tenant '{tenant}' has used its {period} budget of {limit} tokens"
        except Exception as exc:
            log.warning("could not read token usage: %s", exc)
        return None

    def bind(self, reservation: Reservation, task_id: str) -> None:
        """Settle ``reservation`` when the task ``task_id`` ends (``task_changed``)."""
        if not reservation.settled:
            self._runs[task_id] = reservation

    async def release(self, task_id: str) -> None:
        """Give back the reservation of a task that could not start."""
        if (reservation := self._runs.pop(task_id, None)) is not None:
            await self.settle(reservation, 0)

    async def settle(self, reservation: Reservation, tokens: int) -> None:
        """Replace the reservation by the ``tokens`` the run used (once; never raises: a
        store that fails is logged)."""
        if reservation.settled:
            return
        reservation.settled = True
        limits = self._limits[reservation.tenant]
        delta = tokens - reservation.tokens
        try:
            for period, key in reservation.keys.items():
                used = await self._store.add_usage(reservation.tenant, key, delta)
                limit = limits[period]
                self._telemetry.budget(
                    reservation.tenant, period, limit, max(limit - used, 0), max(tokens, 0)
                )
        except Exception as exc:
            log.error("could not record token usage: %s", exc)

    def task_changed(self, task: Task) -> None:
        """Settle a finished task's reservation with its tokens (in the background): a
        failed or canceled run pays for the model calls it made. A budgeted task started
        without a reservation is charged all the same."""
        tokens = task.prompt_tokens + task.completion_tokens
        if not task.state.terminal:
            return
        reservation = self._runs.pop(task.id, None)
        if reservation is None:
            if task.tenant not in self._limits or not tokens:
                return
            keys = periods(datetime.now(UTC))
            reservation = Reservation(
                task.tenant, 0, {p: keys[p] for p in self._limits[task.tenant]}
            )
        settle = asyncio.create_task(self.settle(reservation, tokens))
        self._pending.add(settle)
        settle.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        """Wait for settlements still being written."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=DRAIN_TIMEOUT_S)
