"""Redaction of secrets and PII (``logging.redact``) in logs and captured payloads."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from hector_py.config.redaction import PII, compile_rule

REDACTED = "[REDACTED]"
# Key-shaped strings (OpenAI/Anthropic ``sk-…``, bearer tokens, Google ``AIza…`` keys).
KEY_SHAPED = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-]{8,}|AIza[A-Za-z0-9_\-]{20,})"
)


class Redactor:
    """Replaces known secrets, key-shaped strings and the chosen PII kinds."""

    def __init__(self, rules: Iterable[str] = (), secrets: Iterable[str] = ()) -> None:
        # Also as a repr shows them (in exception messages, say): quotes and \\ escaped.
        known = {form for s in secrets if len(s) >= 4 for form in (s, repr(s)[1:-1])}
        self._secrets = tuple(sorted(known, key=len, reverse=True))
        self._rules: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = []
        for rule in rules:
            custom = compile_rule(rule)
            self._rules.append(PII[rule] if custom is None else (custom, REDACTED))

    def __call__(self, text: str) -> str:
        """``text`` with every match replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = KEY_SHAPED.sub(REDACTED, text)
        for pattern, replacement in self._rules:
            text = pattern.sub(replacement, text)
        return text
