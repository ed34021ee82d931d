"""``server:``: the listener, limits and auth."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr

from hector_py.config.base import Strict


class ApiKey(Strict):
    """An API key that names its tenant."""

    key: SecretStr
    tenant: str


class JwtConfig(Strict):
    """Bearer JWTs checked against a JWKS URL (``server.auth.jwt``)."""

    jwks_url: str = Field(pattern=r"^https?://", description="Where the signing keys are.")
    issuer: str | None = Field(None, description="Required 'iss' claim.")
    audience: str | None = Field(None, description="Required 'aud' claim.")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    tenant_claim: str | None = Field(None, description="Claim naming the caller's tenant.")
    leeway: float = Field(30.0, ge=0, description="Seconds of clock skew allowed.")


class AuthConfig(Strict):
    """Who may call the server (``server.auth``); off while it has no keys and no JWT."""

    api_keys: list[SecretStr | ApiKey] = Field(
        default_factory=list,
        description="Keys accepted as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'.",
    )
    public_card: bool = Field(True, description="Agent cards stay open without a key.")
    protect_metrics: bool = Field(
        False, description="Require a key on /metrics too (when it shares the API port)."
    )
    jwt: JwtConfig | None = None
    tenant_header: str | None = Field(
        None,
        description="Header naming the tenant of a request whose key names none (or with "
        "auth off); only behind a trusted gateway.",
    )


class TenantBudget(Strict):
    """Tokens (prompt + completion) a tenant may use per UTC day and calendar month."""

    daily_tokens: int | None = Field(None, ge=1)
    monthly_tokens: int | None = Field(None, ge=1)
    reserve_tokens: int = Field(
        1000,
        ge=0,
        description="Tokens held for a run while it runs (settled with its real count), so "
        "concurrent runs overshoot a budget by at most this.",
    )


class OpenAIApiConfig(Strict):
    """The OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    allow_system_messages: bool = Field(
        True,
        description="Accept callers' system/developer messages (checked by the agent's input "
        "guardrails like every message); false refuses them (400).",
    )


class ServerConfig(Strict):
    """HTTP listener settings."""

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = Field(
        None, description="External base URL used in agent cards (default: from the request)."
    )
    allowed_hosts: list[
        Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9.-]+|\[?[0-9A-Fa-f:.]+\]?)$", max_length=253)]
    ] = Field(
        default_factory=list,
        description="Host header values accepted without public_url (421 otherwise; '*' is"
        " any). Always accepted: the bind address, localhost, 127.0.0.1 and ::1.",
    )
    shutdown_timeout: float = Field(
        30.0, ge=0, description="Seconds in-flight requests may take to finish on SIGTERM."
    )
    workers: int = Field(
        1, ge=1, le=64, description="Processes sharing the port; metrics add up across them."
    )
    drain_delay: float = Field(
        0.0,
        ge=0,
        le=300,
        description="Seconds to keep serving with readiness 503 after SIGTERM, so load "
        "balancers stop sending traffic before the listener closes.",
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body (413).")
    max_message_chars: int = Field(
        100_000, ge=1, description="Longest user message in characters (invalid params)."
    )
    max_concurrent_runs: int = Field(
        64, ge=1, description="Agent runs at once, all agents together; the excess waits."
    )
    queue_timeout: float = Field(
        0.0, ge=0, description="Seconds a run may wait for a slot before 503 (0: at once)."
    )
    idle_timeout: float = Field(
        15.0,
        gt=0,
        description="Seconds a connection may go without a complete request head, from "
        "its opening or its previous response (idle keep-alive, heads sent slowly).",
    )
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds a request body may take to arrive (then 408)."
    )
    max_connections: int | None = Field(
        None,
        ge=1,
        description="Client connections open at once; past it a new one gets 503 and is "
        "closed (default: three quarters of the open-file limit).",
    )
    max_connections_per_client: int = Field(
        256,
        ge=1,
        description="Connections open at once from one client address (behind a proxy, "
        "all its clients share its address).",
    )
    auth: AuthConfig = Field(default_factory=lambda: AuthConfig())
    openai_api: OpenAIApiConfig = Field(default_factory=lambda: OpenAIApiConfig())
