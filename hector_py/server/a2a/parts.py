"""The parts of an incoming A2A message in either dialect: text, data (JSON text for the
model) and files (inline bytes or URLs), checked against the size cap and the media types
the agent's model takes (-32005 otherwise)."""

from __future__ import annotations

import json
from typing import Any

from hector_py.config.a2a import FilesConfig
from hector_py.llm.base import Attachment
from hector_py.server.a2a.errors import CONTENT_TYPE_NOT_SUPPORTED, INVALID_PARAMS, RpcError
from hector_py.server.a2a_wire import Dialect
from hector_py.server.files import FileRefused, accepted, decode, fetch, media_type

_CONTENT_KEYS = ("text", "raw", "url", "data")  # a v1.0 part holds exactly one of these


async def read_parts(
    dialect: Dialect, parts: list[Any], config: FilesConfig, accepts: frozenset[str]
) -> tuple[str, tuple[Attachment, ...]]:
    """The message's text (text parts, then data parts as JSON) and its files."""
    texts: list[str] = []
    files: list[Attachment] = []
    for index, part in enumerate(parts):
        where = f"params.message.parts[{index}]"
        if not isinstance(part, dict):
            raise RpcError(INVALID_PARAMS, f"{where}: must be an object")
        try:
            content = await _read(dialect, part, where, config, accepts)
        except FileRefused as exc:
            code = CONTENT_TYPE_NOT_SUPPORTED if exc.unsupported else INVALID_PARAMS
            raise RpcError(code, str(exc)) from None
        if isinstance(content, Attachment):
            files.append(content)
        elif content:
            texts.append(content)
    return "\n".join(texts), tuple(files)


async def _read(
    dialect: Dialect, part: dict[str, Any], where: str, config: FilesConfig, accepts: frozenset[str]
) -> str | Attachment:
    if dialect.kinds:  # v0.3: {kind: text|file|data, ...}
        kind = part.get("kind")
        if kind == "file":
            return await _file_v03(part.get("file"), f"{where}.file", config, accepts)
        if kind == "data":
            return _data(part.get("data"), f"{where}.data", dict)
        if kind != "text":
            raise RpcError(INVALID_PARAMS, f"{where}.kind: must be text, file or data")
        return _text(part, where)
    found = [key for key in _CONTENT_KEYS if key in part]
    if len(found) != 1:
        raise RpcError(INVALID_PARAMS, f"{where}: needs exactly one of text, raw, url or data")
    name = part.get("filename") if isinstance(part.get("filename"), str) else None
    if found[0] == "raw":
        kind = media_type(part.get("mediaType"), name, f"{where}.mediaType")
        file = decode(part["raw"], kind, name, config.max_bytes, f"{where}.raw")
        return accepted(file, accepts, f"{where}.mediaType")
    if found[0] == "url":
        return await _fetched(part["url"], part.get("mediaType"), name, where, config, accepts)
    if found[0] == "data":
        return _data(part["data"], f"{where}.data", object)
    return _text(part, where)


def _text(part: dict[str, Any], where: str) -> str:
    kind = part.get("mediaType") or "text/plain"
    if not isinstance(kind, str) or not kind.startswith("text/"):
        raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, f"{where}.mediaType: a text part must be text/*")
    text = part.get("text")
    if not isinstance(text, str):
        raise RpcError(INVALID_PARAMS, f"{where}.text: must be a string")
    return text


def _data(value: Any, where: str, kind: type) -> str:
    """A data part as JSON text for the model."""
    if not isinstance(value, kind) or value is None:
        raise RpcError(
            INVALID_PARAMS, f"{where}: must be {'an object' if kind is dict else 'JSON'}"
        )
    return json.dumps(value, ensure_ascii=False)


async def _file_v03(
    file: Any, where: str, config: FilesConfig, accepts: frozenset[str]
) -> Attachment:
    if not isinstance(file, dict) or ("bytes" in file) == ("uri" in file):
        raise RpcError(INVALID_PARAMS, f"{where}: must be an object with bytes or uri")
    name = file.get("name") if isinstance(file.get("name"), str) else None
    if "uri" in file:
        return await _fetched(file["uri"], file.get("mimeType"), name, where, config, accepts)
    kind = media_type(file.get("mimeType"), name, f"{where}.mimeType")
    found = decode(file["bytes"], kind, name, config.max_bytes, f"{where}.bytes")
    return accepted(found, accepts, f"{where}.mimeType")


async def _fetched(
    url: Any, kind: Any, name: str | None, where: str, config: FilesConfig, accepts: frozenset[str]
) -> Attachment:
    if not isinstance(url, str) or not url:
        raise RpcError(INVALID_PARAMS, f"{where}: the URL must be a non-empty string")
    if isinstance(kind, str) and kind:  # refuse before fetching what the model cannot take
        accepted(Attachment(media_type(kind, None, where), b""), accepts, where)
    return accepted(await fetch(url, kind, name, config, where), accepts, where)
