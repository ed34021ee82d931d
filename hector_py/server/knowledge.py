"""The server's side of document stores: embedders over the shared HTTP session, and
offline indexing for ``hector index``."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import aiohttp

from hector_py.config.loader import ConfigError, Problem
from hector_py.config.model import Config, ObservabilityConfig
from hector_py.knowledge.hybrid import Embeds
from hector_py.knowledge.store import DocumentStore, Report
from hector_py.llm.embeddings import Embedder
from hector_py.observability.knowledge import KnowledgeTelemetry
from hector_py.observability.telemetry import Telemetry


def check_sources(config: Config) -> None:
    """Raise ``ConfigError`` for a document store whose folder is not a directory."""
    problems = [
        Problem(
            f"document_stores.{name}.source.path", f"not a directory: {store.source.path}", "config"
        )
        for name, store in config.document_stores.items()
        if not os.path.isdir(store.source.path)
    ]
    if problems:
        raise ConfigError(problems)


def build_embedders(
    config: Config, session: aiohttp.ClientSession, telemetry: Telemetry
) -> dict[str, Embeds]:
    """An ``Embedder`` per store with an ``embedder:``, on its llm's endpoint."""
    embedders: dict[str, Embeds] = {}
    for name, store in config.document_stores.items():
        if store.embedder is None:
            continue
        llm = config.llms[store.embedder.llm]

        def count_retry(
            attempt: int,
            reason: str,
            delay: float,
            provider: str = llm.provider,
            model: str = store.embedder.model,
        ) -> None:
            telemetry.llm_retry(provider, model, attempt, reason, delay)

        embedders[name] = Embedder(llm, store.embedder.model, session, on_retry=count_retry)
    return embedders


@dataclass(frozen=True)
class Indexed:
    """What ``hector index`` did to one store."""

    name: str
    report: Report
    embedded: int


async def index_offline(config: Config, names: list[str]) -> list[Indexed]:
    """Build or refresh the stores called ``names`` (vectors too, with an embedder).

    Raises ``ConfigError`` for a source that is not a directory or an index that cannot
    be opened."""
    check_sources(config)
    telemetry = Telemetry(ObservabilityConfig())
    results = []
    async with aiohttp.ClientSession() as session:
        embedders = build_embedders(config, session, telemetry)
        for name in names:
            store = DocumentStore(
                name,
                config.document_stores[name],
                KnowledgeTelemetry(telemetry),
                embedders.get(name),
                config.storage,
            )
            try:
                report = await asyncio.to_thread(store.refresh)
                results.append(Indexed(name, report, await store.embed_pending()))
            finally:
                await asyncio.to_thread(store.close)
    return results
