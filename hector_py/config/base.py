"""Shared base of every config section, and names other sections refer to."""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel, ConfigDict

from hector_py.config.names import ProviderName

PROVIDERS: tuple[ProviderName, ...] = get_args(ProviderName)
IMPORT_PATH = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*"

DEFAULT_AGENT = "assistant"
DEFAULT_LLM = "default"


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
