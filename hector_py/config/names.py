"""The choice types the CLI needs before pydantic is imported, so ``hector --help``
stays fast; ``model`` uses the same definitions."""

from __future__ import annotations

from typing import Literal

ProviderName = Literal["openai", "anthropic", "ollama", "gemini", "demo"]
LogLevel = Literal["debug", "info", "warn", "error"]
LogFormat = Literal["text", "json"]
