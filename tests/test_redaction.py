"""PII and secret redaction (``logging.redact``) in logs and captured payloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hector_py.observability.redact import Redactor
from tests.conftest import Server, hector, rpc, start_fake_llm, v03_message

PII_TEXT = (
    "mail jane.doe@example.com, card 4111 1111 1111 1111, ssn 123-45-6789, "
    "phone +1 415-555-0100, ticket-4242"
)
RAW = ("jane.doe@example.com", "4111 1111 1111 1111", "123-45-6789", "415-555-0100", "4242")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to a.b+c@mail.example.org now", "write to [EMAIL] now"),
        ("pay with 4111-1111-1111-1111", "pay with [CARD]"),
        ("order 4111 1111 1111 1112 is not a card", "order 4111 1111 1111 1112 is not a card"),
        ("ssn 078-05-1120.", "ssn [SSN]."),
        ("call (415) 555-0100 today", "call [PHONE] today"),
        ("at 2026-11-23T12:00:00Z took 1250 ms, trace 0af7651916cd43dd", "unchanged"),
        ("key sk-abcdefghijklmnop and Bearer abc.def.ghi-jkl", "key [REDACTED] and [REDACTED]"),
    ],
)
def test_redactor_patterns(text: str, expected: str) -> None:
    redact = Redactor(["email", "card", "ssn", "phone"])
    assert redact(text) == (text if expected == "unchanged" else expected)


def test_custom_rules_and_secrets() -> None:
    redact = Redactor([r"ticket-\d+"], secrets=["hunter2-secret"])
    assert redact("ticket-42 says hunter2-secret") == "[REDACTED] says [REDACTED]"


def test_bad_rule_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("logging:\n  redact: [email, '(unclosed']\n")
    result = hector("validate", str(path))
    assert result.returncode == 1
    assert result.stdout.startswith("logging.redact: '(unclosed' is neither email")
    assert f"({path}:2)" in result.stdout


def test_logs_and_payloads_are_redacted(serve: Any, tmp_path: Path) -> None:
    fake = start_fake_llm(
        "openai", "--fail-first", "1", "--status", "400", "--error-message", f"rejected: {PII_TEXT}"
    )
    try:
        config = tmp_path / "pii.yaml"
        config.write_text(
            f"llms:\n  default:\n    provider: openai\n    model: gpt-4o\n    api_key: sk-x1\n"
            f"    base_url: {fake.base_url}\n"
            "observability:\n  tracing:\n    enabled: true\n    exporter: stdout\n"
            "    capture_payloads: true\n"
            "logging:\n  format: json\n  redact: [email, card, ssn, phone, 'ticket-\\d+']\n"
        )
        server: Server = serve("-c", str(config))
        failed = rpc(server.url + "/", "message/send", v03_message(PII_TEXT))
        assert failed["result"]["status"]["state"] == "failed"
        rpc(server.url + "/", "message/send", v03_message(PII_TEXT))  # echoed back
        assert server.stop() == 0
    finally:
        fake.stop()
    lines = server.log_lines()
    output = "\n".join(lines)
    for raw in RAW:
        assert raw not in output, raw
    records = [json.loads(line) for line in lines]
    warning = next(r for r in records if r["msg"].startswith("task failed"))
    for token in ("[EMAIL]", "[CARD]", "[SSN]", "[PHONE]", "[REDACTED]"):
        assert token in warning["msg"]
    prompts = [r for r in records if "gen_ai.input.messages" in (r.get("attributes") or {})]
    assert prompts and "[EMAIL]" in json.dumps(prompts)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_with_quotes_and_backslashes_are_redacted(tmp_path: Path, fmt: str) -> None:
    """Redaction happens before JSON or repr escaping, tracebacks included."""
    import logging

    from hector_py.observability.logs import configure_logging

    secret = "pa\"ss\\wo'rd-9876"
    log_file = tmp_path / "out.log"
    configure_logging("info", fmt, str(log_file), Redactor([], [secret]))
    log = logging.getLogger("hector.test")
    try:
        log.info("as %s and %r", secret, secret, extra={"nested": {"k": [secret]}, "s": secret})
        try:
            raise ValueError(f"bad key {secret!r} / {secret}")
        except ValueError:
            log.exception("failed with %s", secret)
    finally:
        configure_logging()  # back to stderr
    text = log_file.read_text()
    escaped = (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], "ss\\\\wo", 'pa\\"ss')
    assert not [form for form in escaped if form in text], text
    assert text.count("[REDACTED]") >= 6
    assert "Traceback" in text
