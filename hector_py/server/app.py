"""``build_app(config)``: the one place that wires the parts into an aiohttp app."""

from __future__ import annotations

import asyncio
import os
from functools import partial

import aiohttp
from aiohttp import web

from hector_py.agent.admission import Admission
from hector_py.agent.budgets import Budgets
from hector_py.agent.guardrails import Guardrail, Guardrails
from hector_py.agent.notifications import Notifier
from hector_py.agent.ratelimit import Buckets, LocalBuckets, TenantLimits, model_limiter
from hector_py.agent.redis_buckets import RedisBuckets
from hector_py.agent.runner import Agent
from hector_py.agent.stores import StoreHealth, Task, open_store
from hector_py.agent.stores.fleet import join_fleet
from hector_py.agent.stores.leader import schedule_leader
from hector_py.agent.stores.pg_buckets import PgBuckets
from hector_py.agent.stores.postgres import PostgresStore
from hector_py.agent.stores.traced import TracedStore
from hector_py.agent.tasks import TaskManager
from hector_py.agent.tools import Tool, ToolRegistry, build_registry
from hector_py.agent.tools.delegate import DelegateTool, Delegation
from hector_py.agent.tools.remote_agent import RemoteAgentTool
from hector_py.config import delegation
from hector_py.config.model import Config, ObservabilityConfig
from hector_py.config.server import ApiKey
from hector_py.knowledge.service import Knowledge
from hector_py.llm.breaker import STATE_VALUES, Breaker, Model, State
from hector_py.llm.cache import ResponseCache
from hector_py.llm.factory import build_llm
from hector_py.observability.exporters import resolve_target
from hector_py.observability.knowledge import KnowledgeTelemetry
from hector_py.observability.metrics import Metrics
from hector_py.observability.redact import Redactor
from hector_py.observability.telemetry import Telemetry
from hector_py.server import a2a, health, openai_api, triggers
from hector_py.server.a2a.push_sender import PushSender
from hector_py.server.auth import AUTH, Authenticator, authenticate
from hector_py.server.console import add_console
from hector_py.server.hosts import host_guard
from hector_py.server.knowledge import build_embedders, check_sources
from hector_py.server.middleware import request_context
from hector_py.server.state import STATE, ServerState
from hector_py.server.triggers import Clock

TRACE_FLUSH_TIMEOUT_S = 5.0
NOTIFY_DRAIN_TIMEOUT_S = 5.0


def build_agents(
    config: Config,
    session: aiohttp.ClientSession,
    telemetry: Telemetry,
    knowledge: Knowledge | None = None,
    registry: ToolRegistry | None = None,
) -> dict[str, Agent]:
    """One ``Agent`` per ``agents:`` entry, with its model client and tools (and, with
    ``knowledge``, the ``search_knowledge`` tool or injected chunks of its stores). Tools
    come from ``registry``, started, or else a registry whose toolsets are not started.

    Raises ``ConfigError`` for what only shows when building: unknown tools or providers.
    """
    registry = registry or build_registry(config, session)
    models: dict[str, Model] = {}
    for name, llm in config.llms.items():
        provider, model = llm.provider, llm.model

        def count_retry(
            attempt: int, reason: str, delay: float, provider: str = provider, model: str = model
        ) -> None:
            telemetry.llm_retry(provider, model, attempt, reason, delay)

        def circuit(state: State, provider: str = provider, model: str = model) -> None:
            telemetry.circuit_state(provider, model, STATE_VALUES[state])

        def headroom(left: dict[str, int], provider: str = provider, model: str = model) -> None:
            telemetry.upstream_headroom(provider, model, left)

        client = build_llm(
            name,
            llm,
            session,
            on_retry=count_retry,
            inject_headers=telemetry.inject_headers(),
            on_headroom=headroom,
        )
        cache = ResponseCache(llm.cache) if llm.cache.enabled else None
        models[name] = Model(name, client, Breaker(name, llm.circuit_breaker, circuit), cache)
        telemetry.circuit_state(provider, model, 0)
    guardrails = {name: Guardrail(name, g) for name, g in config.guardrails.items()}
    agents = {}
    added: dict[str, list[Tool]] = {}  # tools an agent has besides the registry's
    for name, agent in config.agents.items():
        tools = registry.for_agent(agent.tools)
        own = len(tools)
        context = None
        if knowledge is not None and agent.knowledge:
            if agent.inject is None:
                tools.append(knowledge.tool(agent.knowledge))
            else:
                context = partial(knowledge.context, agent.knowledge, agent.inject)
        agents[name] = Agent(
            name,
            agent,
            [models[key] for key in (agent.llm, *config.llms[agent.llm].fallbacks)],
            telemetry,
            tools,
            registry,
            Guardrails(name, [guardrails[g] for g in agent.guardrails], telemetry)
            if agent.guardrails
            else None,
            context,
        )
        added[name] = tools[own:]

    needs_approval = [key for key, tool in config.tools.items() if tool.require_approval]
    approval = frozenset(t.spec.name for t in registry.for_agent(needs_approval))
    for built in agents.values():
        built.approval = approval
    remotes = {
        name: RemoteAgentTool(name, remote, session, telemetry)
        for name, remote in config.remote_agents.items()
    }
    for name, agent_config in config.agents.items():  # agents as tools, now all exist
        delegates: list[Tool] = [
            DelegateTool(agents[target], telemetry.delegation)
            for target in delegation.targets(agent_config)
        ]
        delegates += [
            remotes[tool.removeprefix(delegation.REMOTE)]
            for tool in agent_config.tools
            if tool.startswith(delegation.REMOTE)
        ]
        for tool in delegates:
            added[name].append(tool)
            agents[name].tools[tool.spec.name] = tool

    def retool() -> None:  # a toolset's tools changed: each agent sees them as they are now
        for name, agent in agents.items():
            tools = [*registry.for_agent(config.agents[name].tools), *added[name]]
            agent.tools = {tool.spec.name: tool for tool in tools}

    registry.watch(retool)
    return agents


async def check_buildable(config: Config) -> None:
    """Raise ``ConfigError`` if ``serve`` could not build this config (starting no
    exporter and serving no metrics)."""
    resolve_target(config.observability.tracing, os.environ)
    check_sources(config)
    if config.observability.metrics.enabled:
        Metrics(config.observability.metrics)  # rejects const_labels that would break scrapes
    async with aiohttp.ClientSession() as session:
        build_agents(config, session, Telemetry(ObservabilityConfig()))


async def metrics_off(_: web.Request) -> web.Response:
    """The metrics endpoint while metrics are off: a 404 that says how to turn them on."""
    return web.json_response(
        {
            "error": "metrics are off: start with --metrics (or --observe), "
            "or set observability.metrics.enabled: true"
        },
        status=404,
    )


def metrics_app(telemetry: Telemetry, endpoint: str) -> web.Application:
    """A bare app serving only the metrics endpoint (for ``observability.metrics.port``)."""
    app = web.Application()
    app.router.add_get(endpoint, telemetry.scrape)
    return app


async def build_app(
    config: Config, clock: Clock | None = None, *, schedules: bool = True
) -> web.Application:
    """The HTTP application for ``config``; ``clock`` drives the schedules (default: the
    wall clock), which run only if ``schedules``. Raises ``ConfigError`` if it cannot be
    built."""
    pricing = {
        (llm.provider, llm.model): llm.pricing
        for llm in config.llms.values()
        if llm.pricing is not None
    }
    redactor = Redactor(config.logging.redact, config.secret_values())
    tenants = {key.tenant for key in config.server.auth.api_keys if isinstance(key, ApiKey)}
    telemetry = Telemetry(
        config.observability, redactor, pricing, tenants=tenants | set(config.budgets)
    )
    # aiohttp's default pool holds 100 connections; with more concurrent runs allowed, runs
    # would queue for a connection to their model, adding latency no setting explains.
    connector = aiohttp.TCPConnector(limit=max(100, config.server.max_concurrent_runs))
    # No cookie jar: model calls, tools and notifications act for every tenant, so a
    # cookie one tenant's call received must never ride along on another's.
    session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        middlewares=telemetry.client_middlewares(),
    )
    knowledge = None
    registry = ToolRegistry({})
    try:
        check_sources(config)
        registry = build_registry(config, session, telemetry)
        await registry.start()  # discovers MCP tools; ConfigError if one cannot start
        if config.document_stores:
            knowledge = Knowledge.build(
                config.document_stores,
                KnowledgeTelemetry(telemetry),
                build_embedders(config, session, telemetry),
                config.storage,
            )
        agents = build_agents(config, session, telemetry, knowledge, registry)
        remotes = {
            tool.name: tool
            for agent in agents.values()
            for tool in agent.tools.values()
            if isinstance(tool, RemoteAgentTool)
        }
        for remote in remotes.values():
            remote.start()
        store_health = StoreHealth()
        store = await open_store(config.storage, telemetry, store_health)
    except BaseException:
        await registry.close()
        if knowledge is not None:
            await knowledge.close()
        await session.close()
        await telemetry.shutdown(1.0)
        raise
    limits = {
        name: a.max_concurrent_runs
        for name, a in config.agents.items()
        if a.max_concurrent_runs is not None
    }
    admission = Admission(config.server.max_concurrent_runs, limits, config.server.queue_timeout)
    notifier = Notifier(
        {name: agent.notifications for name, agent in config.agents.items()}, session, telemetry
    )
    budgets = Budgets(config.budgets, store, telemetry)
    for agent in agents.values():  # a spent budget refuses the next delegation
        for tool in agent.tools.values():
            if isinstance(tool, Delegation):
                tool.budget = budgets.refusal
    inner = store.inner if isinstance(store, TracedStore) else store
    redis = config.rate_limits.backend
    buckets: Buckets = (
        RedisBuckets(redis.get_secret_value(), config.rate_limits.redis_prefix)
        if redis is not None
        else PgBuckets(inner)
        if isinstance(inner, PostgresStore)
        else LocalBuckets()
    )
    rate_limits = TenantLimits(config.rate_limits, buckets)
    for agent in agents.values():
        agent.caller.limiters = {
            model.name: limiter
            for model in agent.models
            if (limiter := model_limiter(model.name, config.llms[model.name].rate_limit, buckets))
        }

    # the lookups after each state change are not the request's work: no db spans for them
    pushes = PushSender(inner, session, telemetry, config.a2a.push_notifications)

    def task_changed(task: Task) -> None:
        notifier.task_changed(task)
        pushes.task_changed(task)
        budgets.task_changed(task)
        if task.state.terminal:
            rate_limits.settle(task.id, task.prompt_tokens + task.completion_tokens)
            telemetry.tenant_usage(
                task.tenant, task.prompt_tokens, task.completion_tokens, task.cost_usd
            )

    tasks = TaskManager(store, admission, task_changed)
    tasks.redact, tasks.on_approval = telemetry.redact, telemetry.approval
    state = ServerState(
        remote_agents=remotes,
        limits=rate_limits,
        config=config,
        agents=agents,
        store=store,
        tasks=tasks,
        telemetry=telemetry,
        budgets=budgets,
        store_health=store_health,
        knowledge=knowledge,
        tools=registry,
    )
    fleet = join_fleet(store, state.tasks, config.storage.lease_seconds)
    app = web.Application(
        middlewares=[request_context, host_guard(config), authenticate],
        client_max_size=config.server.max_body_bytes,
    )
    app[STATE] = state
    webhooks = triggers.add_routes(app, state)  # signed, so open without an API key
    if config.server.auth.api_keys or config.server.auth.jwt:
        authenticator = Authenticator(
            config.server.auth, config.observability.metrics.endpoint, webhooks
        )
        app[AUTH] = authenticator
        app.on_startup.append(authenticator.start)
        app.on_cleanup.append(authenticator.close)
    health.add_routes(app)
    a2a.add_routes(app)
    openai_api.add_routes(app)
    if config.observability.console.enabled:
        add_console(app, telemetry, agents.values())
    metrics = config.observability.metrics
    if telemetry.metrics is not None and metrics.port is None:
        app.router.add_get(metrics.endpoint, telemetry.scrape)
    elif telemetry.metrics is None:
        app.router.add_get(metrics.endpoint, metrics_off)

    scheduler = triggers.Scheduler(state, clock or Clock())
    leader = schedule_leader(config.storage, scheduler.start, scheduler.close)

    async def start_background(_: web.Application) -> None:
        await budgets.refresh()
        if fleet is not None:
            await fleet.start()
        if knowledge is not None:
            knowledge.start()
        if schedules:
            (leader or scheduler).start()

    async def drain_tasks(_: web.Application) -> None:
        if leader is not None:
            await leader.close()
        await scheduler.close()
        await state.tasks.shutdown(config.server.shutdown_timeout)
        if fleet is not None:
            await fleet.close()
        await asyncio.gather(
            notifier.close(NOTIFY_DRAIN_TIMEOUT_S), pushes.close(NOTIFY_DRAIN_TIMEOUT_S)
        )
        await budgets.close()

    async def close_resources(_: web.Application) -> None:
        for remote in remotes.values():
            remote.close()
        await registry.close()  # stops MCP stdio children
        await session.close()
        await state.store.close()
        if isinstance(buckets, RedisBuckets):
            await buckets.close()
        if knowledge is not None:
            await knowledge.close()
        await telemetry.shutdown(TRACE_FLUSH_TIMEOUT_S)

    app.on_startup.append(start_background)
    app.on_shutdown.append(drain_tasks)
    app.on_cleanup.append(close_resources)
    return app
