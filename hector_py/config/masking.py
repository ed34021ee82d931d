"""Mask credentials embedded in URLs before a config is printed."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "**********"
_SECRET_PARAM = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``text`` with a URL's userinfo password and secret-looking query values masked."""
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.search(name) for name, _ in pairs):
            masked = [(n, MASK if _SECRET_PARAM.search(n) else v) for n, v in pairs]
            query = urlencode(masked, safe="*")
    if netloc == parts.netloc and query == parts.query:
        return text
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_urls(value: Any) -> Any:
    """``value`` (a JSON-shaped config dump) with every URL string passed through
    :func:`mask_url`."""
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, dict):
        return {key: mask_urls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_urls(item) for item in value]
    return value
