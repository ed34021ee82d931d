"""Token budgets per tenant (``budgets:``): refuse runs once a daily or monthly budget is
spent; usage lives in the store, so a restart (sqlite) keeps it.

A run is checked before it starts and charged with its tokens when it ends, so the run
that crosses the line finishes and the next one is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
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


class Budgets:
    """Checks and charges the configured tenants' budgets; other tenants are unlimited."""

    def __init__(
        self,
        budgets: Mapping[str, TenantBudget],
        store: Store,
        telemetry: Telemetry,
    ) -> None:
        self._limits = {tenant: _limits(budget) for tenant, budget in budgets.items()}
        self._store = store
        self._telemetry = telemetry
        self._pending: set[asyncio.Task[None]] = set()

    async def refresh(self) -> None:
        """Set every budget gauge from the stored usage (at start-up)."""
        for tenant in self._limits:
            await self._remaining(tenant)

    async def check(self, tenant: str) -> None:
        """Raise ``BudgetExceeded`` when a budget of ``tenant`` is spent."""
        for period, left in (await self._remaining(tenant)).items():
            if left <= 0:
                limit = self._limits[tenant][period]
                raise BudgetExceeded(
                    f"tenant '{tenant}' has used its {period} budget of {limit} tokens"
                )

    async def charge(self, tenant: str, tokens: int) -> None:
        """Add ``tokens`` to ``tenant``'s usage in every budgeted period."""
        limits = self._limits.get(tenant)
        if not limits or tokens <= 0:
            return
        keys = periods(datetime.now(UTC))
        for period, limit in limits.items():
            used = await self._store.add_usage(tenant, keys[period], tokens)
            self._telemetry.budget(tenant, period, limit, max(limit - used, 0), tokens)

    def task_changed(self, task: Task) -> None:
        """Charge a finished task's tokens to its tenant (in the background): a failed or
        canceled run pays for the model calls it made."""
        tokens = task.prompt_tokens + task.completion_tokens
        if not task.state.terminal or task.tenant not in self._limits or not tokens:
            return
        charge = asyncio.create_task(self.charge(task.tenant, tokens))
        self._pending.add(charge)
        charge.add_done_callback(self._done)

    def _done(self, charge: asyncio.Task[None]) -> None:
        self._pending.discard(charge)
        if not charge.cancelled() and charge.exception() is not None:
            log.error("could not record token usage: %s", charge.exception())

    async def close(self) -> None:
        """Wait for charges still being written."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=DRAIN_TIMEOUT_S)

    async def _remaining(self, tenant: str) -> dict[str, int]:
        limits = self._limits.get(tenant, {})
        if not limits:  # an unbudgeted tenant: nothing to look up (on every request)
            return {}
        keys = periods(datetime.now(UTC))
        remaining = {}
        for period, limit in limits.items():
            remaining[period] = max(limit - await self._store.usage(tenant, keys[period]), 0)
            self._telemetry.budget(tenant, period, limit, remaining[period])
        return remaining
