"""Health probes: ``/health`` (details), ``/health/live`` and ``/health/ready``."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from hector_py import __version__
from hector_py.server.state import STATE, ServerState


def components(state: ServerState) -> dict[str, dict[str, Any]]:
    """The status of each part the server depends on."""
    return {
        "agents": {"status": "ok", "count": len(state.agents)},
        "store": {
            "status": "ok" if state.store_health.ok else "unavailable",
            "type": state.config.storage.type,
            **({} if state.store_health.ok else {"reason": state.store_health.reason}),
        },
        "server": {"status": "draining" if state.draining else "ok"},
        **state.telemetry.health(),
        **(state.tools.health() if state.tools else {}),
        **({"knowledge": state.knowledge.health()} if state.knowledge is not None else {}),
        **{f"remote.{name}": tool.health() for name, tool in state.remote_agents.items()},
        **{
            f"llm.{model.name}": model.breaker.health()
            for agent in state.agents.values()
            for model in agent.models
            if model.breaker is not None
        },
    }


def _failing(parts: dict[str, dict[str, Any]]) -> list[str]:
    """Components that make the server unready (``degraded`` telemetry does not)."""
    return [name for name, part in parts.items() if part["status"] not in ("ok", "degraded")]


async def health(request: web.Request) -> web.Response:
    """Overall status, version, uptime and per-component detail."""
    state = request.app[STATE]
    parts = components(state)
    return web.json_response(
        {
            "status": "ok" if all(p["status"] == "ok" for p in parts.values()) else "degraded",
            "version": __version__,
            "uptime_s": round(time.monotonic() - state.started_at, 3),
            "components": parts,
        }
    )


async def live(request: web.Request) -> web.Response:
    """200 while the process can answer at all."""
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """200 when every component is ok, else 503 naming the failing ones."""
    failing = _failing(components(request.app[STATE]))
    if failing:
        body: dict[str, Any] = {"status": "not ready", "failing": failing}
        if "store" in failing:
            body["reason"] = f"store unavailable: {request.app[STATE].store_health.reason}"
        return web.json_response(body, status=503)
    return web.json_response({"status": "ready"})


def add_routes(app: web.Application) -> None:
    """Mount the health endpoints."""
    app.router.add_get("/health", health)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
