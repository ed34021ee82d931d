"""``hector doctor`` checks a config for real: a good one passes every line (models answer
their free listing, tools list, the exporter takes a span, the store opens); a dead model
URL, a dead exporter, a bad MCP command and an unreachable database each fail with a
clear line and a fix, and the exit code says so."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import FakeLLM, hector
from tests.fakes.trace_receivers import OTLPHttpReceiver

BAD = """\
llms:
  default: {provider: openai, model: gpt-x, base_url: "http://127.0.0.1:9/v1", api_key: k}
tools:
  broken: {type: mcp, command: /nonexistent/mcp-server}
storage: {type: postgres, dsn: "postgresql://u:p@127.0.0.1:9/db"}
observability:
  tracing:  # with the flight recorder (10 ordinary traces a second): the test span is flagged
    {enabled: true, protocol: http, endpoint: "127.0.0.1:9", timeout: 2, keep: {enabled: true}}
agents:
  assistant: {tools: [broken]}
"""


def test_a_healthy_config_passes(openai_fake: FakeLLM, tmp_path: Path) -> None:
    with OTLPHttpReceiver() as receiver:
        config = tmp_path / "good.yaml"
        config.write_text(
            "llms:\n"
            f'  default: {{provider: openai, model: gpt-fake, base_url: "{openai_fake.base_url}",'
            " api_key: k}\n"
            f"storage: {{type: sqlite, path: '{tmp_path / 'hector.db'}'}}\n"
            "observability:\n"
            f'  tracing: {{enabled: true, protocol: http, endpoint: "127.0.0.1:{receiver.port}"}}\n'
        )
        result = hector("doctor", "-c", str(config), "--format", "json", timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        checks = json.loads(result.stdout)
        assert [c["name"] for c in checks] == ["llm default", "tools", "tracing", "store"]
        assert all(c["ok"] for c in checks), checks
        receiver.wait_for(lambda got: any(s.name == "hector doctor" for s in got), what="span")
    assert "GET /models" in checks[0]["detail"]  # the free listing, not a paid completion
    assert not openai_fake.requests()  # no completion was asked


def test_each_broken_part_is_one_line_with_a_fix(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(BAD)
    result = hector("doctor", "-c", str(config), timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4, lines
    llm, tools, tracing, store = lines
    assert llm.startswith("FAIL llm default: cannot reach http://127.0.0.1:9/v1")
    assert "fix: check llms.default.base_url" in llm
    assert tools.startswith("FAIL tools: tools.broken.command: MCP server did not start")
    assert tracing.startswith("FAIL tracing:") and "observability.tracing.endpoint" in tracing
    assert store.startswith("FAIL store:") and "fix: check storage" in store
