"""``build_app(config)``: the one place that wires the parts into an aiohttp app."""

from __future__ import annotations

from aiohttp import web

from hector_py.agent.runner import Agent
from hector_py.agent.store import MemoryStore
from hector_py.config.model import Config
from hector_py.llm.factory import build_llm
from hector_py.server import a2a, health
from hector_py.server.middleware import request_context
from hector_py.server.state import STATE, ServerState


def build_agents(config: Config) -> dict[str, Agent]:
    """One ``Agent`` per ``agents:`` entry, each with its model client."""
    llms = {name: build_llm(name, llm) for name, llm in config.llms.items()}
    return {name: Agent(name, agent, llms[agent.llm]) for name, agent in config.agents.items()}


def build_app(config: Config) -> web.Application:
    """The HTTP application for ``config``. Raises ``ConfigError`` if it cannot be built."""
    app = web.Application(middlewares=[request_context])
    state = ServerState(config=config, agents=build_agents(config), store=MemoryStore())
    app[STATE] = state
    health.add_routes(app)
    a2a.add_routes(app)

    async def close_store(_: web.Application) -> None:
        await state.store.close()

    app.on_cleanup.append(close_store)
    return app
