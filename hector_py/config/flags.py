"""Turn ``hector serve`` flags into config overrides, zero-config included."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hector_py.config.model import Config
from hector_py.config.names import ProviderName

# Provider -> (env var holding its key, model used when only the key is known).
PROVIDER_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "openai": (("OPENAI_API_KEY",), "gpt-4o"),
    "anthropic": (("ANTHROPIC_API_KEY",), "claude-sonnet-4-0"),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY"), "gemini-2.5-flash"),
}
DEFAULT_MODELS: dict[str, str] = {
    **{provider: model for provider, (_, model) in PROVIDER_KEYS.items()},
    "ollama": "llama3.2",
    "demo": "demo",
}
_MODEL_PREFIXES: tuple[tuple[str, ProviderName], ...] = (
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt-", "openai"),
    ("claude", "anthropic"),
    ("gemini", "gemini"),
    ("demo", "demo"),
    ("llama", "ollama"),
    ("qwen", "ollama"),
    ("mistral", "ollama"),
    ("phi", "ollama"),
    ("gemma", "ollama"),
    ("deepseek", "ollama"),
)


@dataclass(frozen=True)
class ServeFlags:
    """The config-shaping flags of ``hector serve`` (``None`` = not given)."""

    model: str | None = None
    provider: ProviderName | None = None
    api_key: str | None = None
    base_url: str | None = None
    instruction: str | None = None
    host: str | None = None
    port: int | None = None
    workers: int | None = None
    observe: bool = False
    metrics: bool = False
    tracing_endpoint: str | None = None
    log_level: str | None = None
    log_format: str | None = None
    log_file: str | None = None
    docs_folder: str | None = None
    tools: str | None = None
    approve_tools: bool | None = None
    mcp_url: str | None = None


DOCS_STORE = "docs"
MCP_TOOLSET = "mcp"  # the toolset key --mcp-url declares


def infer_provider(model: str, base_url: str | None = None) -> ProviderName | None:
    """The provider a model name implies; OpenAI-compatible when only a base URL is given."""
    name = model.lower()
    if ":" in name:
        return "ollama"
    for prefix, provider in _MODEL_PREFIXES:
        if name.startswith(prefix):
            return provider
    return "openai" if base_url else None


def provider_from_env(environ: Mapping[str, str]) -> ProviderName | None:
    """The first provider whose API key is set in the environment."""
    for provider, (names, _) in PROVIDER_KEYS.items():
        if any(environ.get(name) for name in names):
            return provider  # type: ignore[return-value]
    return None


def overrides_for(flags: ServeFlags, base: Config) -> dict[str, Any]:
    """Nested config overrides for ``flags``, aimed at ``base``'s default agent."""
    agent_name = base.default_agent_name
    llm: dict[str, Any] = {}
    if flags.model:
        llm["model"] = flags.model
        provider = flags.provider or infer_provider(flags.model, flags.base_url)
        if provider is None:
            raise ValueError(
                f"--model: cannot tell the provider of '{flags.model}'; pass --provider"
            )
        llm["provider"] = provider
    elif flags.provider:
        llm["provider"] = flags.provider
        llm["model"] = DEFAULT_MODELS[flags.provider]
    for key in ("api_key", "base_url"):
        if getattr(flags, key):
            llm[key] = getattr(flags, key)
    out: dict[str, Any] = {}
    if llm:
        out["llms"] = {base.agents[agent_name].llm: llm}
    agent: dict[str, Any] = {}
    if flags.instruction:
        agent["instruction"] = flags.instruction
    if flags.docs_folder:
        out["document_stores"] = {DOCS_STORE: {"source": {"path": flags.docs_folder}}}
        knowledge = base.agents[agent_name].knowledge
        agent["knowledge"] = [*knowledge, DOCS_STORE] if DOCS_STORE not in knowledge else knowledge
    tools = _agent_tools(flags)
    if tools:
        agent["tools"] = list(dict.fromkeys([*base.agents[agent_name].tools, *tools]))
    if flags.mcp_url:
        # unprefixed, as in Hector: the server's tool names reach the model as they are
        out["tools"] = {MCP_TOOLSET: {"type": "mcp", "url": flags.mcp_url, "prefix": ""}}
    if flags.approve_tools is not None:
        listed = agent.get("tools", base.agents[agent_name].tools)
        keys = {n.partition(".")[0] for n in listed if not n.startswith("agent:")}
        keys |= set(base.tools) | ({MCP_TOOLSET} if flags.mcp_url else set())
        for key in keys:
            out.setdefault("tools", {}).setdefault(key, {})["require_approval"] = (
                flags.approve_tools
            )
    if agent:
        out["agents"] = {agent_name: agent}
    server = {
        k: v
        for k, v in (("host", flags.host), ("port", flags.port), ("workers", flags.workers))
        if v is not None
    }
    if server:
        out["server"] = server
    observability: dict[str, Any] = {}
    if flags.observe or flags.metrics:
        observability["metrics"] = {"enabled": True}
    if flags.observe:
        observability["console"] = {"enabled": True}
    tracing: dict[str, Any] = {}
    if flags.observe:  # the flight recorder on: failed, slow and costly runs always kept
        tracing.update(enabled=True, keep={"enabled": True})
    if flags.tracing_endpoint == "stdout":  # spans on stdout, no collector needed
        tracing.update(enabled=True, exporter="stdout")
    elif flags.tracing_endpoint:
        tracing.update(enabled=True, endpoint=flags.tracing_endpoint)
    if tracing:
        observability["tracing"] = tracing
    if observability:
        out["observability"] = observability
    logging = {
        k: v
        for k, v in (
            ("level", flags.log_level),
            ("format", flags.log_format),
            ("file", flags.log_file),
        )
        if v is not None
    }
    if logging:
        out["logging"] = logging
    return out


def _agent_tools(flags: ServeFlags) -> list[str]:
    """The tools ``--tools`` (``all``: every built-in without settings) and ``--mcp-url`` add."""
    names = [n.strip() for n in (flags.tools or "").split(",") if n.strip()]
    if "all" in names:
        from hector_py.agent.tools.builtins import BUILTINS

        names = [n for n in names if n != "all"] + list(BUILTINS)
    return names + ([MCP_TOOLSET] if flags.mcp_url else [])


def zero_config_flags(flags: ServeFlags, environ: Mapping[str, str]) -> tuple[ServeFlags, bool]:
    """Fill in the provider from the env when no file and no model is given.

    Returns the flags to use and whether the offline demo model was chosen by default.
    """
    if flags.model or flags.provider:
        return flags, False
    provider = provider_from_env(environ)
    if provider is None:
        return ServeFlags(**{**vars(flags), "provider": "demo"}), True
    return ServeFlags(**{**vars(flags), "provider": provider}), False


def missing_keys(config: Config, environ: Mapping[str, str]) -> list[str]:
    """One warning per model an agent uses whose provider's own endpoint needs a key that
    neither the config nor the environment holds (its first request would fail)."""
    used = {agent.llm for agent in config.agents.values()}
    warnings = []
    for name in sorted(used):
        llm = config.llms[name]
        names = PROVIDER_KEYS.get(llm.provider, ((), ""))[0]
        keyless = not any(environ.get(env) for env in names)
        if names and keyless and llm.api_key is None and llm.base_url is None:
            warnings.append(
                f"llms.{name}: no API key for {llm.provider}/{llm.model}: its requests will "
                f"fail until you set {' or '.join(names)} (or api_key in the config)"
            )
    return warnings
