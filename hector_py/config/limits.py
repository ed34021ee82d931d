"""``rate_limits:`` and ``llms.<name>.rate_limit``: requests and tokens per minute."""

from __future__ import annotations

from pydantic import Field, SecretStr

from hector_py.config.base import Strict


class RateLimit(Strict):
    """Requests and tokens per minute (``None``: no limit of that kind)."""

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)


class RateLimitsConfig(Strict):
    """Per-tenant rate limits (a tenant is an API key's or a JWT's; none is anonymous)."""

    per_tenant: RateLimit = Field(
        default_factory=RateLimit, description="The limit of every tenant not listed below."
    )
    tenants: dict[str, RateLimit] = Field(
        default_factory=dict, description="Limits of named tenants (instead of per_tenant)."
    )
    backend: SecretStr | None = Field(
        None,
        description="redis://host:port/db: every limit's buckets in Redis, shared by all"
        " replicas (default: the postgres store's database, else each process's memory).",
    )
    redis_prefix: str = Field("hector:rate:", min_length=1, description="Redis key prefix.")
