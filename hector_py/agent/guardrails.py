"""Guardrails (top-level ``guardrails:``, listed per agent): input, output and tool checks.

Each check has an action: ``block`` refuses the input (``GuardrailBlocked``), replaces the
output or denies the tool; ``redact`` masks what matched; ``warn`` only logs and counts.
Every guardrail runs its checks of a stage under one ``guardrail.check`` span and counts
each violation in ``guardrail_violations_total``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hector_py.config.model import GuardrailConfig, PatternCheck
from hector_py.observability.redact import REDACTED, Redactor
from hector_py.observability.telemetry import Telemetry

log = logging.getLogger("hector.guardrails")

# Phrases that try to override the instruction, reveal it, or forge a role marker.
INJECTION = re.compile(
    r"\b(ignore|disregard|forget|override)\s+(all\s+|any\s+|the\s+|your\s+)*"
    r"(previous|prior|above|earlier|preceding|system)\s+(instructions?|prompts?|rules|messages?)"
    r"|\b(reveal|print|show|repeat|output)\s+(me\s+)?(your|the)\s+(system\s+prompt|instructions)"
    r"|\byou\s+are\s+now\s+(DAN|in\s+developer\s+mode|unrestricted|jailbroken)"
    r"|<\|im_start\|>|\[/?INST\]|^\s*system\s*:",
    re.IGNORECASE | re.MULTILINE,
)


class GuardrailBlocked(Exception):
    """An input refused by a guardrail; the message says which one and why, ``index``
    which of the texts checked together."""

    def __init__(self, message: str, index: int = 0) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class Check:
    """One check: ``find`` gives the reason of a violation (``None`` when clean)."""

    name: str
    action: str
    find: Callable[[str], str | None]
    redact: Callable[[str], str] | None = None
    roles: frozenset[str] | None = None
    """The roles of the messages it checks; ``None``: every role."""


def _pattern_check(name: str, config: PatternCheck, what: str) -> Check:
    pattern = re.compile("|".join(f"(?:{p})" for p in config.patterns), re.IGNORECASE)
    return Check(
        name,
        config.action,
        lambda text: f"{what} matches a blocked pattern" if pattern.search(text) else None,
        lambda text: pattern.sub(REDACTED, text),
    )


class Guardrail:
    """One named guardrail, compiled into its checks per stage."""

    def __init__(self, name: str, config: GuardrailConfig) -> None:
        self.name, self.config = name, config
        self.input: list[Check] = []
        self.output: list[Check] = []
        checks = config.input
        if checks.max_length is not None:
            limit = checks.max_length.max_chars
            self.input.append(
                Check(
                    "max_length",
                    checks.max_length.action,
                    lambda text: (
                        f"message is {len(text)} characters, over the limit of {limit}"
                        if len(text) > limit
                        else None
                    ),
                    # what the caller writes: an earlier (or forged) reply may be longer
                    roles=frozenset({"user"}),
                )
            )
        if checks.blocked_patterns is not None:
            self.input.append(
                _pattern_check("blocked_patterns", checks.blocked_patterns, "message")
            )
        if checks.prompt_injection is not None:
            self.input.append(
                Check(
                    "prompt_injection",
                    checks.prompt_injection.action,
                    lambda text: (
                        "message looks like a prompt injection" if INJECTION.search(text) else None
                    ),
                )
            )
        if config.output.pii is not None:
            pii = Redactor(config.output.pii.kinds)
            self.output.append(
                Check(
                    "pii",
                    config.output.pii.action,
                    lambda text: "reply contains PII" if pii(text) != text else None,
                    pii,
                )
            )
        if config.output.blocked_content is not None:
            self.output.append(
                _pattern_check("blocked_content", config.output.blocked_content, "reply")
            )

    def allows_tool(self, tool: str) -> bool:
        """Whether ``tools.allow``/``tools.deny`` let the agent run ``tool``."""
        rules = self.config.tools
        if rules is None:
            return True
        return (rules.allow is None or tool in rules.allow) and tool not in rules.deny


class Guardrails:
    """An agent's guardrails, applied in the order the agent lists them."""

    def __init__(self, agent: str, guardrails: Sequence[Guardrail], telemetry: Telemetry) -> None:
        self.agent = agent
        self.guardrails = tuple(guardrails)
        self.telemetry = telemetry
        self.checks_output = any(g.output for g in self.guardrails)

    def check_input(self, text: str) -> str:
        """``text`` after the input checks (redacted where asked).

        Raises ``GuardrailBlocked`` naming the guardrail and the reasons."""
        return self.check_inputs([text], ["user"])[0]

    def check_inputs(self, texts: Sequence[str], roles: Sequence[str]) -> list[str]:
        """The messages of one request (``roles`` theirs) after the input checks
        (redacted where asked), each guardrail checking them all under one span.

        Raises ``GuardrailBlocked`` naming the guardrail, the reasons and the first
        message blocked (``index``)."""
        checked = list(texts)
        for guardrail in self.guardrails:
            blocked = self._run(guardrail, "input", guardrail.input, checked, roles)
            if blocked:
                index, reasons = blocked
                raise GuardrailBlocked(
                    f"blocked by guardrail '{guardrail.name}': {'; '.join(reasons)}", index
                )
        return checked

    def check_output(self, text: str) -> str:
        """The reply after the output checks: redacted, or replaced when blocked."""
        reply = [text]
        for guardrail in self.guardrails:
            if self._run(guardrail, "output", guardrail.output, reply):
                return guardrail.config.blocked_reply
        return reply[0]

    def denied_tool(self, tool: str) -> str | None:
        """Why ``tool`` may not run (the tool result the model gets), or ``None``."""
        for guardrail in self.guardrails:
            if guardrail.config.tools is None:
                continue
            with self.telemetry.guardrail_check(self.agent, guardrail.name, "tool") as scope:
                if not guardrail.allows_tool(tool):
                    scope.violation("tool_authorization", "block")
                    self._log(guardrail, "tool", "tool_authorization", "block", tool)
                    return f"error: tool '{tool}' is not authorized (guardrail '{guardrail.name}')"
        return None

    def _run(
        self,
        guardrail: Guardrail,
        stage: str,
        checks: list[Check],
        texts: list[str],
        roles: Sequence[str] | None = None,
    ) -> tuple[int, list[str]] | None:
        """Run one guardrail's checks on ``texts``, redacting them in place; the first
        blocked text's index and its reasons, or ``None``."""
        if not checks:
            return None
        with self.telemetry.guardrail_check(self.agent, guardrail.name, stage) as scope:
            for index, text in enumerate(texts):
                blocked: list[str] = []
                for check in checks:
                    if check.roles is not None and roles and roles[index] not in check.roles:
                        continue
                    reason = check.find(text)
                    if reason is None:
                        continue
                    scope.violation(check.name, check.action)
                    self._log(guardrail, stage, check.name, check.action, reason)
                    if check.action == "block":
                        blocked.append(reason)
                        if guardrail.config.chain_mode == "fail_fast":
                            break
                    elif check.action == "redact" and check.redact is not None:
                        text = texts[index] = check.redact(text)
                if blocked:
                    return index, blocked
        return None

    def _log(self, guardrail: Guardrail, stage: str, check: str, action: str, reason: str) -> None:
        log.warning(
            "guardrail violation: %s",
            reason,
            extra={
                "guardrail": guardrail.name,
                "stage": stage,
                "check": check,
                "action": action,
            },
        )
