"""Human approval of tool calls over A2A (``tools.<x>.require_approval``), on the demo model:
the task waits in ``input-required`` with the pending calls, an answer on the same task
approves or denies them and the run resumes, a restart (sqlite) keeps the waiting task, no
answer in time fails it, bad answers are spec errors, and ``/v1`` answers 409."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, rpc, start_server
from tests.fakes.trace_receivers import OTLPHttpReceiver
from tests.metrics_helpers import scrape

CONFIG = """\
llms:
  default: {provider: demo, stream_delay: 0}
tools:
  calculator: {require_approval: true}
agents:
  assistant: {tools: [calculator, current_time]}
  hasty: {tools: [calculator], approval_timeout: 1}
storage: {type: sqlite, path: hector.db}
observability:
  metrics: {enabled: true}
"""


def send(
    server: Server, parts: list[dict[str, Any]], agent: str = "assistant", **extra: Any
) -> Any:
    message = {
        "messageId": f"m-{time.monotonic_ns()}",
        "role": "ROLE_USER",
        "parts": parts,
        **extra,
    }
    return rpc(f"{server.url}/agents/{agent}", "SendMessage", {"message": message}, version="1.0")


def text_of(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for a in task.get("artifacts", []) for p in a["parts"])


def test_approve_deny_restart_and_bad_answers(tmp_path: Path) -> None:
    config = tmp_path / "hector.yaml"
    config.write_text(CONFIG)
    server = start_server(tmp_path, "-c", str(config))
    try:
        paused = send(server, [{"text": "calculate 6*7"}])["result"]["task"]
        assert paused["status"]["state"] == "TASK_STATE_INPUT_REQUIRED", paused
        question = paused["status"]["message"]["parts"]
        assert "Approve running calculator?" in question[0]["text"]
        (pending,) = question[1]["data"]["pending"]
        assert pending["tool"] == "calculator" and pending["arguments"] == {"expression": "6*7"}
        call_id = pending["tool_call_id"]
        # a decision for a call that is not pending: -32602, the task still waits
        wrong = send(server, [{"data": {"decisions": {"nope": "approve"}}}], taskId=paused["id"])
        assert (
            wrong["error"]["code"] == -32602 and "unknown tool_call_id" in wrong["error"]["message"]
        )
        # the server restarts while the task waits: sqlite keeps it
        assert server.stop() == 0
        server = start_server(tmp_path, "-c", str(config))
        done = send(server, [{"data": {"decisions": {call_id: "approve"}}}], taskId=paused["id"])
        task = done["result"]["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED", task
        assert text_of(task) == "The tool returned: 42"
        # answering a finished task: -32004
        again = send(server, [{"text": "yes"}], taskId=paused["id"])
        assert again["error"]["code"] == -32004

        denied = send(server, [{"text": "calculate 1+1"}])["result"]["task"]
        no = send(server, [{"text": "no"}], taskId=denied["id"])["result"]["task"]
        assert text_of(no) == "The tool returned: error: denied by user"
        # a tool that needs no approval runs at once
        clock = send(server, [{"text": "what time is it?"}])["result"]["task"]
        assert clock["status"]["state"] == "TASK_STATE_COMPLETED"

        # no answer within approval_timeout (1 s): the task fails with that reason
        late = send(server, [{"text": "calculate 2+2"}], agent="hasty")["result"]["task"]
        deadline = time.monotonic() + 15
        state = ""
        while time.monotonic() < deadline and state != "TASK_STATE_FAILED":
            time.sleep(0.2)
            got = rpc(f"{server.url}/agents/hasty", "GetTask", {"id": late["id"]}, version="1.0")
            state = got["result"]["status"]["state"]
        assert state == "TASK_STATE_FAILED"
        assert "approval_timeout" in got["result"]["status"]["message"]["parts"][0]["text"]

        metrics = scrape(f"{server.url}/metrics")
        name = "hector_tool_approvals_total"
        assert metrics.value(name, agent="assistant", tool="calculator", decision="deny") == 1
        assert metrics.value(name, agent="hasty", tool="calculator", decision="timeout") == 1

        v1 = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "assistant", "messages": [{"role": "user", "content": "calculate 3*3"}]},
            timeout=10,
        )
        assert v1.status_code == 409 and "input-required" in v1.json()["error"]["message"]
    finally:
        server.stop()


def test_zero_config_approve_tools_flag(serve: Any) -> None:
    server: Server = serve("--tools", "calculator,current_time", "--approve-tools")
    paused = send(server, [{"text": "what time is it?"}])["result"]["task"]
    assert paused["status"]["state"] == "TASK_STATE_INPUT_REQUIRED", paused
    pending = paused["status"]["message"]["parts"][1]["data"]["pending"]
    assert [p["tool"] for p in pending] == ["current_time"]
    done = send(server, [{"text": "yes"}], taskId=paused["id"])["result"]["task"]
    assert text_of(done).startswith("The tool returned: ")


def test_the_resumed_run_links_to_the_paused_one(serve: Any, tmp_path: Path) -> None:
    with OTLPHttpReceiver() as receiver:
        config = tmp_path / "traced.yaml"
        config.write_text(
            "llms: {default: {provider: demo, stream_delay: 0}}\n"
            "tools: {calculator: {require_approval: true}}\n"
            "agents: {assistant: {tools: [calculator]}}\n"
            "observability:\n  tracing: {enabled: true, protocol: http,"
            f' endpoint: "127.0.0.1:{receiver.port}", sampling_rate: 1.0}}\n'
        )
        server: Server = serve("-c", str(config))
        paused = send(server, [{"text": "calculate 1+2"}])["result"]["task"]
        send(server, [{"text": "yes"}], taskId=paused["id"])
        spans = receiver.wait_for(
            lambda got: sum(s.name == "invoke_agent assistant" for s in got) >= 2,
            what="both runs",
        )
        first, second = sorted(
            (s for s in spans if s.name == "invoke_agent assistant"), key=lambda s: s.start_ns
        )
        assert second.links == ((first.trace_id, first.span_id),)
        assert first.links == ()


def test_hector_call_asks_on_the_terminal(serve: Any) -> None:
    server: Server = serve("--tools", "calculator", "--approve-tools")
    for stream, answer, expected in (
        ("--stream", "y\n", "The tool returned: 5"),
        ("--no-stream", "n\n", "The tool returned: error: denied by user"),
    ):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "hector_py",
                "call",
                "calculate 2+3",
                "--url",
                server.url,
                stream,
            ],
            input=answer,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "Approve running calculator?" in result.stderr
        assert expected in result.stdout, result.stdout
