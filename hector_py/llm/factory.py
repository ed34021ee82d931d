"""Build the LLM client an ``llms:`` entry describes."""

from __future__ import annotations

from hector_py.config.loader import ConfigError, Problem
from hector_py.config.model import LLMConfig
from hector_py.llm.base import LLM
from hector_py.llm.demo import DemoLLM


def build_llm(name: str, config: LLMConfig) -> LLM:
    """The client for ``llms.<name>``; a provider not built yet is a config error."""
    if config.provider == "demo":
        return DemoLLM(model=config.model, stream_delay=config.stream_delay)
    raise ConfigError(
        [
            Problem(
                f"llms.{name}.provider",
                f"provider '{config.provider}' is not available yet in this version; "
                "use 'demo' (the offline model)",
                "config",
            )
        ]
    )
