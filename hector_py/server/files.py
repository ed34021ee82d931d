"""Files that arrive in messages: inline base64 or data URLs decoded, URLs fetched from the
configured hosts only, each checked against the size cap and what the model takes."""

from __future__ import annotations

import base64
import binascii
import mimetypes
from urllib.parse import urlsplit

import aiohttp

from hector_py.config.a2a import FilesConfig
from hector_py.llm.base import Attachment


class FileRefused(Exception):
    """A file that cannot be taken; ``unsupported`` when its media type is the reason."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


def media_type(declared: object, name: str | None, where: str) -> str:
    """The declared media type, else one guessed from the file name."""
    if isinstance(declared, str) and declared:
        return declared.split(";")[0].strip().lower()
    guessed = mimetypes.guess_type(name)[0] if name else None
    if guessed is None:
        raise FileRefused(f"{where}: the file's media type is not given", unsupported=True)
    return guessed


def accepted(file: Attachment, accepts: frozenset[str], where: str) -> Attachment:
    """``file`` if the model takes its media type; ``FileRefused`` (unsupported) otherwise."""
    if file.media_type not in accepts:
        takes = ", ".join(sorted(accepts)) or "no files"
        raise FileRefused(
            f"{where}: {file.media_type} is not accepted by this agent's model (it takes {takes})",
            unsupported=True,
        )
    return file


def decode(data: object, kind: str, name: str | None, limit: int, where: str) -> Attachment:
    """Inline base64 bytes as a file of media type ``kind``."""
    if not isinstance(data, str):
        raise FileRefused(f"{where}: must be base64 text")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise FileRefused(f"{where}: is not valid base64") from None
    if len(raw) > limit:
        raise FileRefused(f"{where}: {len(raw)} bytes is over the limit of {limit}")
    return Attachment(kind, raw, name)


def data_url(url: str, limit: int, where: str) -> Attachment:
    """A ``data:<type>;base64,<data>`` URL as a file."""
    header, comma, data = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise FileRefused(f"{where}: a data URL must be data:<media type>;base64,<data>")
    return decode(data, media_type(header[5:-7], None, where), None, limit, where)


async def fetch(
    url: str, kind: object, name: str | None, config: FilesConfig, where: str
) -> Attachment:
    """The file at ``url``, from a host in ``fetch_hosts`` only, no redirects, at most
    ``max_bytes``; its media type as declared, else the response's."""
    parts = urlsplit(url)
    if parts.scheme == "data":
        return data_url(url, config.max_bytes, where)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FileRefused(f"{where}: only http(s) and data URLs are read")
    if parts.hostname.lower() not in {host.lower() for host in config.fetch_hosts}:
        raise FileRefused(
            f"{where}: host '{parts.hostname}' is not in a2a.files.fetch_hosts (URLs are"
            " fetched from those hosts only)"
        )
    timeout = aiohttp.ClientTimeout(total=config.fetch_timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise FileRefused(f"{where}: the URL answered HTTP {response.status}")
            body = await response.content.read(config.max_bytes + 1)
            declared = kind or response.headers.get("Content-Type")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FileRefused(f"{where}: the URL could not be fetched ({type(exc).__name__})") from None
    if len(body) > config.max_bytes:
        raise FileRefused(f"{where}: the file is over the limit of {config.max_bytes} bytes")
    file_name = name or parts.path.rsplit("/", 1)[-1] or None
    return Attachment(media_type(declared, file_name, where), body, file_name)
