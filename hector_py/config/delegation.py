"""Delegation between agents (``tools: [agent:NAME]``): targets exist, no agent reaches
itself, and no chain is deeper than ``max_delegation_depth``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, SecretStr

from hector_py.config.agents import AgentConfig
from hector_py.config.base import Strict

PREFIX = "agent:"
REMOTE = "a2a:"


def targets(agent: AgentConfig) -> list[str]:
    """The agents ``agent`` delegates to (its ``agent:NAME`` tools)."""
    return [name.removeprefix(PREFIX) for name in agent.tools if name.startswith(PREFIX)]


def problems(
    agents: Mapping[str, AgentConfig], max_depth: int, remote: Mapping[str, object] = {}
) -> list[tuple[tuple[str, ...], str]]:
    """Unknown targets, cycles and chains deeper than ``max_depth``, each naming its path."""
    found: list[tuple[tuple[str, ...], str]] = []
    for name, agent in agents.items():
        for index, target in enumerate(agent.tools):
            if target.startswith(REMOTE) and target.removeprefix(REMOTE) not in remote:
                known = ", ".join(sorted(remote)) or "none"
                where = ("agents", name, "tools", str(index))
                found.append((where, f"unknown remote agent '{target}' (known: {known})"))
            if target.startswith(PREFIX) and target.removeprefix(PREFIX) not in agents:
                known = ", ".join(sorted(agents))
                where = ("agents", name, "tools", str(index))
                found.append(
                    (where, f"unknown agent '{target.removeprefix(PREFIX)}' (known: {known})")
                )
    if found:
        return found
    for name in agents:
        path = _too_deep(agents, [name], max_depth)
        if path is not None:
            chain = " -> ".join(path)
            why = "a cycle" if path[-1] in path[:-1] else f"deeper than {max_depth}"
            found.append(
                (("agents", name, "tools"), f"delegation {chain} is {why} (max_delegation_depth)")
            )
    return found


def _too_deep(
    agents: Mapping[str, AgentConfig], path: list[str], max_depth: int
) -> list[str] | None:
    """The first delegation path from ``path`` that cycles or passes ``max_depth`` hops."""
    for target in targets(agents[path[-1]]):
        longer = [*path, target]
        if target in path or len(longer) - 1 > max_depth:
            return longer
        found = _too_deep(agents, longer, max_depth)
        if found is not None:
            return found
    return None


class RemoteAgentConfig(Strict):
    """An agent of another A2A server, used as a tool (``tools: [a2a:NAME]``)."""

    url: str = Field(description="The agent's A2A JSON-RPC endpoint (its card is under it).")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Sent with every request (secret values, masked)."
    )
    timeout: float = Field(120.0, gt=0, le=3600, description="Seconds for one delegation.")
    protocol: Literal["auto", "1.0", "0.3"] = Field(
        "auto", description="The A2A version to speak (auto: what the agent's card offers)."
    )
    description: str | None = Field(
        None, description="The tool's description (default: from the agent's card)."
    )
