"""Pydantic models for the hector-py configuration file.

Every model forbids unknown keys, so a typo is an error rather than a silently
ignored setting. Secrets are ``SecretStr`` and print masked.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hector_py.config.names import LogFormat, LogLevel, ProviderName
from hector_py.observability.redact import compile_rule

PROVIDERS: tuple[ProviderName, ...] = get_args(ProviderName)
IMPORT_PATH = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*"

DEFAULT_AGENT = "assistant"
DEFAULT_LLM = "default"


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


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
    auth: AuthConfig = Field(default_factory=lambda: AuthConfig())


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
    pricing: Pricing | None = Field(
        None, description="USD per million tokens; feeds llm_cost_usd_total."
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


def _valid_regexes(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise PydanticCustomError(
                "regex",
                "'{pattern}' is not a valid regex ({error})",
                {"pattern": pattern, "error": str(exc)},
            ) from None
    return patterns


PiiKind = Literal["email", "phone", "card", "ssn"]
PII_KINDS: tuple[PiiKind, ...] = get_args(PiiKind)
GuardrailAction = Literal["block", "redact", "warn"]


class LengthCheck(Strict):
    """Input longer than ``max_chars`` characters is a violation."""

    max_chars: int = Field(ge=1)
    action: Literal["block", "warn"] = "block"


class PatternCheck(Strict):
    """Text matching any of ``patterns`` (regexes, case-insensitive) is a violation."""

    patterns: list[str] = Field(min_length=1)
    action: GuardrailAction = "block"

    _check_patterns = field_validator("patterns")(_valid_regexes)


class InjectionCheck(Strict):
    """Prompt-injection heuristics ("ignore previous instructions", role overrides...)."""

    action: Literal["block", "warn"] = "block"


class PiiCheck(Strict):
    """Output containing PII of these kinds (``logging.redact``'s detectors)."""

    kinds: list[PiiKind] = Field(default_factory=lambda: list(PII_KINDS))
    action: GuardrailAction = "redact"


class InputChecks(Strict):
    """Checks on the user's message before the agent runs."""

    max_length: LengthCheck | None = None
    blocked_patterns: PatternCheck | None = None
    prompt_injection: InjectionCheck | None = None


class OutputChecks(Strict):
    """Checks on the agent's reply before it is returned or saved."""

    pii: PiiCheck | None = None
    blocked_content: PatternCheck | None = None


class ToolAuthorization(Strict):
    """Which tools the agent may run: ``allow`` (all when unset) minus ``deny``."""

    allow: list[str] | None = None
    deny: list[str] = Field(default_factory=list)


class GuardrailConfig(Strict):
    """A named set of input, output and tool checks that agents refer to."""

    chain_mode: Literal["fail_fast", "collect_all"] = Field(
        "fail_fast", description="fail_fast: stop at the first violation; collect_all: run all."
    )
    input: InputChecks = Field(default_factory=InputChecks)
    output: OutputChecks = Field(default_factory=OutputChecks)
    tools: ToolAuthorization | None = None
    blocked_reply: str = Field(
        "The reply was withheld by a content guardrail.",
        description="Replaces an output blocked by a check with action: block.",
    )


NotificationEvent = Literal["task.started", "task.completed", "task.failed"]
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = get_args(NotificationEvent)


class RetryPolicy(Strict):
    """Attempts of one delivery; waits double from ``initial_delay`` up to ``max_delay``."""

    max_attempts: int = Field(3, ge=1, le=20)
    initial_delay: float = Field(1.0, ge=0)
    max_delay: float = Field(30.0, ge=0)


class NotificationConfig(Strict):
    """An outbound webhook: a JSON POST to ``url`` on each of ``events``."""

    url: str = Field(pattern=r"^https?://")
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(NOTIFICATION_EVENTS), min_length=1
    )
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    secret: SecretStr | None = Field(
        None, description="Signs the body: X-Hector-Signature: sha256=<hex HMAC-SHA256>."
    )
    timeout: float = Field(10.0, gt=0, description="Seconds per attempt.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


class _Trigger(Strict):
    tenant: str = Field(
        "", description="Tenant the runs belong to: their tokens count against its budget."
    )


class ScheduleTrigger(_Trigger):
    """Run the agent on a cron schedule inside ``serve``."""

    type: Literal["schedule"]
    cron: str = Field(description="Five-field cron expression, e.g. '*/5 * * * *'.")
    timezone: str = Field("UTC", description="IANA time zone the cron fields are read in.")
    input: str = Field("Scheduled run.", min_length=1, description="The message each run gets.")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise PydanticCustomError(
                "cron", "'{value}' is not a five-field cron expression", {"value": value}
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "unknown time zone '{value}'", {"value": value}
            ) from None
        return value


class WebhookTrigger(_Trigger):
    """Run the agent on a signed ``POST /webhooks/{agent}`` (or ``path``)."""

    type: Literal["webhook"]
    path: str | None = Field(
        None,
        pattern=r"^/webhooks(/[A-Za-z0-9._~-]+)+$",
        description="An extra route under /webhooks/ for this agent.",
    )
    secret: SecretStr = Field(description="HMAC-SHA256 key the sender signs the body with.")
    signature_header: str = "X-Hector-Signature"
    input: str = Field(
        "{body}",
        min_length=1,
        description="Template of the message: {body} is the raw body, {body.a.b} a JSON field.",
    )
    response: Literal["sync", "async"] = Field(
        "sync", description="sync: answer with the result; async: 202 with the task id at once."
    )


class AgentConfig(Strict):
    """An agent: an LLM, an instruction and the tools it may use."""

    name: str | None = Field(None, description="Display name (default: the agent's key).")
    description: str = "A hector-py agent."
    llm: str = DEFAULT_LLM
    instruction: str = "You are a helpful assistant."
    tools: list[str] = Field(default_factory=list)
    max_concurrent_runs: int | None = Field(
        None, ge=1, description="This agent's runs at once (within server.max_concurrent_runs)."
    )
    max_iterations: int = Field(
        10, ge=1, le=100, description="Most LLM calls in one run (tool loops included)."
    )
    history_messages: int = Field(
        50, ge=0, description="Most earlier session messages sent to the model."
    )
    guardrails: list[str] = Field(
        default_factory=list, description="Names of top-level guardrails, applied in order."
    )
    notifications: list[NotificationConfig] = Field(
        default_factory=list, description="Outbound webhooks on task.started/completed/failed."
    )
    trigger: ScheduleTrigger | WebhookTrigger | None = Field(
        None, discriminator="type", description="Run on a schedule or on a signed webhook."
    )


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
_HTTP_TOOL_FIELDS: tuple[str, ...] = ("method", "url", "parameters", "headers")
_HTTP_REQUEST_FIELDS: tuple[str, ...] = ("allowed_hosts", "methods")


class ToolConfig(Strict):
    """A tool agents enable by name: a built-in's settings, or a declared HTTP tool.

    Built-ins are configured under their own name (``http_request`` is off until it is
    listed here). ``type: http`` declares a new tool that calls ``url``.
    """

    type: Literal["builtin", "http"] = "builtin"
    description: str | None = Field(None, description="Shown to the model (default: built-in's).")
    enabled: bool = True
    timeout: float = Field(30.0, gt=0, le=3600, description="Seconds before a call is abandoned.")
    max_response_bytes: int = Field(
        65536, gt=0, description="HTTP tools: response bytes kept; the rest is cut off."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="http_request only: hosts it may call, `host` (any port) or `host:port`.",
    )
    methods: tuple[HttpMethod, ...] = Field(
        ("GET", "POST"), min_length=1, description="http_request only: allowed methods."
    )
    method: HttpMethod = Field("GET", description="type http: the request method.")
    url: str | None = Field(
        None, description="type http: URL template; {name} is replaced by that argument, encoded."
    )
    parameters: dict[str, Any] | None = Field(
        None,
        description="type http: JSON Schema of the arguments (default: each {name} a string).",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="type http: request headers (secret values)."
    )

    @model_validator(mode="after")
    def _fields_match_type(self) -> ToolConfig:
        if self.type == "http":
            if self.url is None:
                raise PydanticCustomError("tool_config", "url is required for type: http")
            misplaced, owner = _HTTP_REQUEST_FIELDS, "the http_request built-in"
        else:
            misplaced, owner = _HTTP_TOOL_FIELDS, "type: http"
        extra = [name for name in misplaced if name in self.model_fields_set]
        if extra:
            raise PydanticCustomError(
                "tool_config",
                "{fields}: only for {owner}",
                {"fields": ", ".join(extra), "owner": owner},
            )
        return self


class StorageConfig(Strict):
    """Where tasks and sessions are kept."""

    type: Literal["memory", "sqlite"] = "memory"
    path: str = "hector.db"
    max_tasks: int = Field(
        10_000,
        ge=1,
        description="memory only: tasks kept; past it, those finished longest ago are"
        " forgotten (running ones never).",
    )
    max_sessions: int = Field(
        10_000,
        ge=1,
        description="memory only: session histories kept; past it, the least recently used"
        " is forgotten.",
    )

    @model_validator(mode="after")
    def _bounds_only_in_memory(self) -> StorageConfig:
        bounds = [name for name in ("max_tasks", "max_sessions") if name in self.model_fields_set]
        if self.type != "memory" and bounds:
            raise PydanticCustomError(
                "storage_config", "{fields}: only for type: memory", {"fields": ", ".join(bounds)}
            )
        return self


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
    payload_max_chars: int = Field(
        4096, ge=64, description="Captured prompts/completions are cut to this many characters."
    )
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    compression: Literal["gzip", "none"] = "gzip"
    timeout: float = Field(10.0, gt=0, description="Seconds one export may take.")
    environment: str | None = Field(None, description="deployment.environment resource value.")


class ObservabilityConfig(Strict):
    """Metrics and tracing."""

    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)


class LoggingConfig(Strict):
    """Process log output."""

    level: LogLevel = "info"
    format: LogFormat = "text"
    file: str | None = Field(None, description="Log file path (default: stderr).")
    redact: list[str] = Field(
        default_factory=list,
        description="PII to mask in logs and captured payloads: email, phone, card, ssn, "
        "or a regex (replaced by [REDACTED]).",
    )

    @field_validator("redact")
    @classmethod
    def _valid_rules(cls, rules: list[str]) -> list[str]:
        for rule in rules:
            try:
                compile_rule(rule)
            except re.error as exc:
                raise PydanticCustomError(
                    "redact",
                    "'{rule}' is neither email, phone, card, ssn nor a valid regex ({error})",
                    {"rule": rule, "error": str(exc)},
                ) from None
        return rules


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
    guardrails: dict[str, GuardrailConfig] = Field(default_factory=dict)
    budgets: dict[str, TenantBudget] = Field(
        default_factory=dict, description="Token budgets by tenant; other tenants are unlimited."
    )

    def secret_values(self) -> list[str]:
        """Every secret in the config, to keep out of logs, spans and payloads."""
        values = [llm.api_key for llm in self.llms.values() if llm.api_key]
        values += [k.key if isinstance(k, ApiKey) else k for k in self.server.auth.api_keys]
        values += list(self.observability.tracing.headers.values())
        values += [v for tool in self.tools.values() for v in tool.headers.values()]
        for agent in self.agents.values():
            for hook in agent.notifications:
                values += [*hook.headers.values(), *([hook.secret] if hook.secret else [])]
            if isinstance(agent.trigger, WebhookTrigger):
                values.append(agent.trigger.secret)
        return [value.get_secret_value() for value in values]

    def reference_problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Cross-references that point nowhere, as (config path, message) pairs."""
        problems: list[tuple[tuple[str, ...], str]] = []
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
        if self.default_agent is not None and self.default_agent not in self.agents:
            problems.append((("default_agent",), f"unknown agent '{self.default_agent}'"))
        return problems

    @property
    def default_agent_name(self) -> str:
        """The agent served at ``/`` and ``/.well-known/agent-card.json``."""
        return self.default_agent or next(iter(self.agents))
