"""``--workers 2`` on one sqlite file (issue 22): a worker killed mid-run has its tasks
failed when its replacement starts, while the other worker's runs go on untouched; a
cancel that lands on the wrong worker still stops the run; memory + workers is refused."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import SHARED_STORE, Server, clean_env, hector, start_server
from tests.reliability_helpers import rpc_body, v1_message, wait_until

LONG = " ".join(["long"] * 400)
V1 = {"A2A-Version": "1.0"}
MAX_STARTS = 40


def v1(server: Server, method: str, params: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = httpx.post(
        server.url + "/",
        json=rpc_body(method, params),
        headers={**V1, "Connection": "close", **headers},
        timeout=20,
    )
    assert response.status_code == 200 and "Traceback" not in response.text, response.text
    return response.json()  # type: ignore[no-any-return]


def state(server: Server, task_id: str) -> str:
    return v1(server, "GetTask", {"id": task_id})["result"]["status"]["state"]  # type: ignore[no-any-return]


def worker_of(server: Server, request_id: str) -> int:
    for line in server.log_lines():
        if request_id in line and line.startswith("{"):
            record = json.loads(line)
            if record.get("request_id") == request_id:
                return int(record["pid"])
    raise AssertionError(f"no log line for {request_id}")


def test_a_killed_worker_fails_only_its_own_tasks_and_cancel_crosses_workers(
    tmp_path: Path,
) -> None:
    config = tmp_path / "hector.yaml"
    config.write_text("llms: {default: {provider: demo, stream_delay: 0.05}}\n")
    server = start_server(
        tmp_path,
        *("-c", str(config), "--workers", "2", "--log-format", "json"),
        env=clean_env(**SHARED_STORE),
    )
    try:
        owners: dict[int, list[str]] = {}
        for n in range(MAX_STARTS):
            request_id = f"start-{n}"
            params = v1_message(LONG, returnImmediately=True)
            task_id = v1(server, "SendMessage", params, **{"X-Request-ID": request_id})
            owners.setdefault(worker_of(server, request_id), []).append(
                task_id["result"]["task"]["id"]
            )
            if len(owners) == 2 and all(len(t) >= 1 for t in owners.values()):
                break
        assert len(owners) == 2, "every run landed on one worker"
        (victim, doomed), (survivor, kept) = owners.items()
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: all(state(server, t) == "TASK_STATE_FAILED" for t in doomed),
            15,
            "the killed worker's tasks to be failed",
        )
        assert all(state(server, t) == "TASK_STATE_WORKING" for t in kept)
        for task_id in kept:  # whichever worker takes the call, the run stops
            canceled = v1(server, "CancelTask", {"id": task_id})["result"]["status"]["state"]
            assert canceled == "TASK_STATE_CANCELED"
        assert survivor != victim
    finally:
        server.stop()
    assert "database is locked" not in server.log_path.read_text()


def test_memory_store_with_workers_is_a_config_error(tmp_path: Path) -> None:
    result = hector("serve", "--workers", "2", "--port", "0", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "server.workers: 2 workers on the memory store" in result.stderr
    assert "use storage type sqlite (one host) or postgres" in result.stderr
