"""``Knowledge``: the document stores of a config, indexed in the background, searched by
agents through the ``search_knowledge`` tool or by injecting the best chunks.

No web framework here: the server starts, probes and closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from hector_py.agent.stores.availability import StoreUnavailable
from hector_py.agent.tools.registry import ToolError
from hector_py.config.knowledge import DocumentStoreConfig
from hector_py.config.storage import StorageConfig
from hector_py.knowledge.hybrid import Embeds, fuse
from hector_py.knowledge.store import DocumentStore
from hector_py.knowledge.vectors import Hit
from hector_py.llm.base import ToolSpec
from hector_py.observability.knowledge import KnowledgeTelemetry

log = logging.getLogger("hector.knowledge")
SEARCH_TOOL = "search_knowledge"
SEARCH_TIMEOUT_S = 10.0


def cite(hit: Hit) -> str:
    """Where a hit is: ``path#anchor`` or ``path (lines 3-9)``."""
    if hit.locator.startswith("#"):
        return hit.path + hit.locator
    return f"{hit.path} ({hit.locator})" if hit.locator else hit.path


def render(hits: Iterable[Hit]) -> str:
    """Hits as text for a model, each headed by its source so a reply can cite it."""
    parts = []
    for number, hit in enumerate(hits, 1):
        where = " > ".join(part for part in (hit.title, hit.heading) if part)
        parts.append(f"[{number}] source: {cite(hit)} ({where})\n{hit.text}")
    return "\n\n".join(parts)


class Knowledge:
    """Every document store of a config."""

    def __init__(self, stores: Mapping[str, DocumentStore]) -> None:
        self.stores = dict(stores)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def build(
        cls,
        configs: Mapping[str, DocumentStoreConfig],
        telemetry: KnowledgeTelemetry | None,
        embedders: Mapping[str, Embeds] | None = None,
        storage: StorageConfig | None = None,
    ) -> Knowledge:
        """The stores of ``document_stores:`` (their indexes are opened, not filled),
        with the ``embedders`` of those that have one, by store name; a postgres index
        defaults to the ``storage`` database."""
        embedders = embedders or {}
        return cls(
            {
                name: DocumentStore(name, config, telemetry, embedders.get(name), storage)
                for name, config in configs.items()
            }
        )

    def start(self) -> None:
        """Index every store in the background, then watch those with ``watch: true``; a
        store whose first pass fails serves what its index holds and retries."""
        self._tasks = [asyncio.create_task(self._keep(store)) for store in self.stores.values()]

    async def _keep(self, store: DocumentStore) -> None:
        report = await store.attempt(failed=False)
        failed = report is None
        if report is None:
            store.ready = True  # serve what the index already holds, retrying meanwhile
        else:
            log.info(
                "document store %s: %d documents, %d chunks indexed in %.1f s (%d skipped)",
                store.name,
                report.documents,
                report.chunks,
                report.seconds,
                report.skipped,
            )
        if not (store.config.source.watch and store.root.is_dir()):
            if failed:
                await store.retry(self._stop)
            return
        try:
            await store.watch(self._stop, failed=failed)
        except Exception as exc:  # e.g. out of inotify watches: poll instead
            log.warning(
                "document store %s: cannot watch %s (%s); polling it", store.name, store.root, exc
            )
        else:
            return
        try:
            await store.watch(self._stop, polling=True, failed=failed)
        except Exception as exc:  # e.g. the folder was removed: serve what is indexed
            log.warning("document store %s: stopped watching %s: %s", store.name, store.root, exc)

    def health(self) -> dict[str, Any]:
        """``indexing`` until every store's first pass is done, then ``ok``; each store's
        state and counts after its last refresh."""
        stores = {
            name: {
                "status": "ok" if store.ready else "indexing",
                "documents": store.last.documents,
                "chunks": store.last.chunks,
                "skipped": store.last.skipped,
            }
            for name, store in self.stores.items()
        }
        ready = all(store.ready for store in self.stores.values())
        return {"status": "ok" if ready else "indexing", "stores": stores}

    async def search(self, names: Iterable[str], query: str, top_k: int) -> list[Hit]:
        """The ``top_k`` best chunks of the stores called ``names``."""
        found = await asyncio.gather(*(self.stores[n].search(query, top_k) for n in names))
        if len(found) == 1:
            return found[0]
        # Scores of different indexes do not compare (BM25 depends on each corpus): the
        # rankings are fused by rank instead, each store's chunks distinct.
        return fuse(found, key=lambda number, hit: (number, hit.chunk))[:top_k]

    def tool(self, names: list[str]) -> SearchKnowledgeTool:
        """The ``search_knowledge`` tool over the stores called ``names``."""
        top_k = max(self.stores[name].config.top_k for name in names)
        listed = ", ".join(names)
        spec = ToolSpec(
            SEARCH_TOOL,
            f"Search the documents ({listed}) for passages relevant to a query. Each result"
            " starts with its source (file and section): cite it in the answer.",
            {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "what to look for"},
                    "top_k": {"type": "integer", "description": f"results (default {top_k})"},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        )
        return SearchKnowledgeTool(spec, SEARCH_TIMEOUT_S, self, tuple(names), top_k)

    async def context(self, names: list[str], top_k: int, query: str) -> str | None:
        """The best ``top_k`` chunks for ``query`` as a system message, or ``None`` (also
        when the search fails: the run goes on without them)."""
        try:
            hits = await self.search(names, query, top_k)
        except Exception as exc:  # counted by the search's telemetry
            log.warning("knowledge search for the prompt failed: %s", type(exc).__name__)
            return None
        if not hits:
            return None
        return (
            "Passages from the documents that may help; cite the source of what you use:\n\n"
            + render(hits)
        )

    async def close(self) -> None:
        """Stop watching and close the indexes."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for store in self.stores.values():
            await asyncio.to_thread(store.close)


@dataclass
class SearchKnowledgeTool:
    """``search_knowledge``: a ``Tool`` over some of the stores."""

    spec: ToolSpec
    timeout: float
    knowledge: Knowledge
    stores: tuple[str, ...]
    top_k: int
    kind: ClassVar[str] = "knowledge"  # the Tool protocol's kind, for telemetry

    async def call(self, arguments: dict[str, Any]) -> str:
        """The best chunks for ``query``, each with its source."""
        query = arguments["query"]
        top_k = min(max(int(arguments.get("top_k", self.top_k)), 1), 50)
        try:
            hits = await self.knowledge.search(self.stores, query, top_k)
        except StoreUnavailable as exc:  # the model hears the gist, the log the reason
            log.warning("%s failed: %s", SEARCH_TOOL, exc)
            raise ToolError("the document index is unavailable; try again later") from None
        return render(hits) if hits else f"No passage matches {query!r}."
