"""``build_app(config)``: the one place that wires the parts into an aiohttp app."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from hector_py.agent.runner import Agent
from hector_py.agent.store import open_store
from hector_py.agent.tasks import TaskManager
from hector_py.agent.tools import build_registry
from hector_py.config.model import Config
from hector_py.llm.factory import build_llm
from hector_py.server import a2a, health, openai_api
from hector_py.server.middleware import request_context
from hector_py.server.state import STATE, ServerState


def build_agents(config: Config, session: aiohttp.ClientSession) -> dict[str, Agent]:
    """One ``Agent`` per ``agents:`` entry, with its model client and tools."""
    registry = build_registry(config, session)
    llms = {name: build_llm(name, llm, session) for name, llm in config.llms.items()}
    return {
        name: Agent(name, agent, llms[agent.llm], registry.for_agent(agent.tools), registry)
        for name, agent in config.agents.items()
    }


async def build_app(config: Config) -> web.Application:
    """The HTTP application for ``config``. Raises ``ConfigError`` if it cannot be built."""
    session = aiohttp.ClientSession()
    try:
        agents = build_agents(config, session)
        store = await open_store(config.storage)
    except BaseException:
        await session.close()
        raise
    state = ServerState(config=config, agents=agents, store=store, tasks=TaskManager(store))
    app = web.Application(middlewares=[request_context])
    app[STATE] = state
    health.add_routes(app)
    a2a.add_routes(app)
    openai_api.add_routes(app)

    async def drain_tasks(_: web.Application) -> None:
        await state.tasks.shutdown(config.server.shutdown_timeout)

    async def close_resources(_: web.Application) -> None:
        await session.close()
        await state.store.close()

    app.on_shutdown.append(drain_tasks)
    app.on_cleanup.append(close_resources)
    return app
