"""The agent loop: instruction + history -> LLM -> reply, emitted as events."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from hector_py.agent.store import ChatTurn, MemoryStore, Task, TaskState, new_id
from hector_py.config.model import AgentConfig
from hector_py.llm.base import LLM, LLMError, LLMRequest, Message, Usage
from hector_py.observability.logs import bind

log = logging.getLogger("hector.agent")


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply as it is produced."""

    text: str


@dataclass(frozen=True)
class FinalReply:
    """The run's final answer and the tokens it cost."""

    text: str
    usage: Usage


RunEvent = TextDelta | FinalReply


class Agent:
    """A configured agent bound to its model."""

    def __init__(self, name: str, config: AgentConfig, llm: LLM) -> None:
        self.name = name
        self.config = config
        self.llm = llm

    async def run(self, history: list[Message], user_text: str) -> AsyncIterator[RunEvent]:
        """Answer ``user_text`` given the session ``history``; the last event is FinalReply."""
        messages = (
            Message("system", self.config.instruction),
            *history,
            Message("user", user_text),
        )
        started = time.perf_counter()
        with bind(agent=self.name):
            log.debug("agent run started")
            response = await self.llm.complete(LLMRequest(messages=messages))
            text = response.message.content
            yield TextDelta(text)
            log.info(
                "agent run completed",
                extra={
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "tokens_used": response.usage.prompt_tokens + response.usage.completion_tokens,
                },
            )
            yield FinalReply(text, response.usage)


async def run_task(agent: Agent, store: MemoryStore, task: Task, user_text: str) -> Task:
    """Run ``agent`` on ``user_text`` within ``task``'s session; the task ends terminal.

    A failing model marks the task failed with a readable reason; it never raises.
    """
    task.state = TaskState.WORKING
    await store.save_task(task)
    history = await store.history(task.context_id)
    with bind(session_id=task.context_id, task_id=task.id):
        try:
            final: FinalReply | None = None
            async for event in agent.run(history, user_text):
                if isinstance(event, FinalReply):
                    final = event
        except LLMError as exc:
            log.warning("agent run failed: %s", exc)
            task.state, task.error = TaskState.FAILED, str(exc)
        except Exception:
            log.exception("agent run crashed")
            task.state, task.error = TaskState.FAILED, "internal error while running the agent"
        else:
            assert final is not None
            task.state, task.reply = TaskState.COMPLETED, final.text
            task.history.append(ChatTurn(new_id(), "agent", final.text))
            await store.append(
                task.context_id, [Message("user", user_text), Message("assistant", final.text)]
            )
    await store.save_task(task)
    return task
