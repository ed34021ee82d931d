"""Redaction of secrets and PII (``logging.redact``) in logs and captured payloads."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

REDACTED = "[REDACTED]"
# Key-shaped strings (OpenAI/Anthropic ``sk-…``, bearer tokens, Google ``AIza…`` keys).
KEY_SHAPED = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-]{8,}|AIza[A-Za-z0-9_\-]{20,})"
)


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for index, char in enumerate(digits):
        value = int(char)
        if index % 2 == parity:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "[CARD]" if _luhn(digits) else match.group(0)


# name -> (pattern, replacement); a card must also pass the Luhn check.
PII: dict[str, tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = {
    "email": (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[EMAIL]"),
    "card": (re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])"), _card),
    "ssn": (re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])"), "[SSN]"),
    "phone": (
        re.compile(
            r"(?<![\w-])(?:\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,3}"
            r"|\(\d{3}\) ?\d{3}[-.]\d{4}|\d{3}([-.])\d{3}\1\d{4})(?![\w-])"
        ),
        "[PHONE]",
    ),
}


def compile_rule(rule: str) -> re.Pattern[str] | None:
    """A custom ``logging.redact`` rule as a regex; ``None`` for a built-in name."""
    if rule in PII:
        return None
    return re.compile(rule)  # raises re.error for a bad pattern


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
