"""Run the app on bound sockets and drain gracefully on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from hector_py import __version__
from hector_py.agent.stores import StoreUnavailable
from hector_py.agent.stores.pg_schema import SchemaTooNew
from hector_py.config.loader import ConfigError
from hector_py.config.model import Config, ServerConfig
from hector_py.server.app import build_app, metrics_app
from hector_py.server.connections import (
    ConnectionGuard,
    GuardedRunner,
    default_max_connections,
    watch_accept_errors,
)
from hector_py.server.listeners import Listeners, banner, bind_listeners, open_to_network
from hector_py.server.state import STATE

log = logging.getLogger("hector.server")
T = TypeVar("T")
ANSWER_DRAIN_S = 5.0


def announce(config: Config, listeners: Listeners) -> None:
    """The one start-up line: where the agents, health and metrics are."""
    base, urls = banner(config, listeners)
    log.info("hector-py %s listening on %s", __version__, base, extra=urls)
    warning = open_to_network(config)
    if warning:
        log.warning(warning)


async def _start(
    app: web.Application, sock: socket.socket, config: ServerConfig, guard: ConnectionGuard
) -> web.AppRunner:
    # handler_cancellation: a client that hangs up cancels its request and so its run.
    # keepalive_timeout: aiohttp closes a connection that has no complete request head
    # this long after it opened or after its previous response.
    # shutdown_timeout: the app's shutdown drains the runs (A2A tasks and /v1 requests,
    # tasks.shutdown); what is left after it are requests finishing their answers.
    runner = GuardedRunner(
        app,
        guard,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=min(config.shutdown_timeout, ANSWER_DRAIN_S),
        handler_cancellation=True,
        keepalive_timeout=config.idle_timeout,
    )
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()  # the app's cleanup: close the store and sessions it opened
        raise
    return runner


GC_THRESHOLDS = (7000, 10, 10)


def tune_gc() -> None:
    """Keep the cyclic GC's cost flat as the heap grows.

    What is allocated by now (modules, config, agents, telemetry) lives as long as the
    process: ``gc.freeze`` takes it out of every collection. A request allocates hundreds
    of short-lived containers; at the default threshold (700) those of in-flight requests
    are promoted at every young collection and soon trigger full collections whose cost
    grows with the heap (the memory store, long sessions). Collecting the young generation
    ten times less often promotes ten times fewer of them. Only cyclic garbage waits
    longer; everything else is still freed at once by reference counting.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _drain(app: web.Application, delay: float) -> None:
    """Readiness answers 503 at once; keep serving ``delay`` seconds so balancers notice."""
    state = app[STATE]
    state.draining = state.tasks.draining = True
    if delay:
        log.info("draining: readiness is 503; closing the listener in %.1f s", delay)
        await asyncio.sleep(delay)


async def serve(
    config: Config, listeners: Listeners | None = None, *, schedules: bool = True
) -> None:
    """Serve until SIGINT/SIGTERM, then let in-flight requests finish and return.

    Without ``listeners`` this binds its own sockets and announces them (one process);
    a worker of ``--workers N`` gets the supervisor's sockets and stays quiet, and runs
    the cron schedules only if told to (``schedules``).
    """
    own = listeners is None
    listeners = listeners or bind_listeners(config)
    try:
        await _run(config, listeners, announce_start=own, schedules=schedules)
    except StartupFailed as exc:
        log.error("start-up failed: %s", exc)
        raise SystemExit(1) from None
    finally:
        if own:
            listeners.close()


class StartupFailed(Exception):
    """The app could not be built or started (a config problem stays a ``ConfigError``)."""


async def starting(work: Awaitable[T]) -> T:
    """``work``'s result; a failure other than a ``ConfigError`` is a ``StartupFailed``."""
    try:
        return await work
    except ConfigError:
        raise
    except (StoreUnavailable, SchemaTooNew) as exc:
        raise StartupFailed(f"storage: {exc}") from exc
    except Exception as exc:
        raise StartupFailed(f"{type(exc).__name__}: {exc}") from exc


async def _run(
    config: Config, listeners: Listeners, *, announce_start: bool, schedules: bool
) -> None:
    app = await starting(build_app(config, schedules=schedules))
    server = config.server
    telemetry = app[STATE].telemetry
    watch_accept_errors(asyncio.get_running_loop(), telemetry)
    guard = ConnectionGuard(
        server.max_connections or default_max_connections(),
        server.max_connections_per_client,
        telemetry,
    )
    runners = [await starting(_start(app, listeners.api, server, guard))]
    try:
        if listeners.metrics is not None and telemetry.metrics is not None:
            metrics = metrics_app(telemetry, config.observability.metrics.endpoint)
            short = server.model_copy(update={"shutdown_timeout": 1.0})
            runners.append(await _start(metrics, listeners.metrics, short, guard))
        if announce_start:
            announce(config, listeners)
        tune_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await _drain(app, config.server.drain_delay)
    finally:
        app[STATE].draining = True
        log.info(
            "shutting down: finishing in-flight requests",
            extra={"timeout_s": server.shutdown_timeout},
        )
        for runner in reversed(runners):
            await runner.cleanup()
        log.info("stopped")
