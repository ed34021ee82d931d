"""Run the app: listen, print the banner, drain gracefully on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from hector_py import __version__
from hector_py.config.model import Config
from hector_py.server.app import build_app
from hector_py.server.state import STATE

log = logging.getLogger("hector.server")


def display_host(host: str) -> str:
    """A host a person can connect to: wildcard binds become the loopback address."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def banner(config: Config, base: str) -> dict[str, object]:
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
    metrics = config.observability.metrics
    if metrics.enabled:
        urls["metrics"] = f"{base}{metrics.endpoint}"
    return urls


async def serve(config: Config) -> None:
    """Serve until SIGINT/SIGTERM, then let in-flight requests finish and return."""
    app = await build_app(config)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=config.server.shutdown_timeout,
    )
    await runner.setup()
    site = web.TCPSite(runner, config.server.host, config.server.port, reuse_address=True)
    await site.start()
    port = _bound_port(runner, config.server.port)
    base = f"http://{display_host(config.server.host)}:{port}"
    log.info("hector-py %s listening on %s", __version__, base, extra=banner(config, base))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        app[STATE].draining = True
        log.info(
            "shutting down: finishing in-flight requests",
            extra={"timeout_s": config.server.shutdown_timeout},
        )
        await runner.cleanup()
        log.info("stopped")


def _bound_port(runner: web.AppRunner, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured
