"""The agent loop: instruction + history -> LLM -> tool calls -> ... -> reply, as events."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any

from hector_py.agent import structured
from hector_py.agent.approval import DENIED, ApprovalRequired, InputNeeded, Resume
from hector_py.agent.board import LiveRun, RunBoard
from hector_py.agent.calls import AgentError, ModelCaller, Step, UsageMeter
from hector_py.agent.guardrails import Guardrails
from hector_py.agent.structured import Structured
from hector_py.agent.tools import Tool, ToolOutcome, ToolRegistry
from hector_py.config.model import AgentConfig
from hector_py.llm.base import (
    LLM,
    Attachment,
    LLMRequest,
    Message,
    OutputSchema,
    ToolCall,
    Usage,
    accepted_types,
)
from hector_py.llm.breaker import Model
from hector_py.observability.logs import bind
from hector_py.observability.telemetry import Telemetry

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
class RunContext:
    """The run a tool call happens in: whose, who pays, which conversation, how deep."""

    agent: str
    meter: UsageMeter
    tenant: str
    session_id: str | None
    depth: int
    live: LiveRun | None = None
    """The run on the console's board (its current step is set as it goes)."""


CURRENT_RUN: ContextVar[RunContext | None] = ContextVar("hector_current_run", default=None)
"""Set while a run's tools execute (delegation to sub-agents reads it)."""


@dataclass(frozen=True)
class FinalReply:
    """The run's answer (all text produced), the tokens it cost, and why the last model
    call stopped (``stop``, ``length``...)."""

    text: str
    usage: Usage
    finish_reason: str = "stop"
    data: Structured | None = None
    """The answer as JSON, when the run had an output schema."""
    model: str | None = None
    """``provider/model`` of the model that gave the answer (it may be a fallback)."""


RunEvent = TextDelta | ToolCallStarted | ToolCallFinished | FinalReply | ApprovalRequired


ContextSource = Callable[[str], Awaitable[str | None]]
"""Extra instruction for a user message (e.g. the best chunks of a document store)."""


class Agent:
    """A configured agent bound to its model (and the model's fallbacks) and tools."""

    def __init__(
        self,
        name: str,
        config: AgentConfig,
        llm: LLM | Sequence[Model],
        telemetry: Telemetry,
        tools: Sequence[Tool] = (),
        registry: ToolRegistry | None = None,
        guardrails: Guardrails | None = None,
        context: ContextSource | None = None,
    ) -> None:
        self.name = name
        self.telemetry = telemetry
        self.config = config
        self.models = tuple(llm) if isinstance(llm, Sequence) else (Model(config.llm, llm),)
        self.llm = self.models[0].llm
        self.caller = ModelCaller(name, self.models, telemetry, config.max_reply_chars)
        self.approval: frozenset[str] = frozenset()
        """Names of this agent's tools that need a person's approval before they run."""
        self.tools = {tool.spec.name: tool for tool in tools}
        self.registry = registry
        self.guardrails = guardrails
        self.context = context
        self.board: RunBoard | None = None
        """Where runs in flight are listed (the run console), when set."""

    async def run(
        self,
        history: list[Message],
        user_text: str,
        *,
        files: tuple[Attachment, ...] = (),
        stream: bool = False,
        session_id: str | None = None,
        meter: UsageMeter | None = None,
        output: OutputSchema | None = None,
        tenant: str = "",
        depth: int = 0,
        resume: Resume | None = None,
    ) -> AsyncGenerator[RunEvent, None]:
        """Answer ``user_text`` (with ``files``) given the session ``history``; the last event
        is FinalReply. With ``output`` (else the agent's ``output_schema``) the answer must be
        JSON that matches it: one repair round, then ``AgentError``. ``tenant`` and ``depth``
        (hops of delegation) are what sub-agents called as tools run under. A run that
        reaches a tool in ``approval`` ends with ``ApprovalRequired``; ``resume`` goes on
        from there with the decisions.
        ``meter`` counts the tokens used, also when the run fails or is canceled.

        Raises ``LLMError`` when the model fails and ``AgentError`` when no answer comes
        within ``max_iterations`` model calls or the reply grows over ``max_reply_chars``.
        """
        messages = [
            Message("system", self.config.instruction),
            *history,
            Message("user", user_text, attachments=files),
        ]
        if resume is not None:  # a paused run: its own messages, up to the decided calls
            messages = list(resume.messages)
        specs = tuple(tool.spec for tool in self.tools.values())
        started = time.perf_counter()
        meter = UsageMeter() if meter is None else meter
        produced: list[str] = []
        reply_chars = 0
        llm = self.llm  # the primary: the run's span names it
        if output is None and self.config.output_schema is not None:
            output = OutputSchema(self.config.output_schema)
        repaired = False
        # Output guardrails and the schema see the whole reply first: a stream comes at once.
        hold = output is not None or (self.guardrails is not None and self.guardrails.checks_output)
        paused = resume.span if resume is not None else None
        run_scope = self.telemetry.agent_run(
            self.name, session_id, llm.provider, llm.model, resumed_from=paused
        )
        live = self.board.start(self.name, tenant, session_id, depth, meter) if self.board else None
        here = RunContext(self.name, meter, tenant, session_id, depth, live)
        with bind(agent=self.name), run_scope as scope, self._listed(live, scope):
            log.debug("agent run started")
            if resume is not None:
                async for event in self._tools(resume.calls, messages, here, scope, resume):
                    yield event
                    if isinstance(event, ApprovalRequired):
                        return
            elif self.context is not None and (extra := await self.context(user_text)):
                messages[0] = Message("system", f"{self.config.instruction}\n\n{extra}")
            for iteration in range(1, self.config.max_iterations + 1):
                if live is not None:
                    live.step = f"model call {iteration}"
                request = LLMRequest(messages=tuple(messages), tools=specs, output=output)
                step = Step(chars=reply_chars)
                async for text in self.caller.call(
                    request, step, stream=stream, hold=hold, meter=meter
                ):
                    yield TextDelta(text)
                reply_chars, step_text, calls = step.chars, step.text, step.calls
                produced.extend(step_text)
                data = None
                if not calls and output is not None:
                    answer = "".join(step_text)
                    found = structured.read(answer, output)
                    if isinstance(found, list):
                        if repaired:
                            raise AgentError(
                                "the answer does not match the output schema: " + "; ".join(found)
                            )
                        repaired = True
                        messages.append(Message("assistant", answer))
                        messages.append(Message("user", structured.repair_prompt(found)))
                        continue
                    produced, data = [answer], found
                if not calls:
                    log.debug(  # the access line is the one line per request at info
                        "agent run completed",
                        extra={
                            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                            "iterations": iteration,
                            "tokens_used": meter.total,
                        },
                    )
                    reply = "".join(produced)
                    if hold and self.guardrails is not None and self.guardrails.checks_output:
                        checked = self.guardrails.check_output(reply)
                        if data is not None and output is not None and checked != reply:
                            redacted = structured.read(checked, output)  # never the raw value
                            data = redacted if isinstance(redacted, Structured) else None
                        reply = checked
                    if hold and reply:
                        yield TextDelta(reply)
                    usage = Usage(meter.prompt_tokens, meter.completion_tokens)
                    yield FinalReply(reply, usage, step.finish_reason, data, step.answered_by)
                    return
                messages.append(Message("assistant", "".join(step_text), tool_calls=calls))
                ask = tuple(call.id for call in calls if call.name in self.approval)
                if ask:
                    yield ApprovalRequired(tuple(messages), calls, ask, scope.span_ids())
                    return
                async for event in self._tools(calls, messages, here, scope):
                    yield event
                    if isinstance(event, ApprovalRequired):
                        return
        raise AgentError(
            f"no final answer after {self.config.max_iterations} model calls (max_iterations)"
        )

    async def _tools(
        self,
        calls: tuple[ToolCall, ...],
        messages: list[Message],
        here: RunContext,
        scope: Any,
        resume: Resume | None = None,
    ) -> AsyncGenerator[RunEvent, None]:
        """Run ``calls`` (a denied one gives the model ``error: denied by user``); their
        results join ``messages``. A tool whose agent asks for input ends them with
        ``ApprovalRequired`` (``forward``): the run pauses there."""
        decisions = resume.decisions if resume is not None else {}
        forward = resume.forward if resume is not None else None
        for index, call in enumerate(calls):
            if here.live is not None:
                here.live.step = f"tool {call.name}"
            yield ToolCallStarted(call)
            asked: InputNeeded | None = None
            if decisions.get(call.id, True):
                answer = None
                if forward is not None and resume is not None and forward["call"] == call.id:
                    answer = (forward["state"], resume.answer)
                token = CURRENT_RUN.set(here)  # no yield until reset: one context
                try:
                    outcome = await self._call_tool(call, answer)
                except InputNeeded as exc:
                    asked = exc
                finally:
                    CURRENT_RUN.reset(token)
            else:
                outcome = ToolOutcome(False, DENIED, "denied")
            if asked is not None:
                rest = calls[index:]
                kept = {c.id: decisions[c.id] for c in rest if c.id in decisions}
                state = {"call": call.id, "question": asked.question, "state": asked.state}
                yield ApprovalRequired(
                    tuple(messages), rest, (), scope.span_ids(), {**state, "decisions": kept}
                )
                return
            yield ToolCallFinished(call, outcome)
            messages.append(self._tool_message(call, outcome))

    @contextmanager
    def _listed(self, live: LiveRun | None, scope: Any) -> Iterator[None]:
        """Keep ``live`` on the board while the run goes on (with its trace id)."""
        if live is None or self.board is None:
            yield
            return
        live.span_ids = scope.span_ids
        try:
            yield
        finally:
            self.board.end(live)

    def _tool_message(self, call: ToolCall, outcome: ToolOutcome) -> Message:
        """The tool result for the model: files its API takes go with it, the others are
        named in the text."""
        accepted = accepted_types(self.llm)
        files = tuple(file for file in outcome.files if file.media_type in accepted)
        text = "\n".join(
            [outcome.output, *(f.placeholder() for f in outcome.files if f not in files)]
        )
        return Message("tool", text, tool_call_id=call.id, name=call.name, attachments=files)

    async def _call_tool(
        self, call: ToolCall, answer: tuple[dict[str, Any], str] | None = None
    ) -> ToolOutcome:
        """Run one call (``answer``: the paused tool's state and what the person said);
        ``InputNeeded`` when the tool's agent asks for input."""
        tool = self.tools.get(call.name)
        asked: InputNeeded | None = None
        label = call.name if tool is not None else "unknown"  # model-chosen names stay bounded
        kind, server = (tool.kind, getattr(tool, "server", None)) if tool else (None, None)
        with self.telemetry.tool_call(self.name, label, call.id, kind, server) as scope:
            if tool is None or self.registry is None:
                outcome = ToolOutcome(False, f"error: unknown tool '{call.name}'", "unknown_tool")
            elif self.guardrails and (denied := self.guardrails.denied_tool(call.name)):
                outcome = ToolOutcome(False, denied, "unauthorized")
            elif call.error is not None:
                outcome = ToolOutcome(False, f"error: {call.error}", "invalid_arguments")
            else:
                respond = getattr(tool, "answer", None) if answer is not None else None
                resumed = partial(respond, *answer) if respond and answer else None
                try:
                    outcome = await self.registry.execute(tool, call.arguments, resumed)
                except InputNeeded as exc:  # not a failure: the span ends as it is
                    asked, outcome = exc, ToolOutcome(True, f"input required: {exc.question}")
            scope.error_type = None if outcome.ok else outcome.error_type or "error"
            scope.payload(call.arguments, outcome.output)
            if not outcome.ok:
                log.warning("tool %s failed (%s)", label, scope.error_type, extra={"tool": label})
        if asked is not None:
            raise asked
        return outcome
