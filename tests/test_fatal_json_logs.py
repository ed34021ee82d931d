"""Under ``--log-format json`` every line is JSON, fatal start-up errors included."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.conftest import clean_env, hector


def _json_lines(stderr: str) -> list[dict[str, object]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # raises on any line that is not JSON


def test_a_bad_config_is_a_json_error_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("agents:\n  a: {llm: nope}\n")
    result = hector("serve", "-c", str(config), "--log-format", "json")
    assert result.returncode == 1
    [record] = _json_lines(result.stderr)
    assert record["level"] == "CRITICAL"
    assert "agents.a.llm: unknown llm 'nope'" in str(record["msg"])


def test_a_port_in_use_is_a_json_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        env = clean_env(HECTOR_LOG_FORMAT="json")
        result = hector("serve", "--host", "127.0.0.1", "--port", port, env=env)
    assert result.returncode == 1
    records = _json_lines(result.stderr + result.stdout)
    assert any(r["level"] == "CRITICAL" and "cannot listen" in str(r["msg"]) for r in records), (
        records
    )
