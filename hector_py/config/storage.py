"""``storage:``: where tasks and sessions are kept."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from hector_py.config.base import Strict, only_for_type

_MEMORY_ONLY = ("max_tasks", "max_sessions")
_SQLITE_ONLY = ("path",)
_POSTGRES_ONLY = ("dsn", "pool", "schema_name")


class PoolConfig(Strict):
    """PostgreSQL connections each process keeps open."""

    min: int = Field(2, ge=0, description="connections opened at start-up and kept.")
    max: int = Field(10, ge=1, description="connections at most (per process).")

    @model_validator(mode="after")
    def _min_not_over_max(self) -> PoolConfig:
        if self.min > self.max:
            raise PydanticCustomError("pool", "min: must be <= max ({max})", {"max": self.max})
        return self


class StorageConfig(Strict):
    """Where tasks and sessions are kept."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, validate_by_name=True, serialize_by_alias=True
    )

    type: Literal["memory", "sqlite", "postgres"] = "memory"
    path: str = Field("hector.db", description="sqlite only: the database file.")
    dsn: SecretStr | None = Field(
        None,
        description="postgres only (required): postgresql://user:password@host:port/db,"
        " e.g. ${DATABASE_URL}.",
    )
    pool: PoolConfig = Field(default_factory=PoolConfig, description="postgres only.")
    schema_name: str = Field(
        "hector",
        alias="schema",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="postgres only: the schema hector's tables live in (created if missing).",
    )
    lease_seconds: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="sqlite and postgres: a process that has not renewed its lease for this"
        " long is taken for dead, and its unfinished tasks are marked failed by another.",
    )
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
    def _fields_of_type(self) -> StorageConfig:
        own = {"memory": _MEMORY_ONLY, "sqlite": _SQLITE_ONLY, "postgres": _POSTGRES_ONLY}
        only_for_type(self, self.type, own, "storage_config")
        if self.type == "postgres" and self.dsn is None:
            raise PydanticCustomError("storage_config", "dsn: required for type: postgres", {})
        return self
