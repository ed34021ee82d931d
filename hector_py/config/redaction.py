"""The ``logging.redact`` rules: built-in PII patterns and custom regexes.

Pure regexes with no observability dependency, so ``config`` can check a rule and
``observability.redact`` can apply it.
"""

from __future__ import annotations

import re
from collections.abc import Callable


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
