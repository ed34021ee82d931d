"""An exact-match response cache per model (opt-in, ``llms.<name>.cache``): the key is the
whole request (model, messages with their files, tools, output schema, parameters); only
deterministic calls (temperature 0, unless ``always``) and, unless ``tool_results``, no
turn that carries tool results. In memory, LRU-bounded with a TTL."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from hector_py.config.llm import CacheConfig
from hector_py.llm.base import LLMRequest, LLMResponse


class ResponseCache:
    """Answers of one model by request key."""

    def __init__(self, config: CacheConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, LLMResponse]] = OrderedDict()

    def key(self, request: LLMRequest, settings: Any) -> str | None:
        """The request's key, or ``None`` when it may not be cached."""
        temperature = getattr(settings, "temperature", None)
        if not self.config.always and temperature != 0:
            return None
        if not self.config.tool_results and any(m.role == "tool" for m in request.messages):
            return None
        shape = {
            "model": [getattr(settings, "provider", ""), getattr(settings, "model", "")],
            "params": [temperature, getattr(settings, "max_tokens", None)],
            "messages": [
                [
                    m.role,
                    m.content,
                    [[c.id, c.name, c.arguments] for c in m.tool_calls],
                    m.tool_call_id,
                    m.name,
                    [[f.media_type, hashlib.sha256(f.data).hexdigest()] for f in m.attachments],
                ]
                for m in request.messages
            ],
            "tools": [[t.name, t.description, t.parameters] for t in request.tools],
            "output": request.output.schema if request.output is not None else None,
        }
        return hashlib.sha256(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def get(self, key: str) -> LLMResponse | None:
        """The stored answer, if fresh."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock() - entry[0] > self.config.ttl_seconds:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, response: LLMResponse) -> None:
        """Keep ``response`` (the least recently used entry goes when full)."""
        self._entries[key] = (self.clock(), response)
        self._entries.move_to_end(key)
        while len(self._entries) > self.config.max_entries:
            self._entries.popitem(last=False)
