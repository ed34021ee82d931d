"""A local sub-agent as a tool (``tools: [agent:NAME]``): the model passes one message, the
sub-agent runs through the same runner (its ``invoke_agent`` span under this call's
``execute_tool`` span, its model calls under its own agent label), and its reply is the
tool result. Its tokens are charged to the delegating run's meter, so the parent's usage,
budget and cost include every hop. One parent conversation (tenant and session) is one
conversation of the sub-agent, kept in this process (bounded)."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from hector_py.agent.approval import ApprovalRequired
from hector_py.agent.calls import AgentError, UsageMeter
from hector_py.agent.runner import CURRENT_RUN, Agent, FinalReply
from hector_py.agent.tools.registry import ToolError
from hector_py.llm.base import LLMError, Message, ToolSpec

SESSIONS = 1000
"""Parent conversations whose sub-agent conversation is remembered, per delegate tool."""
HISTORY = 20
"""Messages of a sub-agent conversation kept (the newest)."""


class DelegateTool:
    """Ask another agent of the same config (see the module docstring)."""

    kind = "agent"
    timeout = 600.0

    def __init__(self, agent: Agent, count: Callable[[str, str, bool], None]) -> None:
        self.agent = agent
        self.count = count
        name = re.sub(r"[^A-Za-z0-9_-]", "_", agent.name)
        description = agent.config.description
        schema = {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "What to ask or tell it."}},
            "required": ["message"],
        }
        self.spec = ToolSpec(
            name, f"Ask the agent {agent.config.name or agent.name}: {description}", schema
        )
        self._conversations: OrderedDict[tuple[str, str], list[Message]] = OrderedDict()

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the sub-agent on ``arguments["message"]``; its reply text."""
        parent = CURRENT_RUN.get()
        meter = parent.meter if parent is not None else UsageMeter()
        key = (parent.tenant, parent.session_id) if parent and parent.session_id else None
        history = list(self._conversations.get(key, [])) if key else []
        text = str(arguments["message"])
        reply = None
        try:
            async for event in self.agent.run(
                history,
                text,
                session_id=f"{key[1]}/{self.agent.name}" if key else None,
                meter=meter,
                tenant=parent.tenant if parent else "",
                depth=parent.depth + 1 if parent else 1,
            ):
                if isinstance(event, FinalReply):
                    reply = event.text
                elif isinstance(event, ApprovalRequired):  # no person to ask from here (yet)
                    names = ", ".join(sorted({c.name for c in event.calls if c.id in event.ask}))
                    raise AgentError(f"it wants to run {names}, which needs a person's approval")
        except (LLMError, AgentError) as exc:
            self.count(parent.agent if parent else "", self.agent.name, False)
            raise ToolError(f"agent {self.agent.name} failed: {exc}") from None
        self.count(parent.agent if parent else "", self.agent.name, True)
        answer = reply or ""
        if key is not None:
            kept = [*history, Message("user", text), Message("assistant", answer)][-HISTORY:]
            self._conversations[key] = kept
            self._conversations.move_to_end(key)
            while len(self._conversations) > SESSIONS:
                self._conversations.popitem(last=False)
        return answer
