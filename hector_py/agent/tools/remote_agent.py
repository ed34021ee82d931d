"""An agent of another A2A server as a tool (``remote_agents:`` + ``tools: [a2a:NAME]``),
through our own client (``hector_py/client.py``) over the server's HTTP session, so the
call carries ``traceparent`` and the remote run joins the caller's trace. The remote
task's reported usage is added to the delegating run's meter (budget, cost, task usage);
one delegating conversation maps to one remote ``contextId``. A remote task that ends in
``input-required`` pauses the delegating run (``InputNeeded``); the person's answer goes
to that same remote task. The card is fetched at
start-up for the tool's description; until it answers, ``/health`` shows the agent as
unavailable (the server is not ready) and a background task retries."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import aiohttp

from hector_py.agent.approval import InputNeeded
from hector_py.agent.runner import RunContext
from hector_py.agent.tools.delegate import SCHEMA, Delegation, conversation
from hector_py.agent.tools.registry import ToolError
from hector_py.client import CallError, Peer
from hector_py.config.delegation import RemoteAgentConfig
from hector_py.llm.base import ToolSpec
from hector_py.observability.delegation import remote_agent_span
from hector_py.observability.telemetry import Telemetry

log = logging.getLogger("hector.tools")
SESSIONS = 1000
RETRY_S = 5.0
REFRESH_S = (60.0, 300.0, 3600.0)
"""A read card is fetched again after its ``max-age`` (clamped to the first and last;
the middle one without a ``max-age``), revalidated with its ``ETag``."""


class RemoteAgentTool(Delegation):
    """Ask an agent of another A2A server (see the module docstring)."""

    kind = "a2a"

    def __init__(
        self,
        name: str,
        config: RemoteAgentConfig,
        http: aiohttp.ClientSession,
        telemetry: Telemetry,
    ) -> None:
        super().__init__(f"a2a:{name}", telemetry.delegation)
        self.telemetry = telemetry
        self.agent_name = name
        """The remote agent's own name, once its card told it."""
        self.name = name
        self.config = config
        self.timeout = config.timeout
        headers = {k: v.get_secret_value() for k, v in config.headers.items()}
        protocol = "1.0" if config.protocol == "auto" else config.protocol
        self.peer = Peer(http, config.url, headers, config.timeout, protocol)
        tool = re.sub(r"[^A-Za-z0-9_-]", "_", name)
        self.spec = ToolSpec(tool, config.description or f"Ask the remote agent {name}.", SCHEMA)
        self.card_error: str | None = "card not fetched yet"
        self.streaming = False  # the card says whether the agent streams
        self._contexts: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._retry: asyncio.Task[None] | None = None
        self._etag: str | None = None
        self._max_age = REFRESH_S[1]

    def start(self) -> None:
        """Fetch the card in the background (start-up never waits for another server),
        trying again every few seconds until it answers."""
        self._retry = asyncio.create_task(self._keep_fetching())

    def close(self) -> None:
        """Stop the background retries."""
        if self._retry is not None:
            self._retry.cancel()

    def health(self) -> dict[str, Any]:
        """``/health``: ``ok`` once the card was read, else ``unavailable`` with why."""
        if self.card_error is None:
            return {"status": "ok", "url": self.config.url}
        return {"status": "unavailable", "url": self.config.url, "reason": self.card_error}

    async def call(self, arguments: dict[str, Any]) -> str:
        """Send ``arguments["message"]``; the remote agent's reply text."""
        parent = await self.delegating_run()
        key = conversation(parent)
        context = self._contexts.get(key) if key else None
        return await self._send(parent, str(arguments["message"]), context)

    async def answer(self, state: dict[str, Any], text: str) -> str:
        """Send ``text`` to the remote task that asked for input (``state``)."""
        parent = await self.delegating_run()
        return await self._send(parent, text, state["context"] or None, state["task"])

    async def abandon(self, state: dict[str, Any]) -> None:
        """The run waiting on the remote task was given up: the remote task is canceled."""
        if state.get("task"):
            await self._cancel(state["task"])

    async def _send(
        self, parent: RunContext | None, text: str, context: str | None, task: str | None = None
    ) -> str:
        remote: list[str] = [task] if task else []  # the remote task's id, once known
        try:
            with remote_agent_span(self.telemetry, self.agent_name, self.config.url):
                if self.streaming:
                    result = await self.peer.stream(text, context, remote.append, task)
                else:
                    result = await self.peer.send(text, context, task)
        except asyncio.CancelledError:  # the delegating run was canceled: so is the remote task
            if remote:
                await asyncio.shield(self._cancel(remote[-1]))
            raise
        except CallError as exc:
            self.counted(parent, False)
            raise ToolError(f"remote agent {self.name}: {exc}") from None
        if parent is not None:  # the remote run's tokens are this run's too
            parent.meter.add(*result.usage)
        key = conversation(parent)
        if key is not None and result.context_id:
            self._contexts[key] = result.context_id
            self._contexts.move_to_end(key)
            while len(self._contexts) > SESSIONS:
                self._contexts.popitem(last=False)
        if result.state == "input_required":  # the person above answers
            asked = result.question or f"the remote agent {self.name} asks for input"
            raise InputNeeded(asked, {"task": result.task_id, "context": result.context_id})
        ok = result.state == "completed"
        self.counted(parent, ok)
        if not ok:
            why = result.error or result.text or "no reason given"
            raise ToolError(f"remote agent {self.name} ended {result.state}: {why}")
        return result.text

    async def _cancel(self, task_id: str) -> None:
        try:
            await self.peer.cancel(task_id)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("remote agent %s: canceling task %s failed: %s", self.name, task_id, exc)

    async def _fetch_card(self) -> bool:
        try:
            found = await self.peer.revalidate_card(10.0, self._etag)
        except CallError as exc:
            if self.card_error != str(exc):
                log.warning("remote agent %s: its card cannot be read: %s", self.name, exc)
            if self._etag is None:  # a card read once stays good while its server is away
                self.card_error = str(exc)
            return False
        low, default, high = REFRESH_S
        self._max_age = min(max(found.max_age or default, low), high)
        if found.card is None:  # 304: ours is current
            return True
        card, self._etag = found.card, found.etag
        self.agent_name = str(card.get("name") or self.name)
        if self.config.description is None:
            skills = "; ".join(
                f"{s.get('name', '')}: {s.get('description', '')}"
                for s in card.get("skills") or []
                if isinstance(s, dict)
            )
            about = str(card.get("description") or f"the remote agent {self.name}")
            described = f"{about} Skills: {skills}" if skills else about
            self.spec = ToolSpec(self.spec.name, described, SCHEMA)
        self.streaming = bool((card.get("capabilities") or {}).get("streaming"))
        if self.config.protocol == "auto":
            self.peer = replace(self.peer, protocol=_protocol(card))
        self.card_error = None
        return True

    async def _keep_fetching(self) -> None:
        """Until the card answers, every few seconds; then again as its caching allows."""
        while not await self._fetch_card():
            await asyncio.sleep(RETRY_S)
        log.info("remote agent %s: card read", self.name)
        while True:
            await asyncio.sleep(self._max_age)
            await self._fetch_card()


def _protocol(card: dict[str, Any]) -> str:
    """The A2A version to speak to a card's agent: 1.0 when it offers it, else 0.3 when
    its card is a v0.3 one."""
    offered = [i.get("protocolVersion", "") for i in card.get("supportedInterfaces") or []]
    if any(str(version).startswith("1.") for version in offered):
        return "1.0"
    return "0.3" if str(card.get("protocolVersion", "")).startswith("0.") else "1.0"
