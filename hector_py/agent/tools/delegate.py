"""A local sub-agent as a tool (``tools: [agent:NAME]``): the model passes one message, the
sub-agent runs through the same runner (its ``invoke_agent`` span under this call's
``execute_tool`` span, its model calls under its own agent label), and its reply is the
tool result. Its tokens are charged to the delegating run's meter, so the parent's usage,
budget and cost include every hop. One parent conversation (tenant and session) is one
conversation of the sub-agent, kept in this process (bounded). A sub-agent that waits for
a person (approval) pauses the delegating run too (``InputNeeded``); the person's answer
resumes the sub-agent where it stopped."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from hector_py.agent import approval
from hector_py.agent.approval import ApprovalRequired, InputNeeded
from hector_py.agent.calls import AgentError, UsageMeter
from hector_py.agent.ratelimit import RateLimited
from hector_py.agent.runner import CURRENT_RUN, Agent, FinalReply, RunContext
from hector_py.agent.tools.registry import ToolError
from hector_py.llm.base import LLMError, Message, ToolSpec

SESSIONS = 1000
"""Parent conversations whose sub-agent conversation is remembered, per delegate tool."""
HISTORY = 20
"""Messages of a sub-agent conversation kept (the newest)."""
SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string", "description": "What to ask or tell it."}},
    "required": ["message"],
}

BudgetGate = Callable[[str, int], Awaitable[str | None]]
"""Why a tenant whose run used this many tokens may not delegate more, or ``None``."""


class Delegation:
    """What every agent-as-tool shares: the delegating run, its budget, the count."""

    def __init__(self, target: str, count: Callable[[str, str, bool], None]) -> None:
        self.target = target
        self.count = count
        self.budget: BudgetGate | None = None
        """Set by the server: a spent budget refuses the next delegation."""

    async def delegating_run(self) -> RunContext | None:
        """The run this call belongs to; ``ToolError`` when its tenant's budget ran out."""
        parent = CURRENT_RUN.get()
        if parent is not None and self.budget is not None:
            refusal = await self.budget(parent.tenant, parent.meter.total)
            if refusal is not None:
                self.counted(parent, False)
                raise ToolError(f"not delegating to {self.target}: {refusal}")
        return parent

    def counted(self, parent: RunContext | None, ok: bool) -> None:
        """Count one delegation that ended (``ok``: with an answer)."""
        self.count(parent.agent if parent else "", self.target, ok)


def conversation(parent: RunContext | None) -> tuple[str, str] | None:
    """The delegating conversation (tenant, session), when it has one."""
    return (parent.tenant, parent.session_id) if parent and parent.session_id else None


class DelegateTool(Delegation):
    """Ask another agent of the same config (see the module docstring)."""

    kind = "agent"
    timeout = 600.0

    def __init__(self, agent: Agent, count: Callable[[str, str, bool], None]) -> None:
        super().__init__(agent.name, count)
        self.agent = agent
        name = re.sub(r"[^A-Za-z0-9_-]", "_", agent.name)
        description = agent.config.description
        self.spec = ToolSpec(
            name, f"Ask the agent {agent.config.name or agent.name}: {description}", SCHEMA
        )
        self._conversations: OrderedDict[tuple[str, str], list[Message]] = OrderedDict()

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the sub-agent on ``arguments["message"]``; its reply text."""
        parent = await self.delegating_run()
        key = conversation(parent)
        history = list(self._conversations.get(key, [])) if key else []
        return await self._run(parent, str(arguments["message"]), history)

    async def answer(self, state: dict[str, Any], text: str) -> str:
        """Resume the sub-agent that asked (``state``: its paused run) with ``text``."""
        parent = await self.delegating_run()
        pending = state["pending"]
        if approval.expired(pending):
            raise ToolError(f"agent {self.target}: no answer within its approval_timeout")
        try:
            decisions = approval.decide(pending, text)
        except approval.AnswerError as exc:
            raise ToolError(f"agent {self.target}: {exc}") from None
        resume = approval.resume(pending, decisions, text)
        return await self._run(parent, pending["text"], [], resume)

    async def abandon(self, state: dict[str, Any]) -> None:
        """The run waiting on this sub-agent was given up: so is the sub-agent's wait."""
        await abandon(self.agent, state["pending"])

    async def _run(
        self,
        parent: RunContext | None,
        text: str,
        history: list[Message],
        resume: approval.Resume | None = None,
    ) -> str:
        key = conversation(parent)
        reply = None
        try:
            async for event in self.agent.run(
                history,
                text,
                session_id=f"{key[1]}/{self.agent.name}" if key else None,
                meter=parent.meter if parent is not None else UsageMeter(),
                tenant=parent.tenant if parent else "",
                depth=parent.depth + 1 if parent else 1,
                resume=resume,
            ):
                if isinstance(event, FinalReply):
                    reply = event.text
                elif isinstance(event, ApprovalRequired):  # the person above decides
                    pending = approval.pause(event, text, self.agent.config.approval_timeout)
                    raise InputNeeded(approval.question(pending, str)[0], {"pending": pending})
        except (LLMError, AgentError, RateLimited) as exc:
            self.counted(parent, False)
            raise ToolError(f"agent {self.agent.name} failed: {exc}") from None
        self.counted(parent, True)
        answer = reply or ""
        if key is not None:
            if resume is not None:
                history = list(self._conversations.get(key, []))
            kept = [*history, Message("user", text), Message("assistant", answer)][-HISTORY:]
            self._conversations[key] = kept
            self._conversations.move_to_end(key)
            while len(self._conversations) > SESSIONS:
                self._conversations.popitem(last=False)
        return answer


async def abandon(agent: Agent, pending: dict[str, Any]) -> None:
    """A paused run of ``agent`` is given up: the sub-agent it waits on, if any, is let go
    (a remote task is canceled; a local sub-agent's own wait is given up the same way)."""
    forward = pending.get("forward")
    if not forward:
        return
    name = next((c["name"] for c in pending["calls"] if c["id"] == forward["call"]), None)
    leave = getattr(agent.tools.get(name or ""), "abandon", None)
    if leave is not None:
        await leave(forward["state"])
