"""Anthropic Messages API."""

from __future__ import annotations

from typing import Any

from hector_py.llm.base import IMAGES_AND_PDF, Attachment, LLMRequest, LLMResponse, Message, Usage
from hector_py.llm.remote import JSON, RemoteLLM, StreamState, merge_turns, response, split_system

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires ``max_tokens``; used when the config sets none."""


class AnthropicLLM(RemoteLLM):
    """``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version``."""

    provider = "anthropic"
    accepts = IMAGES_AND_PDF
    models_path = "/v1/models"
    default_base_url = "https://api.anthropic.com"
    key_env = ("ANTHROPIC_API_KEY",)

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": API_VERSION}

    def _request(self, request: LLMRequest, *, stream: bool) -> tuple[str, JSON]:
        system, messages = split_system(request.messages)
        body: JSON = {
            "model": self.model,
            "max_tokens": self.config.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [
                {"role": role, "content": blocks}
                for role, blocks in merge_turns(_turn(m) for m in messages)
            ],
        }
        if request.output is not None:  # no native JSON mode: the schema as an instruction
            system = "\n\n".join(filter(None, [system, request.output.instruction()]))
        if system is not None:
            body["system"] = system
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        if stream:
            body["stream"] = True
        return f"{self.base_url}/v1/messages", body

    def _parse(self, data: Any) -> LLMResponse:
        blocks = data["content"]
        calls = [
            self.tool_call(b["id"], b["name"], b.get("input"))
            for b in blocks
            if b["type"] == "tool_use"
        ]
        usage = data.get("usage") or {}
        return response(
            "".join(b["text"] for b in blocks if b["type"] == "text"),
            calls,
            Usage(_prompt_tokens(usage) or 0, usage.get("output_tokens") or 0, _cached(usage)),
            truncated=data.get("stop_reason") == "max_tokens",
            model=data.get("model"),
            id=data.get("id"),
        )

    def _on_event(self, payload: str, state: StreamState) -> str:
        event = self.event(payload)
        kind = event["type"]
        if kind == "message_start":
            state.model, state.id = event["message"].get("model"), event["message"].get("id")
            usage = event["message"].get("usage") or {}
            state.prompt_tokens = _prompt_tokens(usage)
            state.cached_tokens = _cached(usage)
            state.completion_tokens = usage.get("output_tokens")
        elif kind == "content_block_start":
            block = event["content_block"]
            if block["type"] == "tool_use":
                state.partial_call(event["index"], block["id"], block["name"])
            elif block["type"] == "text":
                return str(block.get("text") or "")
        elif kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                return str(delta["text"])
            if delta["type"] == "input_json_delta":
                state.partial_call(event["index"]).arguments += delta["partial_json"]
        elif kind == "message_delta":
            stop = (event.get("delta") or {}).get("stop_reason")
            state.truncated = state.truncated or stop == "max_tokens"
            usage = event.get("usage") or {}
            if usage.get("output_tokens") is not None:
                state.completion_tokens = usage["output_tokens"]
            if usage.get("input_tokens") is not None:
                state.prompt_tokens = _prompt_tokens(usage)
        elif kind == "message_stop":
            state.done = True
        return ""


def _turn(message: Message) -> tuple[str, list[JSON]]:
    blocks: list[JSON] = [{"type": "text", "text": message.content}] if message.content else []
    blocks += [_file(file) for file in message.attachments]
    if message.role == "tool":
        content = blocks if message.attachments else message.content
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": content}
        return "user", [result]
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
        for c in message.tool_calls
    ]
    return message.role, blocks


def _file(file: Attachment) -> JSON:
    """An ``image`` or (PDF) ``document`` block with the bytes inline."""
    source = {"type": "base64", "media_type": file.media_type, "data": file.base64}
    return {"type": "image" if file.is_image else "document", "source": source}


def _cached(usage: JSON) -> int:
    """Prompt tokens read from the cache."""
    cached = usage.get("cache_read_input_tokens")
    return cached if isinstance(cached, int) else 0


def _prompt_tokens(usage: JSON) -> int | None:
    """Input tokens, cached ones included (Anthropic counts those apart)."""
    counts = [
        usage.get(key)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    present = [c for c in counts if isinstance(c, int)]
    return sum(present) if present else None
