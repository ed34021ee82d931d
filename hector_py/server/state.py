"""What every request handler can reach: config, agents, store, tasks, readiness."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from hector_py.agent.budgets import Budgets
from hector_py.agent.ratelimit import TenantLimits
from hector_py.agent.runner import Agent
from hector_py.agent.stores import Store, StoreHealth
from hector_py.agent.tasks import TaskManager
from hector_py.agent.tools import ToolRegistry
from hector_py.agent.tools.remote_agent import RemoteAgentTool
from hector_py.config.model import Config
from hector_py.knowledge.service import Knowledge
from hector_py.observability.telemetry import Telemetry


@dataclass
class ServerState:
    """Shared, per-application state (no module-level singletons)."""

    config: Config
    agents: dict[str, Agent]
    store: Store
    tasks: TaskManager
    telemetry: Telemetry
    budgets: Budgets
    limits: TenantLimits
    remote_agents: dict[str, RemoteAgentTool] = field(default_factory=dict)
    tools: ToolRegistry | None = None
    store_health: StoreHealth = field(default_factory=StoreHealth)
    knowledge: Knowledge | None = None
    started_at: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    """When the config (and so every card) took effect, as the cards' ``Last-Modified``."""
    draining: bool = False


STATE = web.AppKey("hector_state", ServerState)
TENANT = web.RequestKey("hector_tenant", str)  # set by auth for an authenticated caller
