"""Pydantic models for the hector-py configuration file.

Every model forbids unknown keys, so a typo is an error rather than a silently
ignored setting. Secrets are ``SecretStr`` and print masked.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

ProviderName = Literal["openai", "anthropic", "ollama", "gemini", "demo"]
LogLevel = Literal["debug", "info", "warn", "error"]
LogFormat = Literal["text", "json"]

DEFAULT_AGENT = "assistant"
DEFAULT_LLM = "default"


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class ServerConfig(Strict):
    """HTTP listener settings."""

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = Field(
        None, description="External base URL used in agent cards (default: from the request)."
    )
    shutdown_timeout: float = Field(
        30.0, ge=0, description="Seconds in-flight requests may take to finish on SIGTERM."
    )


class LLMConfig(Strict):
    """One model endpoint that agents refer to by name."""

    provider: ProviderName = "demo"
    model: str = "demo"
    api_key: SecretStr | None = None
    base_url: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    stream_delay: float = Field(
        0.02, ge=0, description="demo provider only: seconds between streamed words."
    )


class AgentConfig(Strict):
    """An agent: an LLM, an instruction and the tools it may use."""

    name: str | None = Field(None, description="Display name (default: the agent's key).")
    description: str = "A hector-py agent."
    llm: str = DEFAULT_LLM
    instruction: str = "You are a helpful assistant."
    tools: list[str] = Field(default_factory=list)


class ToolConfig(Strict):
    """A tool that agents can enable by name."""

    type: Literal["builtin", "http"] = "builtin"
    description: str | None = None
    enabled: bool = True


class StorageConfig(Strict):
    """Where tasks and sessions are kept."""

    type: Literal["memory", "sqlite"] = "memory"
    path: str = "hector.db"


class MetricsConfig(Strict):
    """Prometheus metrics (``observability.metrics``)."""

    enabled: bool = False
    endpoint: str = Field("/metrics", pattern=r"^/")
    port: int | None = Field(None, ge=0, le=65535)
    namespace: str = Field("hector", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    subsystem: str = Field("", pattern=r"^([a-zA-Z_][a-zA-Z0-9_]*)?$")
    const_labels: dict[str, str] = Field(default_factory=dict)


class TracingConfig(Strict):
    """OpenTelemetry tracing (``observability.tracing``)."""

    enabled: bool = False
    exporter: Literal["otlp", "jaeger", "zipkin", "stdout"] = "otlp"
    endpoint: str = "localhost:4317"
    protocol: Literal["grpc", "http"] | None = None
    insecure: bool = True
    sampling_rate: float = Field(1.0, ge=0.0, le=1.0)
    service_name: str = "hector"
    service_version: str | None = None
    capture_payloads: bool = False
    headers: dict[str, SecretStr] = Field(default_factory=dict)


class ObservabilityConfig(Strict):
    """Metrics and tracing."""

    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)


class LoggingConfig(Strict):
    """Process log output."""

    level: LogLevel = "info"
    format: LogFormat = "text"
    file: str | None = Field(None, description="Log file path (default: stderr).")


class Config(Strict):
    """The whole hector-py configuration."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    llms: dict[str, LLMConfig] = Field(default_factory=lambda: {DEFAULT_LLM: LLMConfig()})
    agents: dict[str, AgentConfig] = Field(
        default_factory=lambda: {DEFAULT_AGENT: AgentConfig()},
        min_length=1,
    )
    default_agent: str | None = Field(
        None, description="Agent served at / and the well-known card (default: the first)."
    )
    tools: dict[str, ToolConfig] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    def reference_problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Cross-references that point nowhere, as (config path, message) pairs."""
        problems: list[tuple[tuple[str, ...], str]] = []
        for name, agent in self.agents.items():
            if agent.llm not in self.llms:
                known = ", ".join(sorted(self.llms)) or "none"
                problems.append(
                    (("agents", name, "llm"), f"unknown llm '{agent.llm}' (known: {known})")
                )
        if self.default_agent is not None and self.default_agent not in self.agents:
            problems.append((("default_agent",), f"unknown agent '{self.default_agent}'"))
        return problems

    @property
    def default_agent_name(self) -> str:
        """The agent served at ``/`` and ``/.well-known/agent-card.json``."""
        return self.default_agent or next(iter(self.agents))
