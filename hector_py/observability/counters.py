"""The facade's plain counters: one call, one metric (no span)."""

from __future__ import annotations

from hector_py.observability.metrics import Metrics
from hector_py.observability.scopes import CANCELED, ERROR, SUCCESS


class Counters:
    """Counting methods of ``Telemetry``; no-ops with metrics off."""

    metrics: Metrics | None
    tenants: frozenset[str]

    def agent_request(self, agent: str, ok: bool) -> None:
        """Count one protocol request addressed to ``agent``."""
        if self.metrics is not None:
            self.metrics.agent_requests.labels(agent, SUCCESS if ok else ERROR).inc()

    def budget(
        self, tenant: str, period: str, limit: int, remaining: int, charged: int = 0
    ) -> None:
        """A tenant's ``limit`` for ``period`` has ``remaining`` tokens (after ``charged``)."""
        if self.metrics is not None:
            self.metrics.budget_limit.labels(tenant, period).set(limit)
            self.metrics.budget_remaining.labels(tenant, period).set(remaining)
            if charged:
                self.metrics.budget_used.labels(tenant, period).inc(charged)

    def tenant_usage(self, tenant: str | None, prompt: int, completion: int) -> None:
        """Count a finished run's tokens for its tenant (bounded: ``other`` unless the
        tenant is configured), for billing without budgets."""
        if self.metrics is None or not (prompt or completion):
            return
        label = tenant if tenant in self.tenants else "other"
        if prompt:
            self.metrics.tenant_tokens.labels(label, "prompt").inc(prompt)
        if completion:
            self.metrics.tenant_tokens.labels(label, "completion").inc(completion)

    def notification(self, agent: str, event: str, ok: bool) -> None:
        """Count one outbound notification delivery, after its retries."""
        if self.metrics is not None:
            self.metrics.notifications.labels(agent, event, SUCCESS if ok else ERROR).inc()

    def auth_failure(self, reason: str) -> None:
        """Count one refused request (``missing`` or ``invalid`` key)."""
        if self.metrics is not None:
            self.metrics.auth_failures.labels(reason).inc()

    def connection_refused(self, reason: str) -> None:
        """Count a connection refused at a cap (``server_limit`` or ``client_limit``)."""
        if self.metrics is not None:
            self.metrics.connections_refused.labels(reason).inc()

    def error(self, component: str, error_type: str) -> None:
        """Count one error of ``component``."""
        if self.metrics is not None:
            self.metrics.errors.labels(component, error_type).inc()

    def _count_error(self, component: str, error_type: str | None) -> None:
        if error_type is not None and error_type != CANCELED:
            self.error(component, error_type)
