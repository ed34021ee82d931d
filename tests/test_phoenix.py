"""A real Arize Phoenix receives our spans over OTLP gRPC and HTTP, configured only by the
standard ``OTEL_EXPORTER_OTLP_*`` variables, and shows them as it understands them: an
AGENT span over an LLM span with the input and output messages, the response model and
the token counts. Phoenix's gRPC server binds ``[::]``, so both run in a network namespace
with only loopback up (``tests/phoenix_driver.py``).

Optional: runs where ``HECTOR_PHOENIX`` names the ``phoenix`` command of a venv with
``arize-phoenix`` (``.ci/run`` installs one) and ``unshare`` works; skipped otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PHOENIX = os.environ.get("HECTOR_PHOENIX", "")


def _can_isolate() -> bool:
    """Whether this process may make a network namespace (root, ``unshare``, ``ip``)."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    probe = ["unshare", "-n", "ip", "link", "set", "lo", "up"]
    return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0


pytestmark = pytest.mark.skipif(
    not (PHOENIX and os.access(PHOENIX, os.X_OK) and _can_isolate()),
    reason="needs HECTOR_PHOENIX (arize-phoenix's command) and a network namespace",
)


def test_phoenix_shows_agent_and_llm_spans_over_grpc_and_http(tmp_path: Path) -> None:
    driver = (
        f"ip link set lo up && exec {sys.executable} -m tests.phoenix_driver {PHOENIX} {tmp_path}"
    )
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", driver],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [run["protocol"] for run in runs] == ["grpc", "http/protobuf"]
    for run in runs:
        spans = {span["name"]: span for span in run["spans"]}
        assert set(spans) == {
            "POST /v1/chat/completions",
            "invoke_agent assistant",
            "chat gpt-fake",
        }
        agent, llm = spans["invoke_agent assistant"], spans["chat gpt-fake"]
        assert agent["span_kind"] == "AGENT" and llm["span_kind"] == "LLM"
        assert llm["parent_id"] == agent["context"]["span_id"]
        assert agent["parent_id"] == spans["POST /v1/chat/completions"]["context"]["span_id"]
        attributes = llm["attributes"]
        assert attributes["llm.input_messages.1.message.content"] == "hi"
        assert attributes["llm.output_messages.0.message.content"] == "echo: hi"
        assert attributes["gen_ai.response.model"] == "gpt-fake"
        usage = run["answer"]["usage"]
        assert attributes["llm.token_count.prompt"] == usage["prompt_tokens"]
        assert attributes["llm.token_count.completion"] == usage["completion_tokens"]
