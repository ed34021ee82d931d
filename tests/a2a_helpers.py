"""Helpers for the A2A semantics tests: a2a-sdk clients in either dialect, raw calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from a2a.client import Client, ClientConfig, create_client
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, StreamResponse

from tests.conftest import rpc

DIALECTS = ["1.0", "0.3"]


async def sdk_client(
    url: str, version: str, key: str | None = None, *, streaming: bool = True
) -> Client:
    """An a2a-sdk client of agent ``assistant`` speaking ``version`` (1.0: JsonRpcTransport,
    0.3: the compat transport), presenting API ``key`` if given."""
    card = AgentCard(
        name="assistant",
        capabilities=AgentCapabilities(streaming=True),
        supported_interfaces=[
            AgentInterface(
                url=f"{url}/agents/assistant", protocol_binding="JSONRPC", protocol_version=version
            )
        ],
    )
    http = httpx.AsyncClient(headers={"X-API-Key": key} if key else {}, timeout=30)
    config = ClientConfig(streaming=streaming, httpx_client=http)
    return await create_client(card, client_config=config)


def reply_text(events: list[StreamResponse]) -> str:
    """The reply artifact's text as a client rebuilds it from stream events: a task sets
    it, an artifact update appends to it or replaces it."""
    text = ""
    for event in events:
        if event.HasField("task"):
            text = "".join(p.text for a in event.task.artifacts for p in a.parts)
        elif event.HasField("artifact_update"):
            update = event.artifact_update
            chunk = "".join(p.text for p in update.artifact.parts)
            text = text + chunk if update.append else chunk
    return text


async def collect(stream: AsyncIterator[StreamResponse], limit: int = 500) -> list[StreamResponse]:
    """Every event of ``stream`` (bounded)."""
    events = []
    async for event in stream:
        events.append(event)
        assert len(events) < limit
    return events


def call(url: str, method: str, params: Any, key: str | None = None) -> dict[str, Any]:
    """A raw JSON-RPC call; the version from the method's dialect."""
    version = None if "/" in method else "1.0"
    return rpc(url, method, params, version=version, headers={"X-API-Key": key} if key else {})


def v1_message(text: str, **extra: Any) -> dict[str, Any]:
    """``SendMessage`` params with a v1.0 user message."""
    return {
        "message": {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": text}], **extra}
    }
