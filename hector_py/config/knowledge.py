"""``document_stores:``: folders of documents an agent can search (``knowledge: [NAME]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from hector_py.config.base import Strict, only_for_type

if TYPE_CHECKING:
    from hector_py.config.storage import StorageConfig

DEFAULT_INCLUDE = (
    "**/*.md",
    "**/*.markdown",
    "**/*.txt",
    "**/*.rst",
    "**/*.html",
    "**/*.htm",
)


class DirectorySource(Strict):
    """The files of a directory, chosen by glob patterns relative to ``path``."""

    type: Literal["directory"] = "directory"
    path: str = Field(description="The folder to index (relative to the working directory).")
    include: list[str] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE),
        description="Glob patterns of files to index; '*' also crosses '/', and '**/x'"
        " matches 'x' at the top too.",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Glob patterns of files to leave out."
    )
    watch: bool = Field(True, description="Pick up added, changed and removed files while serving.")
    max_file_bytes: int = Field(
        10_000_000, ge=1, description="Bigger files are skipped (logged once, counted)."
    )


class ChunkingConfig(Strict):
    """How documents are cut: on heading and paragraph boundaries, up to ``size``."""

    size: int = Field(1200, ge=50, le=100_000, description="Most characters (or tokens) a chunk.")
    overlap: int = Field(
        150, ge=0, description="Characters (or tokens) repeated from the end of the previous chunk."
    )
    unit: Literal["characters", "tokens"] = Field(
        "characters", description="tokens: whitespace-separated words."
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap >= self.size:
            raise PydanticCustomError("chunking", "overlap must be smaller than size", {})
        return self


class IndexConfig(Strict):
    """Where the index lives: an SQLite file (FTS5 full-text search, BM25 ranking) or
    PostgreSQL (``tsvector`` full-text search, shared by every replica)."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, validate_by_name=True, serialize_by_alias=True
    )

    type: Literal["sqlite", "postgres"] = "sqlite"
    path: str | None = Field(
        None, description="sqlite: the index file (default: .hector/knowledge/{store}.db)."
    )
    dsn: SecretStr | None = Field(
        None,
        description="postgres: the database (default: storage.dsn, with the postgres store).",
    )
    schema_name: str | None = Field(
        None,
        alias="schema",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="postgres: the schema (default: storage.schema).",
    )

    @model_validator(mode="after")
    def _fields_of_type(self) -> IndexConfig:
        own = {"sqlite": ("path",), "postgres": ("dsn", "schema_name")}
        only_for_type(self, self.type, own, "index_config")
        return self


class EmbedderConfig(Strict):
    """Vectors for hybrid search, from an ``llms:`` entry's endpoint (its base URL, key,
    timeouts and retries): ``openai`` (any OpenAI-compatible ``/embeddings``) or ``ollama``."""

    llm: str = Field(description="The llms: entry whose endpoint computes the embeddings.")
    model: str = Field(description="The embedding model, e.g. text-embedding-3-small.")
    batch_size: int = Field(64, ge=1, le=2048, description="Chunks per embeddings request.")
    cost_per_million_tokens: float | None = Field(
        None, ge=0, description="USD; feeds embedding_cost_usd_total."
    )


class DocumentStoreConfig(Strict):
    """A searchable document store."""

    source: DirectorySource
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    embedder: EmbedderConfig | None = Field(
        None, description="With an embedder, search is hybrid: vectors and BM25, fused."
    )
    top_k: int = Field(5, ge=1, le=50, description="Results per search unless the call asks.")

    def index_path(self, name: str) -> str:
        """The index file of the store called ``name``."""
        return self.index.path or f".hector/knowledge/{name}.db"

    def index_database(self, storage: StorageConfig | None) -> tuple[SecretStr | None, str]:
        """A postgres index's (dsn, schema): its own, else the ``storage`` database's."""
        if storage is None:
            return self.index.dsn, self.index.schema_name or "hector"
        return self.index.dsn or storage.dsn, self.index.schema_name or storage.schema_name


EMBEDDING_PROVIDERS = ("openai", "ollama")


def embedder_problems(
    name: str, store: DocumentStoreConfig, providers: dict[str, str]
) -> list[tuple[tuple[str, ...], str]]:
    """Why ``store``'s embedder cannot work with the ``llms:`` (name -> provider)."""
    embedder = store.embedder
    if embedder is None:
        return []
    where = ("document_stores", name, "embedder", "llm")
    if embedder.llm not in providers:
        known = ", ".join(sorted(providers)) or "none"
        return [(where, f"unknown llm '{embedder.llm}' (known: {known})")]
    if providers[embedder.llm] not in EMBEDDING_PROVIDERS:
        return [(where, f"llm '{embedder.llm}' must be an openai or ollama provider")]
    return []
