"""A2A over JSON-RPC (both protocol dialects on one endpoint) and HTTP+JSON (1.0, under
the same agent URL): agent cards, ``/agents``.

Semantics (the A2A spec's): a task belongs to the tenant that created it; a message with
``taskId`` continues that task when it waits for input; a stream's end never changes the
task (unless ``a2a.cancel_on_disconnect``); a late subscriber starts from the task as it is.
"""

from __future__ import annotations

from aiohttp import web

from hector_py.agent.runner import Agent
from hector_py.server.a2a.card import agent_card, card_response
from hector_py.server.a2a.rest import add_rest_routes
from hector_py.server.a2a.rpc import dispatch
from hector_py.server.state import STATE, ServerState

__all__ = ["add_routes", "agent_card"]


def _agent_or_404(state: ServerState, name: str) -> Agent:
    agent = state.agents.get(name)
    if agent is None:
        raise web.HTTPNotFound(reason=f"agent '{name}' not found")
    return agent


async def well_known_card(request: web.Request) -> web.Response:
    """The default agent's card, or the card of ``{name}`` under ``/agents/{name}/``."""
    state = request.app[STATE]
    name = request.match_info.get("name", state.config.default_agent_name)
    return card_response(request, _agent_or_404(state, name))


async def get_agent(request: web.Request) -> web.Response:
    """``GET /agents/{name}``: that agent's card."""
    return card_response(request, _agent_or_404(request.app[STATE], request.match_info["name"]))


async def list_agents(request: web.Request) -> web.Response:
    """``GET /agents``: every agent's card."""
    cards = [agent_card(request, agent) for agent in request.app[STATE].agents.values()]
    return web.json_response({"agents": cards, "total": len(cards)})


async def rpc_agent(request: web.Request) -> web.StreamResponse:
    """``POST /agents/{name}`` (or with a trailing slash): JSON-RPC for that agent."""
    agent = _agent_or_404(request.app[STATE], request.match_info["name"])
    return await dispatch(request, agent)


async def rpc_default(request: web.Request) -> web.StreamResponse:
    """``POST /``: JSON-RPC for the default agent."""
    state = request.app[STATE]
    return await dispatch(request, state.agents[state.config.default_agent_name])


def add_routes(app: web.Application) -> None:
    """Mount the A2A endpoints."""
    for path in (
        "/.well-known/agent-card.json",
        "/.well-known/agent.json",
        "/agents/{name}/.well-known/agent-card.json",
    ):
        app.router.add_get(path, well_known_card)
    app.router.add_get("/agents", list_agents)
    app.router.add_get("/agents/{name}", get_agent)
    app.router.add_post("/agents/{name}", rpc_agent)
    app.router.add_post("/agents/{name}/", rpc_agent)
    app.router.add_post("/", rpc_default)
    add_rest_routes(app)
