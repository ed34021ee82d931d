"""Ollama's native chat API."""

from __future__ import annotations

from typing import Any

from hector_py.llm.base import LLMRequest, LLMResponse, Message, ToolCall, Usage
from hector_py.llm.openai import function_tools
from hector_py.llm.remote import (
    JSON,
    RemoteLLM,
    StreamState,
    new_call_id,
    response,
    tool_name,
    tool_names,
)


class OllamaLLM(RemoteLLM):
    """``POST {base_url}/api/chat``; streams are newline-delimited JSON. No key is needed;
    a configured ``api_key`` is sent as ``Authorization: Bearer`` (for hosted Ollama)."""

    provider = "ollama"
    accepts = frozenset({"image/png", "image/jpeg"})
    models_path = "/api/tags"
    default_base_url = "http://localhost:11434"
    framing = "ndjson"

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def _request(self, request: LLMRequest, *, stream: bool) -> tuple[str, JSON]:
        names = tool_names(request.messages)
        body: JSON = {
            "model": self.model,
            "messages": [_message(m, names) for m in request.messages],
            "stream": stream,  # Ollama streams unless told not to
        }
        if request.tools:
            body["tools"] = function_tools(request.tools)
        if request.output is not None:
            body["format"] = request.output.schema
        options: JSON = {}
        if self.config.temperature is not None:
            options["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            options["num_predict"] = self.config.max_tokens
        if options:
            body["options"] = options
        return f"{self.base_url}/api/chat", body

    def _parse(self, data: Any) -> LLMResponse:
        message = data["message"]
        return response(
            message.get("content") or "",
            self._calls(message),
            Usage(data.get("prompt_eval_count") or 0, data.get("eval_count") or 0),
            truncated=data.get("done_reason") == "length",
            model=data.get("model"),
        )

    def _on_event(self, payload: str, state: StreamState) -> str:
        event = self.event(payload)
        message = event.get("message") or {}
        state.calls += self._calls(message)
        state.model = event.get("model") or state.model
        if event.get("done"):
            state.done = True
            state.truncated = event.get("done_reason") == "length"
            state.prompt_tokens = event.get("prompt_eval_count") or 0
            state.completion_tokens = event.get("eval_count") or 0
        return str(message.get("content") or "")

    def _calls(self, message: JSON) -> list[ToolCall]:
        return [
            self.tool_call(
                c.get("id") or new_call_id(),
                c["function"]["name"],
                c["function"].get("arguments"),
            )
            for c in message.get("tool_calls") or ()
        ]


def _message(message: Message, names: dict[str, str]) -> JSON:
    out: JSON = {"role": message.role, "content": message.content}
    if message.attachments:  # images only (``accepts``)
        out["images"] = [file.base64 for file in message.attachments]
    if message.role == "tool":
        out["tool_name"] = tool_name(message, names)
    if message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": c.arguments}} for c in message.tool_calls
        ]
    return out
