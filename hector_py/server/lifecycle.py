"""Run the app: listen, print the banner, drain gracefully on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from hector_py import __version__
from hector_py.config.model import Config
from hector_py.server.app import build_app, metrics_app
from hector_py.server.state import STATE

log = logging.getLogger("hector.server")


def display_host(host: str) -> str:
    """A host a person can connect to: wildcard binds become the loopback address."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def banner(config: Config, base: str, metrics_url: str | None) -> dict[str, object]:
    """The agents (URL, provider/model) and URLs worth knowing, for the start-up line."""
    urls: dict[str, object] = {
        "agents": {
            name: {
                "url": f"{base}/agents/{name}",
                "model": f"{config.llms[agent.llm].provider}/{config.llms[agent.llm].model}",
            }
            for name, agent in config.agents.items()
        },
        "agent_card": f"{base}/.well-known/agent-card.json",
        "health": f"{base}/health",
    }
    if metrics_url:
        urls["metrics"] = metrics_url
    return urls


async def _listen(
    app: web.Application, host: str, port: int, shutdown_timeout: float
) -> tuple[web.AppRunner, str]:
    """Start serving ``app``; returns its runner and a connectable base URL."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = next(
        (int(a[1]) for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2), port
    )
    return runner, f"http://{display_host(host)}:{bound}"


async def serve(config: Config) -> None:
    """Serve until SIGINT/SIGTERM, then let in-flight requests finish and return."""
    app = await build_app(config)
    server = config.server
    runner, base = await _listen(app, server.host, server.port, server.shutdown_timeout)
    runners = [runner]
    telemetry = app[STATE].telemetry
    metrics = config.observability.metrics
    metrics_url = f"{base}{metrics.endpoint}" if telemetry.metrics is not None else None
    try:
        if telemetry.metrics is not None and metrics.port is not None:
            metrics_runner, metrics_base = await _listen(
                metrics_app(telemetry, metrics.endpoint), server.host, metrics.port, 1.0
            )
            runners.append(metrics_runner)
            metrics_url = f"{metrics_base}{metrics.endpoint}"
        log.info(
            "hector-py %s listening on %s",
            __version__,
            base,
            extra=banner(config, base, metrics_url),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        app[STATE].draining = True
        log.info(
            "shutting down: finishing in-flight requests",
            extra={"timeout_s": server.shutdown_timeout},
        )
        for each in reversed(runners):
            await each.cleanup()
        log.info("stopped")
