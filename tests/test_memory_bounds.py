"""The in-memory store's bounds (``storage.max_tasks``, ``storage.max_sessions``) through
the real server: old finished tasks become unknown ids, running ones stay, and the least
recently used session histories are the ones forgotten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Server, hector, rpc, v03_message

TASK_NOT_FOUND = -32001
BOUNDED = (
    "llms:\n"
    "  fast: {provider: demo, stream_delay: 0}\n"
    "  slow: {provider: demo, stream_delay: 30}\n"
    "agents:\n"
    "  assistant: {llm: fast}\n"
    "  slow: {llm: slow}\n"
    "storage: {max_tasks: 3, max_sessions: 2}\n"
)


def send(url: str, text: str, **message: Any) -> dict[str, Any]:
    reply = rpc(url, "message/send", v03_message(text, **message))
    return reply["result"]  # type: ignore[no-any-return]


def v1_text(text: str) -> dict[str, Any]:
    return {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": text}]}}


def get(url: str, task_id: str) -> dict[str, Any]:
    return rpc(url, "tasks/get", {"id": task_id})


def test_old_finished_tasks_are_forgotten_running_ones_kept(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "bounded.yaml"
    config.write_text(BOUNDED)
    server: Server = serve("-c", str(config))
    fast, slow = server.url + "/agents/assistant", server.url + "/agents/slow"
    running = rpc(
        slow,
        "SendMessage",
        {**v1_text("take your time"), "configuration": {"returnImmediately": True}},
        version="1.0",
    )["result"]["task"]["id"]
    finished = [send(fast, f"message {n}")["id"] for n in range(6)]
    for old in finished[:4]:
        assert get(fast, old)["error"]["code"] == TASK_NOT_FOUND
    for recent in finished[4:]:
        assert get(fast, recent)["result"]["status"]["state"] == "completed"
    assert get(slow, running)["result"]["status"]["state"] == "working"
    listed = rpc(fast, "ListTasks", {}, version="1.0")["result"]
    assert [t["id"] for t in listed["tasks"]] == finished[:3:-1]
    canceled = rpc(slow, "tasks/cancel", {"id": running})["result"]
    assert canceled["status"]["state"] == "canceled"


def test_least_recently_used_session_history_is_forgotten(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "bounded.yaml"
    config.write_text(BOUNDED)
    server: Server = serve("-c", str(config))

    def turn(context_id: str) -> str:
        reply = send(server.url + "/", "hi", contextId=context_id)
        assert reply["contextId"] == context_id
        text: str = reply["artifacts"][0]["parts"][0]["text"]
        return text.rsplit("(", 1)[1].rstrip(").")

    assert [turn("a"), turn("b"), turn("a")] == ["turn 1", "turn 1", "turn 2"]
    assert turn("c") == "turn 1"  # a third session: b, used least recently, goes
    assert turn("a") == "turn 3"
    assert turn("b") == "turn 1"


def test_bounds_are_memory_only_config(tmp_path: Path) -> None:
    config = tmp_path / "sqlite.yaml"
    config.write_text("storage:\n  type: sqlite\n  max_tasks: 5\n")
    result = hector("validate", str(config))
    assert result.returncode == 1
    assert result.stdout == f"storage: max_tasks: only for type: memory ({config}:1)\n"
    config.write_text("storage:\n  max_sessions: 0\n")
    result = hector("validate", str(config))
    assert result.returncode == 1
    assert "storage.max_sessions: Input should be greater than or equal to 1" in result.stdout
