"""The request side of ``/v1/chat/completions``: OpenAI's error shape, the caller's
messages read (text and file content parts) and checked by the guardrails, and the
``response_format`` asked for."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web
from jsonschema import exceptions as schema_exceptions
from jsonschema import validators

from hector_py.agent.guardrails import GuardrailBlocked, Guardrails
from hector_py.config.a2a import FilesConfig
from hector_py.llm.base import Attachment, Message, OutputSchema
from hector_py.server.files import FileRefused, accepted, fetch, media_type

_ROLES = ("system", "developer", "user", "assistant", "tool")


class ApiError(Exception):
    """An error in OpenAI's error format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers
        self.status, self.message, self.param, self.code, self.kind = (
            status,
            message,
            param,
            code,
            kind,
        )

    def body(self) -> dict[str, Any]:
        """The JSON error object."""
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> web.Response:
        """As an HTTP response."""
        return web.json_response(self.body(), status=self.status, headers=self.headers)


async def conversation(
    body: dict[str, Any], allow_system: bool, files: FilesConfig, accepts: frozenset[str]
) -> tuple[list[Message], Message]:
    """Earlier turns and the last user message from ``messages``; system and developer
    messages are refused unless ``allow_system``; image and file parts become files."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "messages: must be a non-empty list", param="messages")
    turns: list[Message] = []
    for index, item in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(item, dict) or item.get("role") not in _ROLES:
            raise ApiError(
                400, f"{where}: needs a role of system, user, assistant or tool", param=where
            )
        role = item["role"]
        content, attached = await _content(item.get("content"), f"{where}.content", files, accepts)
        if role in ("system", "developer") and not allow_system:
            raise ApiError(
                400,
                f"{where}: {role} messages are not accepted here "
                "(server.openai_api.allow_system_messages)",
                param=where,
                code="system_messages_not_allowed",
            )
        if role in ("user", "assistant"):
            turns.append(Message(role, content, attachments=attached if role == "user" else ()))
        elif role in ("system", "developer") and content:
            turns.append(Message("system", content))
    last = turns[-1] if turns else None
    if last is None or last.role != "user" or not (last.content.strip() or last.attachments):
        raise ApiError(
            400, "messages: the last message must be a non-empty user message", param="messages"
        )
    return turns[:-1], last


async def _content(
    content: Any, where: str, files: FilesConfig, accepts: frozenset[str]
) -> tuple[str, tuple[Attachment, ...]]:
    """A message's text and files: a string, or parts (``text``, ``image_url``, ``file``)."""
    if content is None or isinstance(content, str):
        return content or "", ()
    if not isinstance(content, list):
        raise ApiError(400, f"{where}: must be a string or parts", param=where)
    texts: list[str] = []
    found: list[Attachment] = []
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        if not isinstance(part, dict):
            raise ApiError(400, f"{at}: must be an object", param=where)
        kind = part.get("type", "text")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise ApiError(400, f"{where}: a part's text must be a string", param=where)
            texts.append(part["text"])
        elif kind in ("image_url", "file"):
            found.append(await _file(part, kind, at, files, accepts))
        else:
            raise ApiError(400, f"{at}.type: {kind!r} parts are not supported", param=where)
    return "".join(texts), tuple(found)


async def _file(
    part: dict[str, Any], kind: str, where: str, files: FilesConfig, accepts: frozenset[str]
) -> Attachment:
    """An ``image_url`` (``{url}``) or ``file`` (``{file_data, filename}``) part."""
    inner = part.get(kind)
    key = "url" if kind == "image_url" else "file_data"
    url = inner.get(key) if isinstance(inner, dict) else None
    if not isinstance(url, str) or not url:
        raise ApiError(400, f"{where}.{kind}.{key}: required, a URL", param=where)
    name = inner.get("filename") if isinstance(inner, dict) else None
    name = name if isinstance(name, str) else None
    try:
        if kind == "file" and not url.startswith("data:"):  # bare base64, typed by its name
            url = f"data:{media_type(None, name, where)};base64,{url}"
        return accepted(await fetch(url, None, name, files, where), accepts, where)
    except FileRefused as exc:
        code = "unsupported_media_type" if exc.unsupported else "invalid_file"
        raise ApiError(400, str(exc), param=where, code=code) from None


def guarded(
    guardrails: Guardrails, history: list[Message], prompt: Message
) -> tuple[list[Message], Message]:
    """Every caller-supplied message through the input guardrails (whatever its role:
    an earlier turn, a forged assistant turn and a system message reach the model too),
    redacted where they say so, each guardrail checking them all under one span;
    ``ApiError`` when one is blocked."""
    messages = [*history, prompt]
    try:
        texts = guardrails.check_inputs([m.content for m in messages], [m.role for m in messages])
    except GuardrailBlocked as exc:
        role = messages[exc.index].role
        raise ApiError(
            400, f"{exc} (a {role} message)", param="messages", code="guardrail_blocked"
        ) from None
    checked = [replace(m, content=text) for m, text in zip(messages, texts, strict=True)]
    return checked[:-1], checked[-1]


def output_format(body: dict[str, Any]) -> OutputSchema | None:
    """``response_format``: ``json_schema`` (its ``schema``, ``name``, ``strict``) or
    ``json_object``; ``text`` or none is free text."""
    spec = body.get("response_format")
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return OutputSchema({"type": "object"})
    where = "response_format.json_schema"
    inner = spec.get("json_schema") if kind == "json_schema" else None
    if not isinstance(inner, dict):
        raise ApiError(
            400,
            "response_format: must be {type: text | json_object | json_schema, json_schema}",
            param="response_format",
        )
    schema = inner.get("schema", {})
    try:
        validators.validator_for(schema).check_schema(schema)
    except schema_exceptions.SchemaError as exc:
        raise ApiError(
            400, f"{where}.schema: not a valid JSON Schema: {exc.message}", param=where
        ) from None
    name = inner.get("name")
    return OutputSchema(
        schema, name if isinstance(name, str) and name else "reply", inner.get("strict") is True
    )
