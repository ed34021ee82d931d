"""The offline ``demo`` model: deterministic, no network, no key.

It echoes the last user message (and names the type and size of its files), counts words
as tokens, and calls a tool when asked with ``use TOOL {json args}`` and that tool is
offered, or for a plain "what time is it" / "calculate 2+2" when ``current_time`` /
``calculator`` is. Asked for JSON (an output schema), it answers with a value that
matches the schema, made from the message. Streams go word by word.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from hector_py.llm.base import (
    IMAGES_AND_PDF,
    LLMChunk,
    LLMRequest,
    LLMResponse,
    Message,
    ToolCall,
    Usage,
)

_TOOL_COMMAND = re.compile(r"^\s*use\s+(\w+)\s*(\{.*\})?\s*$", re.DOTALL)
# Plain requests the demo recognises when the matching tool is offered.
_TIME_REQUEST = re.compile(r"\bwhat\s+time\b|\bcurrent\s+time\b|\bwhat'?s\s+the\s+time\b", re.I)
_CALC_REQUEST = re.compile(
    r"^\s*(?:calculate|compute|what\s+is)\s+([-+*/%().\d\s]+?)\s*\??\s*$", re.I
)


class DemoLLM:
    """A deterministic stand-in for a real model."""

    provider = "demo"
    accepts = IMAGES_AND_PDF

    def __init__(self, model: str = "demo", stream_delay: float = 0.02) -> None:
        self.model = model
        self.stream_delay = stream_delay

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer in one piece, taking as long as the stream would."""
        message = self._answer(request)
        words = len(message.content.split(" ")) if message.content else 1
        if self.stream_delay:
            await asyncio.sleep(self.stream_delay * (words - 1))
        return LLMResponse(
            message=message,
            usage=_usage(request, message),
            finish_reason="tool_calls" if message.tool_calls else "stop",
            model=self.model,
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """Answer word by word, ``stream_delay`` seconds apart; usage on the last chunk."""
        message = self._answer(request)
        if message.tool_calls:
            yield LLMChunk(
                tool_calls=message.tool_calls,
                usage=_usage(request, message),
                finish_reason="tool_calls",
                model=self.model,
            )
            return
        words = message.content.split(" ")
        for index, word in enumerate(words):
            if index and self.stream_delay:
                await asyncio.sleep(self.stream_delay)
            last = index == len(words) - 1
            yield LLMChunk(
                text=word if index == 0 else " " + word,
                usage=_usage(request, message) if last else None,
                finish_reason="stop" if last else None,
                model=self.model if last else None,
            )

    def _answer(self, request: LLMRequest) -> Message:
        last = request.messages[-1] if request.messages else Message("user", "")
        if last.role == "tool":
            said = (last.content + _files(last)).strip()
            return Message("assistant", f"The tool returned: {said}")
        turns = sum(1 for m in request.messages if m.role == "user")
        command = _TOOL_COMMAND.match(last.content)
        offered = {tool.name for tool in request.tools}
        arguments = _json_object(command.group(2)) if command else None
        if command and arguments is not None and command.group(1) in offered:
            call = ToolCall(id=f"call_{turns}", name=command.group(1), arguments=arguments)
            return Message("assistant", "", tool_calls=(call,))
        plain = _plain_request(last.content, offered)
        if plain is not None:
            call = ToolCall(id=f"call_{turns}", name=plain[0], arguments=plain[1])
            return Message("assistant", "", tool_calls=(call,))
        text = " ".join(last.content.split()) or "(nothing)"
        if request.output is not None:
            return Message("assistant", json.dumps(_instance(request.output.schema, text)))
        return Message(
            "assistant",
            f'You said: "{text}". This is the offline demo model (turn {turns}).{_files(last)}',
        )


def _files(message: Message) -> str:
    """What the demo "sees" of a message's files: each one's type and size."""
    if not message.attachments:
        return ""
    return (
        " Files: "
        + ", ".join(f"{file.media_type} ({len(file.data)} bytes)" for file in message.attachments)
        + "."
    )


def _instance(schema: Any, text: str) -> Any:
    """A value that matches ``schema`` (the common keywords), made from ``text``: strings
    are the text, numbers its word count."""
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _instance(schema[key][0], text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _instance(sub, text) for name, sub in properties.items()}
    if kind == "array":
        return [_instance(schema.get("items"), text)] * max(1, schema.get("minItems", 1))
    values = {"integer": len(text.split()), "number": float(len(text.split())), "boolean": True}
    return values.get(kind, None if kind == "null" else text)


def _plain_request(text: str, offered: set[str]) -> tuple[str, dict[str, Any]] | None:
    """A tool call for "what time is it" or "calculate 2+2" when that tool is offered."""
    if "current_time" in offered and _TIME_REQUEST.search(text):
        return "current_time", {}
    match = _CALC_REQUEST.match(text)
    if "calculator" in offered and match:
        return "calculator", {"expression": match.group(1).strip()}
    return None


def _json_object(text: str | None) -> dict[str, Any] | None:
    """``text`` parsed as a JSON object; ``{}`` when absent, ``None`` when not an object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _count(text: str) -> int:
    return len(text.split())


def _usage(request: LLMRequest, answer: Message) -> Usage:
    prompt = sum(_count(m.content) for m in request.messages)
    completion = _count(answer.content) + sum(len(c.arguments) + 1 for c in answer.tool_calls)
    return Usage(prompt_tokens=prompt, completion_tokens=completion)
