"""``guardrails:``: input, output and tool checks."""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from hector_py.config.base import Strict


def _valid_regexes(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise PydanticCustomError(
                "regex",
                "'{pattern}' is not a valid regex ({error})",
                {"pattern": pattern, "error": str(exc)},
            ) from None
    return patterns


PiiKind = Literal["email", "phone", "card", "ssn"]
PII_KINDS: tuple[PiiKind, ...] = get_args(PiiKind)
GuardrailAction = Literal["block", "redact", "warn"]


class LengthCheck(Strict):
    """Input longer than ``max_chars`` characters is a violation."""

    max_chars: int = Field(ge=1)
    action: Literal["block", "warn"] = "block"


class PatternCheck(Strict):
    """Text matching any of ``patterns`` (regexes, case-insensitive) is a violation."""

    patterns: list[str] = Field(min_length=1)
    action: GuardrailAction = "block"

    _check_patterns = field_validator("patterns")(_valid_regexes)


class InjectionCheck(Strict):
    """Prompt-injection heuristics ("ignore previous instructions", role overrides...)."""

    action: Literal["block", "warn"] = "block"


class PiiCheck(Strict):
    """Output containing PII of these kinds (``logging.redact``'s detectors)."""

    kinds: list[PiiKind] = Field(default_factory=lambda: list(PII_KINDS))
    action: GuardrailAction = "redact"


class InputChecks(Strict):
    """Checks on the user's message before the agent runs."""

    max_length: LengthCheck | None = None
    blocked_patterns: PatternCheck | None = None
    prompt_injection: InjectionCheck | None = None


class OutputChecks(Strict):
    """Checks on the agent's reply before it is returned or saved."""

    pii: PiiCheck | None = None
    blocked_content: PatternCheck | None = None


class ToolAuthorization(Strict):
    """Which tools the agent may run: ``allow`` (all when unset) minus ``deny``."""

    allow: list[str] | None = None
    deny: list[str] = Field(default_factory=list)


class GuardrailConfig(Strict):
    """A named set of input, output and tool checks that agents refer to."""

    chain_mode: Literal["fail_fast", "collect_all"] = Field(
        "fail_fast", description="fail_fast: stop at the first violation; collect_all: run all."
    )
    input: InputChecks = Field(default_factory=InputChecks)
    output: OutputChecks = Field(default_factory=OutputChecks)
    tools: ToolAuthorization | None = None
    blocked_reply: str = Field(
        "The reply was withheld by a content guardrail.",
        description="Replaces an output blocked by a check with action: block.",
    )
