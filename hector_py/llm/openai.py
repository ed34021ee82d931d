"""OpenAI Chat Completions, and any server that speaks it (vLLM, llama.cpp, LM Studio...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from hector_py.llm.base import (
    IMAGES_AND_PDF,
    Attachment,
    LLMRequest,
    LLMResponse,
    Message,
    ToolSpec,
    Usage,
)
from hector_py.llm.remote import JSON, RemoteLLM, StreamState, response


def function_tools(tools: Sequence[ToolSpec]) -> list[JSON]:
    """Tools in the OpenAI ``{"type": "function", ...}`` shape (Ollama uses it too)."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


class OpenAILLM(RemoteLLM):
    """``POST {base_url}/chat/completions``; the key goes in ``Authorization: Bearer``.

    Without a key and with a ``base_url`` of its own (a local server), no
    ``Authorization`` header is sent."""

    provider = "openai"
    accepts = IMAGES_AND_PDF
    default_base_url = "https://api.openai.com/v1"
    key_env = ("OPENAI_API_KEY",)

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def _request(self, request: LLMRequest, *, stream: bool) -> tuple[str, JSON]:
        body: JSON = {
            "model": self.model,
            "messages": [out for m in request.messages for out in _messages(m)],
        }
        if request.tools:
            body["tools"] = function_tools(request.tools)
        if request.output is not None:
            schema = {"name": request.output.name, "schema": request.output.schema}
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {**schema, "strict": request.output.strict},
            }
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            # OpenAI's newer models refuse max_tokens; compatible servers may not know the new name.
            official = self.base_url == self.default_base_url
            body["max_completion_tokens" if official else "max_tokens"] = self.config.max_tokens
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return f"{self.base_url}/chat/completions", body

    def _parse(self, data: Any) -> LLMResponse:
        choice = data["choices"][0]
        message = choice["message"]
        calls = [
            self.tool_call(c["id"], c["function"]["name"], c["function"].get("arguments"))
            for c in message.get("tool_calls") or ()
        ]
        return response(
            message.get("content") or "",
            calls,
            _usage(data.get("usage")) or Usage(),
            truncated=choice.get("finish_reason") == "length",
            model=data.get("model"),
            id=data.get("id"),
        )

    def _on_event(self, payload: str, state: StreamState) -> str:
        if payload.strip() == "[DONE]":
            state.done = True
            return ""
        event = self.event(payload)
        state.model, state.id = event.get("model") or state.model, event.get("id") or state.id
        usage = _usage(event.get("usage"))
        if usage is not None:
            state.prompt_tokens, state.completion_tokens = (
                usage.prompt_tokens,
                usage.completion_tokens,
            )
            state.cached_tokens, state.reasoning_tokens = (
                usage.cached_tokens,
                usage.reasoning_tokens,
            )
        text = ""
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            state.truncated = state.truncated or choice.get("finish_reason") == "length"
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                partial = state.partial_call(call["index"], call.get("id"), function.get("name"))
                partial.arguments += function.get("arguments") or ""
        return text


def _messages(message: Message) -> list[JSON]:
    """The message in OpenAI's shape. A tool message cannot hold files: its files follow
    in a user message."""
    if message.role == "tool":
        result: JSON = {"role": "tool", "tool_call_id": message.tool_call_id}
        result["content"] = message.content
        if not message.attachments:
            return [result]
        files = _content(f"Files returned by the tool {message.name or ''}:", message.attachments)
        return [result, {"role": "user", "content": files}]
    out: JSON = {"role": message.role, "content": message.content}
    if message.attachments:
        out["content"] = _content(message.content, message.attachments)
    if message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
            }
            for call in message.tool_calls
        ]
    return [out]


def _content(text: str, attachments: Sequence[Attachment]) -> list[JSON]:
    """Content parts: the text, then each image as ``image_url`` and each other file as
    ``file``, inline as data URLs."""
    parts: list[JSON] = [{"type": "text", "text": text}] if text else []
    for file in attachments:
        url = f"data:{file.media_type};base64,{file.base64}"
        if file.is_image:
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            parts.append(
                {"type": "file", "file": {"filename": file.name or "file", "file_data": url}}
            )
    return parts


def _usage(usage: Any) -> Usage | None:
    if not usage:
        return None
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    return Usage(
        usage.get("prompt_tokens") or 0,
        usage.get("completion_tokens") or 0,
        cached if isinstance(cached, int) else 0,
        reasoning if isinstance(reasoning, int) else 0,
    )
