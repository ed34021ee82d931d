"""The facade's plain counters: one call, one metric (no span of its own)."""

from __future__ import annotations

from opentelemetry import trace

from hector_py.config.llm import Pricing
from hector_py.observability.metrics import Metrics
from hector_py.observability.scopes import CANCELED, ERROR, SUCCESS


class Counters:
    """Counting methods of ``Telemetry``; no-ops with metrics off."""

    metrics: Metrics | None
    tenants: frozenset[str]
    pricing: dict[tuple[str, str], Pricing]

    def cost(self, provider: str, model: str, prompt: int, completion: int) -> float:
        """The estimated price of one call in US dollars (0 without ``pricing``)."""
        price = self.pricing.get((provider, model))
        return price.cost(prompt, completion) if price is not None else 0.0

    def llm_retry(self, provider: str, model: str, attempt: int, reason: str, delay: float) -> None:
        """Count one retried LLM call and note it on the current span."""
        if self.metrics is not None:
            self.metrics.llm_retries.labels(provider, model, reason).inc()
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "retry", {"retry.attempt": attempt, "retry.reason": reason, "retry.delay_s": delay}
            )

    def circuit_state(self, provider: str, model: str, value: int) -> None:
        """A model's circuit changed state (0 ok, 1 degraded, 2 open)."""
        if self.metrics is not None:
            self.metrics.llm_circuit.labels(provider, model).set(value)

    def mcp_request(self, server: str, method: str, ok: bool) -> None:
        """Count one request to the MCP server ``server`` (a ``tools:`` key)."""
        if self.metrics is not None:
            self.metrics.mcp_requests.labels(server, method, "success" if ok else "error").inc()

    def mcp_session(self, server: str, up: bool) -> None:
        """Record whether the MCP server's session is up."""
        if self.metrics is not None:
            self.metrics.mcp_session_up.labels(server).set(1 if up else 0)

    def upstream_headroom(self, provider: str, model: str, left: dict[str, int]) -> None:
        """What the upstream's own rate-limit headers say is left, per kind."""
        if self.metrics is not None:
            for kind, value in left.items():
                self.metrics.upstream_headroom.labels(provider, model, kind).set(value)

    def trace_decision(self, reason: str | None) -> None:
        """The flight recorder kept a trace (for ``reason``) or dropped it (``None``)."""
        if self.metrics is not None:
            if reason is None:
                self.metrics.traces_dropped.inc()
            else:
                self.metrics.traces_kept.labels(reason).inc()

    def rate_limited(self, kind: str) -> None:
        """Count one request refused by a tenant's rate limit (``requests`` or ``tokens``)."""
        if self.metrics is not None:
            self.metrics.rate_limited.labels(kind).inc()

    def cache_lookup(self, provider: str, model: str, hit: bool) -> None:
        """Count one response-cache lookup."""
        if self.metrics is not None:
            counter = self.metrics.cache_hits if hit else self.metrics.cache_misses
            counter.labels(provider, model).inc()

    def approval(self, agent: str, tool: str, decision: str) -> None:
        """Count one decision on a tool call (``approve``, ``deny`` or ``timeout``)."""
        if self.metrics is not None:
            self.metrics.approvals.labels(agent, tool, decision).inc()

    def delegation(self, agent: str, target: str, ok: bool) -> None:
        """Count one delegation from ``agent`` to the sub-agent ``target``."""
        if self.metrics is not None:
            self.metrics.delegations.labels(agent, target, SUCCESS if ok else ERROR).inc()

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

    def tenant_usage(
        self, tenant: str | None, prompt: int, completion: int, cost: float = 0.0
    ) -> None:
        """Count a finished run's tokens and estimated cost for its tenant (bounded:
        ``other`` unless the tenant is configured), for billing without budgets."""
        if self.metrics is None or not (prompt or completion):
            return
        label = tenant if tenant in self.tenants else "other"
        if cost:
            self.metrics.tenant_cost.labels(label).inc(cost)
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
