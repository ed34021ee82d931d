"""``llms:``: model endpoints."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from hector_py.config.base import IMPORT_PATH, PROVIDERS, Strict
from hector_py.config.limits import RateLimit


class LLMTimeout(Strict):
    """Seconds an LLM request may take (``llms.<name>.timeout``), per attempt."""

    connect: float = Field(10.0, gt=0, description="To open the connection.")
    read: float = Field(
        120.0, gt=0, description="Between two reads; a blocking answer sends nothing until done."
    )
    total: float = Field(600.0, gt=0, description="For the whole request, streams included.")


class Pricing(Strict):
    """Token prices of one model, in US dollars per million tokens."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The price of one call."""
        return (
            prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million
        ) / 1_000_000


class CircuitBreakerConfig(Strict):
    """When a model is skipped for a while after failing."""

    failure_threshold: int = Field(
        5, ge=1, description="Failed calls within window_seconds that open the circuit."
    )
    window_seconds: float = Field(60.0, gt=0, description="How far back failures count.")
    cooldown_seconds: float = Field(
        30.0, gt=0, description="Seconds an open circuit skips the model; then one trial call."
    )


class CacheConfig(Strict):
    """An exact-match cache of a model's answers (``llm/cache.py``)."""

    enabled: bool = False
    ttl_seconds: float = Field(300.0, gt=0, description="How long an answer is reused.")
    max_entries: int = Field(1000, ge=1, description="Answers kept (least recently used go).")
    always: bool = Field(
        False, description="Cache at any temperature (default: only temperature 0)."
    )
    tool_results: bool = Field(
        False, description="Also cache turns that carry tool results (default: not)."
    )


class LLMConfig(Strict):
    """One model endpoint that agents refer to by name."""

    provider: str = Field(
        "demo",
        description="openai | anthropic | ollama | gemini | demo, or a class 'module.path:Class'.",
        json_schema_extra={"anyOf": [{"enum": list(PROVIDERS)}, {"pattern": f"^{IMPORT_PATH}$"}]},
    )
    model: str = "demo"
    api_key: SecretStr | None = None
    base_url: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    stream_delay: float = Field(
        0.02, ge=0, description="demo provider only: seconds between streamed words."
    )
    timeout: LLMTimeout = Field(default_factory=LLMTimeout)
    max_retries: int = Field(
        2, ge=0, le=10, description="Retries on 429, 5xx and connection errors."
    )
    retry_backoff: float = Field(
        0.5, ge=0, description="Seconds; retry n waits up to retry_backoff * 2**n (jittered)."
    )
    max_response_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Most bytes read from one answer (a reply, or a whole stream, about "
        "80,000 streamed tokens), after decompression; a larger answer fails the call.",
    )
    pricing: Pricing | None = Field(
        None, description="USD per million tokens; feeds llm_cost_usd_total."
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Other llms (keys) tried in order when this one fails with a retryable"
        " error (connection, timeout, 429, 5xx) after its own retries, or its circuit is open.",
    )
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    rate_limit: RateLimit | None = Field(
        None,
        description="Requests and tokens per minute this model takes from every agent and"
        " tenant together; over it the next model of the chain answers, or the caller gets"
        " a rate-limit error.",
    )
    cache: CacheConfig = Field(
        default_factory=CacheConfig,
        description="Reuse answers to identical requests: no upstream call, no tokens charged.",
    )

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value in PROVIDERS or re.fullmatch(IMPORT_PATH, value):
            return value
        raise PydanticCustomError(
            "provider",
            "unknown provider '{value}': use one of {known}, or an import path "
            "'module.path:ClassName'",
            {"value": value, "known": ", ".join(PROVIDERS)},
        )
