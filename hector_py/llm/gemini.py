"""Google Gemini API (``generateContent``)."""

from __future__ import annotations

from typing import Any

from hector_py.llm.base import (
    IMAGES_AND_PDF,
    Attachment,
    LLMRequest,
    LLMResponse,
    Message,
    ToolCall,
    Usage,
)
from hector_py.llm.remote import (
    JSON,
    RemoteLLM,
    StreamState,
    merge_turns,
    new_call_id,
    response,
    split_system,
    tool_name,
    tool_names,
)


class GeminiLLM(RemoteLLM):
    """``POST {base_url}/v1beta/models/{model}:generateContent`` (``:streamGenerateContent``
    for streams), the key in ``x-goog-api-key``."""

    provider = "gemini"
    accepts = IMAGES_AND_PDF
    models_path = "/v1beta/models"
    default_base_url = "https://generativelanguage.googleapis.com"
    key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    def _request(self, request: LLMRequest, *, stream: bool) -> tuple[str, JSON]:
        system, messages = split_system(request.messages)
        names = tool_names(messages)
        body: JSON = {
            "contents": [
                {"role": role, "parts": parts}
                for role, parts in merge_turns(_turn(m, names) for m in messages)
            ]
        }
        if system is not None:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if request.tools:
            declarations = [
                {"name": t.name, "description": t.description, "parameters": t.parameters}
                for t in request.tools
            ]
            body["tools"] = [{"functionDeclarations": declarations}]
        generation: JSON = {}
        if request.output is not None:
            generation["responseMimeType"] = "application/json"
            generation["responseJsonSchema"] = request.output.schema
        if self.config.temperature is not None:
            generation["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            generation["maxOutputTokens"] = self.config.max_tokens
        if generation:
            body["generationConfig"] = generation
        model = self.model.removeprefix("models/")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.base_url}/v1beta/models/{model}:{method}", body

    def _parse(self, data: Any) -> LLMResponse:
        text, calls, finish = _candidate(data)
        return response(
            text,
            calls,
            _usage(data.get("usageMetadata") or {}),
            truncated=finish == "MAX_TOKENS",
            model=data.get("modelVersion"),
            id=data.get("responseId"),
        )

    def _on_event(self, payload: str, state: StreamState) -> str:
        event = self.event(payload)
        text, calls, finish = _candidate(event)
        state.calls += calls
        metadata = event.get("usageMetadata")
        if metadata:
            usage = _usage(metadata)
            state.prompt_tokens = usage.prompt_tokens or state.prompt_tokens
            state.completion_tokens = usage.completion_tokens or state.completion_tokens
            state.cached_tokens = usage.cached_tokens or state.cached_tokens
            state.reasoning_tokens = usage.reasoning_tokens or state.reasoning_tokens
        state.done = state.done or finish is not None
        state.truncated = state.truncated or finish == "MAX_TOKENS"
        state.model = event.get("modelVersion") or state.model
        state.id = event.get("responseId") or state.id
        return text


def _turn(message: Message, names: dict[str, str]) -> tuple[str, list[JSON]]:
    if message.role == "tool":
        result = {"name": tool_name(message, names), "response": {"content": message.content}}
        return "user", [{"functionResponse": result}, *map(_inline, message.attachments)]
    parts: list[JSON] = [{"text": message.content}] if message.content else []
    parts += map(_inline, message.attachments)
    for call in message.tool_calls:
        part: JSON = {"functionCall": {"name": call.name, "args": call.arguments}}
        if call.signature:
            part["thoughtSignature"] = call.signature
        parts.append(part)
    return ("model" if message.role == "assistant" else "user"), parts


def _candidate(data: JSON) -> tuple[str, list[ToolCall], str | None]:
    """The first candidate's text (thoughts left out), tool calls and finish reason."""
    candidates = data.get("candidates") or [{}]
    first = candidates[0]
    parts = (first.get("content") or {}).get("parts") or []
    text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
    calls = [
        ToolCall(
            p["functionCall"].get("id") or new_call_id(),
            p["functionCall"]["name"],
            p["functionCall"].get("args") or {},
            p.get("thoughtSignature"),
        )
        for p in parts
        if "functionCall" in p
    ]
    return text, calls, first.get("finishReason")


def _usage(metadata: JSON) -> Usage:
    """The call's tokens: thinking tokens count as completion (and as reasoning), tokens
    read from a context cache are part of the prompt (and counted as cached)."""
    thoughts = metadata.get("thoughtsTokenCount") or 0
    return Usage(
        metadata.get("promptTokenCount") or 0,
        (metadata.get("candidatesTokenCount") or 0) + thoughts,
        metadata.get("cachedContentTokenCount") or 0,
        thoughts,
    )


def _inline(file: Attachment) -> JSON:
    """A file as an ``inlineData`` part."""
    return {"inlineData": {"mimeType": file.media_type, "data": file.base64}}
