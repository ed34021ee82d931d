"""The agent loop: instruction + history -> LLM -> tool calls -> ... -> reply, as events."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from hector_py.agent.tools import Tool, ToolOutcome, ToolRegistry
from hector_py.config.model import AgentConfig
from hector_py.llm.base import LLM, LLMRequest, Message, ToolCall, Usage
from hector_py.observability.logs import bind

log = logging.getLogger("hector.agent")


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply as it is produced."""

    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    """The model asked for a tool; it is running now."""

    call: ToolCall


@dataclass(frozen=True)
class ToolCallFinished:
    """A tool call ended; its outcome goes back to the model."""

    call: ToolCall
    outcome: ToolOutcome


@dataclass(frozen=True)
class FinalReply:
    """The run's answer (all text produced) and the tokens it cost."""

    text: str
    usage: Usage


RunEvent = TextDelta | ToolCallStarted | ToolCallFinished | FinalReply


class AgentError(Exception):
    """A run ended without an answer for a reason of the agent's own (not the model's)."""


class Agent:
    """A configured agent bound to its model and tools."""

    def __init__(
        self,
        name: str,
        config: AgentConfig,
        llm: LLM,
        tools: Sequence[Tool] = (),
        registry: ToolRegistry | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.llm = llm
        self.tools = {tool.spec.name: tool for tool in tools}
        self.registry = registry

    async def run(
        self, history: list[Message], user_text: str, *, stream: bool = False
    ) -> AsyncIterator[RunEvent]:
        """Answer ``user_text`` given the session ``history``; the last event is FinalReply.

        Raises ``LLMError`` when the model fails and ``AgentError`` when no answer comes
        within ``max_iterations`` model calls.
        """
        messages = [
            Message("system", self.config.instruction),
            *history,
            Message("user", user_text),
        ]
        specs = tuple(tool.spec for tool in self.tools.values())
        started = time.perf_counter()
        prompt_tokens = completion_tokens = 0
        produced: list[str] = []
        with bind(agent=self.name):
            log.debug("agent run started")
            for iteration in range(1, self.config.max_iterations + 1):
                request = LLMRequest(messages=tuple(messages), tools=specs)
                step_text: list[str] = []
                calls: tuple[ToolCall, ...] = ()
                usage = Usage()
                if stream:
                    async for chunk in self.llm.stream(request):
                        if chunk.text:
                            step_text.append(chunk.text)
                            yield TextDelta(chunk.text)
                        calls += chunk.tool_calls
                        usage = chunk.usage or usage
                else:
                    response = await self.llm.complete(request)
                    calls, usage = response.message.tool_calls, response.usage
                    if response.message.content:
                        step_text.append(response.message.content)
                        yield TextDelta(response.message.content)
                prompt_tokens += usage.prompt_tokens
                completion_tokens += usage.completion_tokens
                produced.extend(step_text)
                if not calls:
                    log.info(
                        "agent run completed",
                        extra={
                            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                            "iterations": iteration,
                            "tokens_used": prompt_tokens + completion_tokens,
                        },
                    )
                    yield FinalReply("".join(produced), Usage(prompt_tokens, completion_tokens))
                    return
                messages.append(Message("assistant", "".join(step_text), tool_calls=calls))
                for call in calls:
                    yield ToolCallStarted(call)
                    outcome = await self._call_tool(call)
                    yield ToolCallFinished(call, outcome)
                    messages.append(
                        Message("tool", outcome.output, tool_call_id=call.id, name=call.name)
                    )
        raise AgentError(
            f"no final answer after {self.config.max_iterations} model calls (max_iterations)"
        )

    async def _call_tool(self, call: ToolCall) -> ToolOutcome:
        tool = self.tools.get(call.name)
        if tool is None or self.registry is None:
            return ToolOutcome(False, f"error: unknown tool '{call.name}'", "unknown_tool")
        return await self.registry.execute(tool, call.arguments)
