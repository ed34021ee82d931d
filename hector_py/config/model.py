"""Pydantic models for the hector-py configuration file.

Every model forbids unknown keys, so a typo is an error rather than a silently
ignored setting. Secrets are ``SecretStr`` and print masked. Each section lives in its own
module; this one assembles :class:`Config` and re-exports the sections.
"""

from __future__ import annotations

from pydantic import Field

from hector_py.config import delegation
from hector_py.config.a2a import A2AConfig
from hector_py.config.agents import AgentConfig
from hector_py.config.automation import (
    NOTIFICATION_EVENTS,
    NotificationConfig,
    NotificationEvent,
    RetryPolicy,
    ScheduleTrigger,
    WebhookTrigger,
)
from hector_py.config.base import DEFAULT_AGENT, DEFAULT_LLM, IMPORT_PATH, PROVIDERS, Strict
from hector_py.config.guardrails import (
    PII_KINDS,
    GuardrailAction,
    GuardrailConfig,
    InjectionCheck,
    InputChecks,
    LengthCheck,
    OutputChecks,
    PatternCheck,
    PiiCheck,
    PiiKind,
    ToolAuthorization,
)
from hector_py.config.knowledge import DocumentStoreConfig, embedder_problems
from hector_py.config.limits import RateLimitsConfig
from hector_py.config.llm import LLMConfig, LLMTimeout, Pricing
from hector_py.config.observability import (
    LoggingConfig,
    MetricsConfig,
    ObservabilityConfig,
    TracingConfig,
)
from hector_py.config.server import ApiKey, AuthConfig, JwtConfig, ServerConfig, TenantBudget
from hector_py.config.storage import StorageConfig
from hector_py.config.tools import HttpMethod, ToolConfig

__all__ = [
    "DEFAULT_AGENT",
    "DEFAULT_LLM",
    "IMPORT_PATH",
    "NOTIFICATION_EVENTS",
    "PII_KINDS",
    "PROVIDERS",
    "AgentConfig",
    "ApiKey",
    "AuthConfig",
    "Config",
    "DocumentStoreConfig",
    "GuardrailAction",
    "GuardrailConfig",
    "HttpMethod",
    "InjectionCheck",
    "InputChecks",
    "JwtConfig",
    "LLMConfig",
    "LLMTimeout",
    "LengthCheck",
    "LoggingConfig",
    "MetricsConfig",
    "NotificationConfig",
    "NotificationEvent",
    "ObservabilityConfig",
    "OutputChecks",
    "PatternCheck",
    "PiiCheck",
    "PiiKind",
    "Pricing",
    "RetryPolicy",
    "ScheduleTrigger",
    "ServerConfig",
    "StorageConfig",
    "TenantBudget",
    "ToolAuthorization",
    "ToolConfig",
    "TracingConfig",
    "WebhookTrigger",
]


class Config(Strict):
    """The whole hector-py configuration."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    llms: dict[str, LLMConfig] = Field(default_factory=lambda: {DEFAULT_LLM: LLMConfig()})
    agents: dict[str, AgentConfig] = Field(
        default_factory=lambda: {DEFAULT_AGENT: AgentConfig()},
        min_length=1,
    )
    rate_limits: RateLimitsConfig = Field(
        default_factory=RateLimitsConfig,
        description="Requests and tokens per minute per tenant (per process).",
    )
    remote_agents: dict[str, delegation.RemoteAgentConfig] = Field(
        default_factory=dict, description="Agents of other A2A servers, used as a2a:NAME tools."
    )
    max_delegation_depth: int = Field(
        3, ge=1, le=10, description="Most hops of a chain of agents delegating (agent:NAME tools)."
    )
    default_agent: str | None = Field(
        None, description="Agent served at / and the well-known card (default: the first)."
    )
    tools: dict[str, ToolConfig] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    a2a: A2AConfig = Field(default_factory=A2AConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    guardrails: dict[str, GuardrailConfig] = Field(default_factory=dict)
    budgets: dict[str, TenantBudget] = Field(
        default_factory=dict, description="Token budgets by tenant; other tenants are unlimited."
    )
    document_stores: dict[str, DocumentStoreConfig] = Field(
        default_factory=dict, description="Folders of documents agents search (knowledge:)."
    )

    def secret_values(self) -> list[str]:
        """Every secret in the config, to keep out of logs, spans and payloads."""
        values = [llm.api_key for llm in self.llms.values() if llm.api_key]
        values += [k.key if isinstance(k, ApiKey) else k for k in self.server.auth.api_keys]
        values += list(self.observability.tracing.headers.values())
        values += list(self.observability.metrics.otlp.headers.values())
        values += [v for tool in self.tools.values() for v in tool.headers.values()]
        values += [v for tool in self.tools.values() for v in tool.env.values()]
        values += [v for remote in self.remote_agents.values() for v in remote.headers.values()]
        for agent in self.agents.values():
            for hook in agent.notifications:
                values += [*hook.headers.values(), *([hook.secret] if hook.secret else [])]
            if isinstance(agent.trigger, WebhookTrigger):
                values.append(agent.trigger.secret)
        if self.storage.dsn is not None:
            values.append(self.storage.dsn)
        values += [s.index.dsn for s in self.document_stores.values() if s.index.dsn]
        return [value.get_secret_value() for value in values]

    def reference_problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Cross-references that point nowhere, as (config path, message) pairs."""
        problems: list[tuple[tuple[str, ...], str]] = []
        if self.server.workers > 1 and self.storage.type == "memory":
            problems.append(
                (
                    ("server", "workers"),
                    f"{self.server.workers} workers on the memory store would each keep their own"
                    " tasks, sessions and budgets; use storage type sqlite (one host) or"
                    " postgres (several hosts)",
                )
            )
        for name, llm in self.llms.items():
            for index, other in enumerate(llm.fallbacks):
                if other not in self.llms or other == name:
                    why = "itself" if other == name else f"unknown llm '{other}'"
                    known = ", ".join(sorted(set(self.llms) - {name})) or "none"
                    where = ("llms", name, "fallbacks", str(index))
                    problems.append((where, f"{why} (known: {known})"))
        problems += delegation.problems(self.agents, self.max_delegation_depth, self.remote_agents)
        for name, agent in self.agents.items():
            if agent.llm not in self.llms:
                known = ", ".join(sorted(self.llms)) or "none"
                problems.append(
                    (("agents", name, "llm"), f"unknown llm '{agent.llm}' (known: {known})")
                )
            for index, guardrail in enumerate(agent.guardrails):
                if guardrail not in self.guardrails:
                    known = ", ".join(sorted(self.guardrails)) or "none"
                    problems.append(
                        (
                            ("agents", name, "guardrails", str(index)),
                            f"unknown guardrail '{guardrail}' (known: {known})",
                        )
                    )
            problems += _knowledge_problems(name, agent, self.document_stores)
        paths: dict[str, str] = {}
        for name, agent in self.agents.items():
            if isinstance(agent.trigger, WebhookTrigger) and agent.trigger.path:
                path = agent.trigger.path
                segment = path.removeprefix("/webhooks/")  # /webhooks/{agent} is every agent's
                owner = paths.get(path) or (segment if segment in self.agents else None)
                if owner is not None and owner != name:
                    problems.append(
                        (("agents", name, "trigger", "path"), f"{path} is taken by agent '{owner}'")
                    )
                paths[path] = name
        providers = {name: llm.provider for name, llm in self.llms.items()}
        for name, store in self.document_stores.items():
            problems += embedder_problems(name, store, providers)
            kind, dsn = store.index.type, store.index.dsn
            if kind == "postgres" and dsn is None and self.storage.type != "postgres":
                problems.append(
                    (
                        ("document_stores", name, "index", "dsn"),
                        "required for a postgres index (or use storage.type: postgres)",
                    )
                )
        if self.default_agent is not None and self.default_agent not in self.agents:
            problems.append((("default_agent",), f"unknown agent '{self.default_agent}'"))
        return problems

    @property
    def default_agent_name(self) -> str:
        """The agent served at ``/`` and ``/.well-known/agent-card.json``."""
        return self.default_agent or next(iter(self.agents))


def _knowledge_problems(
    name: str, agent: AgentConfig, stores: dict[str, DocumentStoreConfig]
) -> list[tuple[tuple[str, ...], str]]:
    """An agent's ``knowledge:`` names that are not ``document_stores``."""
    known = ", ".join(sorted(stores)) or "none"
    problems: list[tuple[tuple[str, ...], str]] = [
        (
            ("agents", name, "knowledge", str(index)),
            f"unknown document store '{store}' (known: {known})",
        )
        for index, store in enumerate(agent.knowledge)
        if store not in stores
    ]
    if agent.inject is not None and not agent.knowledge:
        problems.append((("agents", name, "inject"), "needs knowledge: [STORE, ...]"))
    return problems
