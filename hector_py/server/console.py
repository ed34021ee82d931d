"""The run console (``observability.console.enabled`` or ``--observe``): ``GET /console``,
one HTML page and its script (no build step, no CDN: the server may have no internet),
behind the API's auth like every route that is not a probe or a card. It reads:

- ``GET /console/api/runs``: the runs in flight (agent, tenant, step, elapsed, tokens so
  far), the recent traces (newest first) and live counters from the metrics registry;
- ``GET /console/api/traces/{trace_id}``: one trace's spans (attributes and events,
  redacted) and the log lines that carry its trace id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from hector_py.agent.board import RunBoard
from hector_py.agent.runner import Agent
from hector_py.observability.console import CONSOLE_ROUTES, ConsoleLogs, ConsoleSpans, attach
from hector_py.observability.telemetry import Telemetry

COUNTERS = {  # what the header shows: metric family (without prefix) -> label
    "requests": "requests",
    "agent_invocations": "runs",
    "llm_tokens": "tokens",
    "llm_cost_usd": "cost_usd",
    "errors": "errors",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@dataclass
class Console:
    """What the console pages read: the runs board, held traces and their log lines."""

    board: RunBoard
    spans: ConsoleSpans | None
    logs: ConsoleLogs
    telemetry: Telemetry

    def counters(self) -> dict[str, float]:
        """Totals of a few counters from the registry ``/metrics`` serves."""
        metrics = self.telemetry.metrics
        totals = dict.fromkeys(COUNTERS.values(), 0.0)
        if metrics is None:
            return totals
        for family in metrics.registry.collect():
            for key, label in COUNTERS.items():
                if family.name.endswith(key):
                    totals[label] += sum(
                        s.value for s in family.samples if s.name.endswith("_total")
                    )
        return totals


CONSOLE = web.AppKey("console", Console)


def _asset(name: str) -> str:
    return resources.files("hector_py.server").joinpath(f"console_assets/{name}").read_text()


async def page(request: web.Request) -> web.Response:
    """``GET /console``: the page."""
    return web.Response(
        text=_asset("console.html"), content_type="text/html", headers=SECURITY_HEADERS
    )


async def script(request: web.Request) -> web.Response:
    """``GET /console/app.js``: the page's script."""
    return web.Response(
        text=_asset("console.js"), content_type="text/javascript", headers=SECURITY_HEADERS
    )


async def runs(request: web.Request) -> web.Response:
    """``GET /console/api/runs``."""
    console = request.app[CONSOLE]
    body: dict[str, Any] = {
        "runs": console.board.views(),
        "traces": console.spans.recent() if console.spans is not None else [],
        "tracing": console.spans is not None,
        "counters": console.counters(),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def trace(request: web.Request) -> web.Response:
    """``GET /console/api/traces/{trace_id}``: 404 when the trace is not held (any more)."""
    console = request.app[CONSOLE]
    trace_id = request.match_info["trace_id"].lower()
    found = console.spans.find(trace_id) if console.spans is not None else None
    if found is None:
        return web.json_response(
            {"error": {"message": f"trace {trace_id} is not held"}}, status=404
        )
    body = {**found, "logs": console.logs.of(trace_id)}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def add_console(app: web.Application, telemetry: Telemetry, agents: Iterable[Agent]) -> None:
    """Mount the console: ``agents`` list their runs on its board; it reads
    ``telemetry``'s tracing and the process logs (the handler leaves with the app)."""
    config = telemetry.config.console
    board = RunBoard()
    for agent in agents:
        agent.board = board
    spans = None
    logs = ConsoleLogs(config.max_traces, telemetry.redact)
    if telemetry.tracing is not None:
        spans = ConsoleSpans(config.max_traces, config.max_trace_kb, telemetry.redact)
        attach(telemetry.tracing, spans, logs)
    logging.getLogger().addHandler(logs)
    app[CONSOLE] = Console(board, spans, logs, telemetry)

    async def detach(_: web.Application) -> None:
        logging.getLogger().removeHandler(logs)

    app.on_cleanup.append(detach)
    for route, handler in zip(CONSOLE_ROUTES, (page, script, runs, trace), strict=True):
        app.router.add_get(route, handler)
