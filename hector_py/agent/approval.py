"""Human approval of tool calls: a run that reaches a tool needing approval pauses (the task
goes to ``input-required`` with the pending calls); the caller's answer on the same task
decides each call and the run resumes from where it stopped. The paused state is plain
JSON in the task, so every store keeps it across restarts."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from hector_py.llm.base import Message, ToolCall

APPROVE, DENY = "approve", "deny"
DENIED = "error: denied by user"
_YES = re.compile(r"^\s*(y|yes|ok|approve[d]?|allow)\s*[.!]?\s*$", re.I)
_NO = re.compile(r"^\s*(n|no|deny|denied|reject)\s*[.!]?\s*$", re.I)


class AnswerError(ValueError):
    """An answer that does not decide the pending calls; the message names why."""


class InputNeeded(Exception):
    """Raised by a tool whose agent waits for a person (a sub-agent that ended in
    ``input-required``): the delegating run pauses too, asking ``question``, and the answer
    goes back to that tool's ``answer(state, text)``. ``state`` is JSON."""

    def __init__(self, question: str, state: dict[str, Any]) -> None:
        super().__init__(question)
        self.question = question
        self.state = state


@dataclass(frozen=True)
class ApprovalRequired:
    """Run event: the run stops here until a person decides ``calls``."""

    messages: tuple[Message, ...]
    calls: tuple[ToolCall, ...]
    ask: tuple[str, ...]
    """Ids of the calls that need a decision (the others run when the run resumes)."""
    span: str | None = None
    """The paused run's span (``trace_id-span_id``): the resumed run links to it."""
    forward: dict[str, Any] | None = None
    """When a tool's agent asks (``InputNeeded``): ``{call, question, state, decisions}``,
    the call the answer goes to and the decisions already made for the calls after it."""


@dataclass(frozen=True)
class Resume:
    """Where a paused run goes on: its messages, the calls decided (``True``: approved)."""

    messages: list[Message]
    calls: tuple[ToolCall, ...]
    decisions: dict[str, bool]
    span: str | None = None
    forward: dict[str, Any] | None = None
    """The call whose tool gets ``answer`` (see ``ApprovalRequired.forward``)."""
    answer: str = ""


def pause(event: ApprovalRequired, user_text: str, timeout: float) -> dict[str, Any]:
    """The task's ``pending`` JSON for a paused run."""
    return {
        "messages": [_message_json(m) for m in event.messages],
        "calls": [_call_json(c) for c in event.calls],
        "ask": list(event.ask),
        "span": event.span,
        "forward": event.forward,
        "text": user_text,
        "deadline": time.time() + timeout,
    }


def question(pending: dict[str, Any], redact: Any) -> tuple[str, dict[str, Any]]:
    """The status message of a paused task: a text question and the pending calls (their
    arguments redacted); a sub-agent's question as it asks it."""
    if forward := pending.get("forward"):
        inner = forward["state"].get("pending")
        return question(inner, redact) if inner is not None else (forward["question"], {})
    calls = [
        {
            "tool_call_id": c["id"],
            "tool": c["name"],
            "arguments": json.loads(redact(json.dumps(c["arguments"]))),
        }
        for c in pending["calls"]
        if c["id"] in pending["ask"]
    ]
    names = ", ".join(sorted({c["tool"] for c in calls}))
    text = (
        f"Approve running {names}? Answer yes or no, or send a data part"
        ' {"decisions": {"<tool_call_id>": "approve" | "deny"}}.'
    )
    return text, {"pending": calls}


def decide(pending: dict[str, Any], answer: str) -> dict[str, bool]:
    """Each pending call's decision from the answer's text: yes/no for all, or a JSON
    ``{"decisions": {...}}`` (a data part reaches here as JSON text). Calls left undecided
    are denied. ``AnswerError`` for anything else. An answer for a sub-agent decides
    nothing here: it goes to the sub-agent (a local one's pending calls check it now)."""
    if forward := pending.get("forward"):
        if (inner := forward["state"].get("pending")) is not None:
            decide(inner, answer)
        return {}
    ids = list(pending["ask"])
    if _YES.match(answer):
        return dict.fromkeys(ids, True)
    if _NO.match(answer):
        return dict.fromkeys(ids, False)
    decisions = _decisions_in(answer)
    if decisions is None:
        raise AnswerError('answer yes or no, or send {"decisions": {id: approve|deny}}')
    unknown = sorted(set(decisions) - set(ids))
    if unknown:
        raise AnswerError(f"unknown tool_call_id {unknown[0]!r} (pending: {', '.join(ids)})")
    bad = [v for v in decisions.values() if v not in (APPROVE, DENY)]
    if bad:
        raise AnswerError(f"a decision must be approve or deny, not {bad[0]!r}")
    return {i: decisions.get(i) == APPROVE for i in ids}


def tools_asked(pending: dict[str, Any]) -> dict[str, str]:
    """Tool call id -> tool name, of the calls a person decides."""
    return {c["id"]: c["name"] for c in pending["calls"] if c["id"] in pending["ask"]}


def resume(pending: dict[str, Any], decisions: dict[str, bool], answer: str = "") -> Resume:
    """The paused run, ready to go on (``answer``: what a sub-agent that asked gets)."""
    messages = [_message(m) for m in pending["messages"]]
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in pending["calls"])
    forward = pending.get("forward")
    if forward:  # the decisions made before the sub-agent asked still hold
        decisions = {**forward["decisions"], **decisions}
    return Resume(messages, calls, decisions, pending.get("span"), forward, answer)


def expired(pending: dict[str, Any]) -> bool:
    """Whether the answer came too late."""
    return time.time() > float(pending["deadline"])


def _decisions_in(answer: str) -> dict[str, Any] | None:
    for line in answer.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("decisions"), dict):
            return value["decisions"]  # type: ignore[no-any-return]
    return None


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "role": message.role,
        "content": message.content,
        "tool_calls": [_call_json(c) for c in message.tool_calls],
        "tool_call_id": message.tool_call_id,
        "name": message.name,
    }


def _message(data: dict[str, Any]) -> Message:
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in data["tool_calls"])
    return Message(data["role"], data["content"], calls, data["tool_call_id"], data["name"])
