"""Captured payloads in the structure of the OpenTelemetry GenAI conventions: JSON
``gen_ai.system_instructions``, ``gen_ai.input.messages`` and ``gen_ai.output.messages``
(role + typed parts), and tool call arguments as JSON, which Phoenix and Langfuse show
in their input/output panels. Every text is redacted, then cut to ``max_chars``; files
are named by type and size, never recorded."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

Clean = Callable[[str], str]
JSON = dict[str, Any]


def clean_value(value: Any, clean: Clean) -> Any:
    """``value`` with every string in it cleaned (keys kept), JSON-shaped."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return {str(k): clean_value(v, clean) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_value(v, clean) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON text."""
    return orjson.dumps(value, default=str).decode()


def _parts(message: Any, clean: Clean) -> list[JSON]:
    parts: list[JSON] = []
    if message.role == "tool":
        parts.append(
            {
                "type": "tool_call_response",
                "id": message.tool_call_id,
                "response": clean(message.content),
            }
        )
        return parts + _file_parts(message)
    if message.content:
        parts.append({"type": "text", "content": clean(message.content)})
    parts += _call_parts(message.tool_calls, clean)
    return parts + _file_parts(message)


def _file_parts(message: Any) -> list[JSON]:
    """A message's files, by type and size: their bytes are never recorded."""
    return [
        {
            "type": "file",
            "modality": "image" if file.is_image else "document",
            "mime_type": file.media_type,
            "size": len(file.data),
        }
        for file in getattr(message, "attachments", ())
    ]


def _call_parts(calls: Sequence[Any], clean: Clean) -> list[JSON]:
    return [
        {
            "type": "tool_call",
            "id": call.id,
            "name": call.name,
            "arguments": clean_value(call.arguments, clean),
        }
        for call in calls
    ]


def input_attributes(messages: Sequence[Any], clean: Clean) -> dict[str, str]:
    """``gen_ai.system_instructions`` (system messages) and ``gen_ai.input.messages``."""
    system = [{"type": "text", "content": clean(m.content)} for m in messages if m.role == "system"]
    chat = [{"role": m.role, "parts": _parts(m, clean)} for m in messages if m.role != "system"]
    attributes = {"gen_ai.input.messages": dumps(chat)}
    if system:
        attributes["gen_ai.system_instructions"] = dumps(system)
    return attributes


def output_attributes(
    text: str, calls: Sequence[Any], finish_reason: str, clean: Clean
) -> dict[str, str]:
    """``gen_ai.output.messages``: the assistant's answer, its tool calls and why it ended."""
    parts = ([{"type": "text", "content": clean(text)}] if text else []) + _call_parts(calls, clean)
    message = {"role": "assistant", "parts": parts, "finish_reason": finish_reason}
    return {"gen_ai.output.messages": dumps([message])}
