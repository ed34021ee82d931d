"""``storage:``: where tasks and sessions are kept."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from hector_py.config.base import Strict


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
