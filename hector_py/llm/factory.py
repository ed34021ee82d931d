"""Build the LLM client an ``llms:`` entry describes."""

from __future__ import annotations

import importlib
from typing import Any

import aiohttp

from hector_py.config.loader import ConfigError, Problem
from hector_py.config.model import LLMConfig
from hector_py.llm.anthropic import AnthropicLLM
from hector_py.llm.base import LLM
from hector_py.llm.demo import DemoLLM
from hector_py.llm.gemini import GeminiLLM
from hector_py.llm.http import InjectHeaders, OnHeadroom, OnRetry
from hector_py.llm.ollama import OllamaLLM
from hector_py.llm.openai import OpenAILLM
from hector_py.llm.remote import RemoteLLM

_BUILTIN: dict[str, type[RemoteLLM]] = {
    cls.provider: cls for cls in (OpenAILLM, AnthropicLLM, GeminiLLM, OllamaLLM)
}
_INTERFACE = ("provider", "model", "complete", "stream")


def build_llm(
    name: str,
    config: LLMConfig,
    session: aiohttp.ClientSession,
    *,
    on_retry: OnRetry | None = None,
    inject_headers: InjectHeaders | None = None,
    on_headroom: OnHeadroom | None = None,
) -> LLM:
    """The client for ``llms.<name>``, using the app's shared HTTP ``session``.

    ``provider`` is a built-in name or ``module.path:ClassName``, a class constructed as
    ``Cls(config=config, session=session)``; a class that cannot be imported or built is a
    ``ConfigError`` naming ``llms.<name>.provider``. The hooks go to built-in HTTP providers.
    """
    if config.provider == "demo":
        return DemoLLM(model=config.model, stream_delay=config.stream_delay)
    builtin = _BUILTIN.get(config.provider)
    if builtin is not None:
        return builtin(
            config,
            session,
            on_retry=on_retry,
            inject_headers=inject_headers,
            on_headroom=on_headroom,
        )
    module_name, _, class_name = config.provider.partition(":")
    try:
        cls: Any = getattr(importlib.import_module(module_name), class_name)
        llm = cls(config=config, session=session)
    except Exception as exc:
        raise _problem(
            name, f"cannot use '{config.provider}': {type(exc).__name__}: {exc}"
        ) from None
    missing = [attribute for attribute in _INTERFACE if not hasattr(llm, attribute)]
    if missing:
        raise _problem(name, f"'{config.provider}' is not an LLM: it lacks {', '.join(missing)}")
    return llm  # type: ignore[no-any-return]


def _problem(name: str, message: str) -> ConfigError:
    return ConfigError([Problem(f"llms.{name}.provider", message, "config")])
