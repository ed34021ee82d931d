"""A sub-agent that waits for a person pauses every agent above it: the question reaches the
caller of the top agent, the answer on the top task goes down to the same paused task, and
the chain resumes. Local sub-agents (``agent:NAME``) and remote ones over A2A (a second real
``hector serve``), on the demo model; and a budget spent mid-chain refuses the next
delegation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest, TaskState

from tests.a2a_helpers import collect, sdk_client
from tests.conftest import Server, rpc

SPECIALIST = """\
llms: {default: {provider: demo, stream_delay: 0}}
tools:
  calculator: {require_approval: true}
agents:
  specialist: {tools: [calculator]}
"""
COORDINATOR = """\
llms: {{default: {{provider: demo, stream_delay: 0}}}}
remote_agents:
  pricing: {{url: "{url}/agents/specialist"}}
  legacy: {{url: "{url}/agents/specialist", protocol: "0.3"}}
agents:
  assistant: {{tools: ["a2a:pricing", "a2a:legacy"]}}
"""
LOCAL = """\
llms: {default: {provider: demo, stream_delay: 0}}
tools:
  calculator: {require_approval: true}
agents:
  assistant: {tools: ["agent:helper"]}
  helper: {tools: [calculator]}
storage: {type: sqlite, path: hector.db}
"""


def send(server: Server, text: str, **extra: Any) -> dict[str, Any]:
    message = {
        "messageId": f"m-{time.monotonic_ns()}",
        "role": "ROLE_USER",
        "parts": [{"text": text}],
        **extra,
    }
    url = f"{server.url}/agents/assistant"
    return rpc(url, "SendMessage", {"message": message}, version="1.0")


def text_of(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for a in task.get("artifacts", []) for p in a["parts"])


def wait_ready(server: Server, component: str) -> None:
    deadline = time.monotonic() + 15  # remote cards are read in the background
    while time.monotonic() < deadline:
        health = httpx.get(f"{server.url}/health", timeout=5).json()["components"]
        if health[component]["status"] == "ok":
            return
        time.sleep(0.1)
    raise AssertionError(f"{component} never became ready")


async def ask_and_approve(url: str, text: str) -> tuple[str, str, str]:
    """Through the a2a-sdk client: the question the top task asks, then the reply after
    answering yes on the same task, and the final state."""
    client = await sdk_client(url, "1.0", streaming=False)
    first = Message(message_id="m-1", role=Role.ROLE_USER, parts=[Part(text=text)])
    (event,) = await collect(client.send_message(SendMessageRequest(message=first)))
    task = event.task
    assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED, task
    question = "".join(p.text for p in task.status.message.parts)
    answer = Message(
        message_id="m-2", role=Role.ROLE_USER, parts=[Part(text="yes")], task_id=task.id
    )
    (done,) = await collect(client.send_message(SendMessageRequest(message=answer)))
    reply = "".join(p.text for a in done.task.artifacts for p in a.parts)
    return question, reply, TaskState.Name(done.task.status.state)


def test_a_remote_question_reaches_the_top_caller_and_the_answer_goes_down(
    serve: Any, tmp_path: Path
) -> None:
    (tmp_path / "specialist.yaml").write_text(SPECIALIST)
    specialist: Server = serve("-c", str(tmp_path / "specialist.yaml"))
    (tmp_path / "coordinator.yaml").write_text(COORDINATOR.format(url=specialist.url))
    coordinator: Server = serve("-c", str(tmp_path / "coordinator.yaml"))
    wait_ready(coordinator, "remote.pricing")

    question, reply, state = asyncio.run(
        ask_and_approve(coordinator.url, 'use pricing {"message": "calculate 6*7"}')
    )
    assert "Approve running calculator?" in question  # the specialist's own question
    assert state == "TASK_STATE_COMPLETED"
    assert reply == "The tool returned: The tool returned: 42"
    # the answer resumed the specialist's paused task: one task there, completed
    bottom = rpc(f"{specialist.url}/agents/specialist", "ListTasks", {}, version="1.0")
    (task,) = bottom["result"]["tasks"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"

    # "no" goes down too: the specialist's model hears the denial
    paused = send(coordinator, 'use pricing {"message": "calculate 1+1"}')["result"]["task"]
    denied = send(coordinator, "no", taskId=paused["id"])["result"]["task"]
    assert text_of(denied) == "The tool returned: The tool returned: error: denied by user"

    # canceling the top task while it waits cancels the remote task it waits on
    waiting = send(coordinator, 'use pricing {"message": "calculate 3*3"}')["result"]["task"]
    url = f"{coordinator.url}/agents/assistant"
    canceled = rpc(url, "CancelTask", {"id": waiting["id"]}, version="1.0")["result"]
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    below = rpc(f"{specialist.url}/agents/specialist", "ListTasks", {}, version="1.0")
    states = [t["status"]["state"] for t in below["result"]["tasks"]]
    assert states[0] == "TASK_STATE_CANCELED", states  # the newest: the one that waited

    # the same through the v0.3 dialect (its state is spelled input-required)
    old = send(coordinator, 'use legacy {"message": "calculate 2*21"}')["result"]["task"]
    assert old["status"]["state"] == "TASK_STATE_INPUT_REQUIRED", old
    done = send(coordinator, "yes", taskId=old["id"])["result"]["task"]
    assert text_of(done) == "The tool returned: The tool returned: 42"


def test_a_local_question_survives_a_restart_and_bad_answers_are_refused(
    tmp_path: Path, serve: Any
) -> None:
    config = tmp_path / "hector.yaml"
    config.write_text(LOCAL)
    server: Server = serve("-c", str(config))
    paused = send(server, 'use helper {"message": "calculate 6*7"}')["result"]["task"]
    assert paused["status"]["state"] == "TASK_STATE_INPUT_REQUIRED", paused
    parts = paused["status"]["message"]["parts"]
    assert "Approve running calculator?" in parts[0]["text"]
    (pending,) = parts[1]["data"]["pending"]  # the sub-agent's pending call, as it asks
    assert pending["tool"] == "calculator" and pending["arguments"] == {"expression": "6*7"}
    wrong = send(server, '{"decisions": {"nope": "approve"}}', taskId=paused["id"])
    assert wrong["error"]["code"] == -32602 and "unknown tool_call_id" in wrong["error"]["message"]

    assert server.stop() == 0  # the paused chain is in sqlite: a restart keeps it
    server = serve("-c", str(config))
    decision = f'{{"decisions": {{"{pending["tool_call_id"]}": "approve"}}}}'
    done = send(server, decision, taskId=paused["id"])["result"]["task"]
    assert done["status"]["state"] == "TASK_STATE_COMPLETED", done
    assert text_of(done) == "The tool returned: The tool returned: 42"

    v1 = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={
            "model": "assistant",
            "messages": [{"role": "user", "content": 'use helper {"message": "calculate 2*2"}'}],
        },
        timeout=10,
    )
    assert v1.status_code == 409
    assert "Approve running calculator?" in v1.json()["error"]["message"]


def test_a_budget_spent_mid_chain_refuses_the_next_delegation(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "hector.yaml"
    config.write_text(
        "llms: {default: {provider: demo, stream_delay: 0}}\n"
        "agents:\n  assistant: {tools: ['agent:helper']}\n  helper: {}\n"
        "server: {auth: {tenant_header: X-Tenant}}\n"
        "budgets: {acme: {daily_tokens: 60, reserve_tokens: 1}}\n"
    )
    server: Server = serve("-c", str(config))

    def ask(text: str) -> httpx.Response:
        return httpx.post(
            f"{server.url}/v1/chat/completions",
            headers={"X-Tenant": "acme"},
            json={"model": "assistant", "messages": [{"role": "user", "content": text}]},
            timeout=10,
        )

    first = ask("hello there, how are you today?")  # spends most of the budget
    assert first.status_code == 200, first.text
    used = first.json()["usage"]["total_tokens"]
    assert 0 < used < 60
    # admitted (the budget is not spent yet), but the coordinator's first model call
    # spends the rest: the delegation is refused with a tool error the model sees
    second = ask('use helper {"message": "' + " ".join(["word"] * 40) + '"}')
    assert second.status_code == 200, second.text
    reply = second.json()["choices"][0]["message"]["content"]
    assert "error: not delegating to helper: tenant 'acme' has used its daily budget" in reply
    # another tenant delegates as before
    other = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"X-Tenant": "beta"},
        json={
            "model": "assistant",
            "messages": [{"role": "user", "content": 'use helper {"message": "hi"}'}],
        },
        timeout=10,
    )
    assert other.json()["choices"][0]["message"]["content"].startswith(
        'The tool returned: You said: "hi"'
    )
