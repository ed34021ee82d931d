"""Shared base of every config section, and names other sections refer to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import get_args

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from hector_py.config.names import ProviderName

PROVIDERS: tuple[ProviderName, ...] = get_args(ProviderName)
IMPORT_PATH = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*"

DEFAULT_AGENT = "assistant"
DEFAULT_LLM = "default"


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def only_for_type(
    section: BaseModel, kind: str, own: Mapping[str, Iterable[str]], error: str
) -> None:
    """Refuse the fields ``section`` sets that belong to another ``type`` than ``kind``
    (``own``: each type's own fields; ``schema_name`` is written ``schema``)."""
    for other, names in own.items():
        wrong = [name for name in names if name in section.model_fields_set]
        if other != kind and wrong:
            fields = ", ".join("schema" if name == "schema_name" else name for name in wrong)
            raise PydanticCustomError(
                error, "{fields}: only for type: {kind}", {"fields": fields, "kind": other}
            )
