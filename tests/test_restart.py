"""SIGTERM under load with sqlite, then a restart on the same database (issue 8,
"Graceful drain").

Blocking, streaming and ``returnImmediately`` runs of the demo model (slow words) are in
flight when SIGTERM arrives, with a short ``server.shutdown_timeout``: short runs finish,
medium ones finish during the drain, long ones are cut off. Then the store must hold no
task in submitted/working, every failed task must say why, every row must be whole and the
database must pass ``PRAGMA integrity_check``, before and after a restart. The spans of
the last request before the signal reach the collector before the process exits.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, start_server
from tests.fakes.trace_receivers import OTLPHttpReceiver
from tests.reliability_helpers import HTTP, new_trace, rpc_body, sse_data, v1_message, wait_until

WORD_DELAY = 0.05
SHUTDOWN_TIMEOUT = 2.0
SHORT, MEDIUM, LONG = "short", " ".join(["medium"] * 12), " ".join(["long"] * 200)
TERMINAL = {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED"}


def v03_params(text: str) -> dict[str, Any]:
    return {
        "message": {
            "kind": "message",
            "messageId": "m",
            "role": "user",
            "parts": [{"kind": "text", "text": text}],
        }
    }


def call(url: str, kind: str, text: str) -> str:
    """One request of ``kind``; returns what the client saw (never raises on a cut)."""
    v1 = kind in ("v1_stream", "immediate")
    method = {
        "blocking": "message/send",
        "v03_stream": "message/stream",
        "v1_stream": "SendStreamingMessage",
        "immediate": "SendMessage",
    }[kind]
    params = (
        v1_message(text, returnImmediately=True)
        if kind == "immediate"
        else v1_message(text)
        if v1
        else v03_params(text)
    )
    headers = {"A2A-Version": "1.0"} if v1 else {}
    try:
        response = HTTP.post(url, json=rpc_body(method, params), headers=headers, timeout=20)
    except httpx.TransportError as exc:  # the listener closed under a blocked client
        return f"transport error: {type(exc).__name__}"
    assert response.status_code < 500 and "Traceback" not in response.text, response.text
    if kind.endswith("stream"):
        return f"{len(list(sse_data(response)))} events"
    result = response.json()["result"]
    return (result["task"] if v1 else result)["status"]["state"]


def list_all(url: str) -> list[dict[str, Any]]:
    response = HTTP.post(
        url,
        json=rpc_body("ListTasks", {"pageSize": 100, "includeArtifacts": True}),
        headers={"A2A-Version": "1.0"},
        timeout=10,
    )
    return response.json()["result"]["tasks"]  # type: ignore[no-any-return]


def check_database(path: Path) -> dict[str, str]:
    """Integrity, whole rows (the state column matches the JSON), and id -> state."""
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = db.execute("SELECT id, state, data FROM tasks").fetchall()
    db.close()
    states = {}
    for task_id, state, data in rows:
        task = json.loads(data)
        assert task["id"] == task_id and task["state"] == state
        states[task_id] = state
    return states


def test_sigterm_under_load_then_restart(tmp_path: Path) -> None:
    db = tmp_path / "data" / "hector.db"
    with OTLPHttpReceiver() as receiver:
        config = tmp_path / "restart.yaml"
        config.write_text(
            f"server: {{shutdown_timeout: {SHUTDOWN_TIMEOUT}}}\n"
            f"storage: {{type: sqlite, path: '{db}'}}\n"
            f"llms: {{default: {{provider: demo, stream_delay: {WORD_DELAY}}}}}\n"
            f"observability: {{tracing: {{enabled: true, endpoint: '{receiver.traces_url}'}}}}\n"
            "logging: {format: json}\n"
        )
        first: Server = start_server(tmp_path, "-c", str(config))
        url = first.url + "/"
        load = [
            *[("blocking", SHORT)] * 2,
            *[("blocking", LONG)] * 3,
            *[("v03_stream", LONG)] * 2,
            *[("v1_stream", LONG)] * 2,
            *[("immediate", MEDIUM)] * 3,
            *[("immediate", LONG)] * 3,
        ]
        pool = ThreadPoolExecutor(len(load))
        try:
            futures = [pool.submit(call, url, kind, text) for kind, text in load]
            wait_until(lambda: len(list_all(url)) == len(load), 10, "every run to start")
            # the last request before the signal: a short blocking run, traced
            trace_id, headers = new_trace()
            last = HTTP.post(
                url, json=rpc_body("message/send", v03_params(SHORT)), headers=headers, timeout=10
            )
            assert last.json()["result"]["status"]["state"] == "completed"
            first.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            seen = [future.result(timeout=20) for future in futures]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        assert first.proc.wait(timeout=20) == 0
        drain = time.monotonic() - signalled
        # the drain waited for in-flight runs, but no longer than shutdown_timeout (plus
        # the bounded trace flush and the store close)
        assert drain < SHUTDOWN_TIMEOUT + 6, drain
        assert seen[:2] == ["completed", "completed"], seen  # the short blocking runs
        # blocked clients got their (failed) task or a closed connection, streams an end
        assert all(s in ("failed", "completed") or s.startswith("transport") for s in seen[2:5])
        assert all(s.endswith("events") and s != "0 events" for s in seen[5:9]), seen
        # the last request's spans were exported before the process exited
        last_spans = [s for s in receiver.spans if s.trace_id == trace_id]
        assert any(s.kind == "SERVER" and s.name == "POST /" for s in last_spans), last_spans
        assert any(s.name == "invoke_agent assistant" for s in last_spans)
        assert "Traceback" not in "\n".join(first.log_lines())
        # the drain itself left nothing unfinished and nothing half-written
        states = check_database(db)
        assert len(states) == len(load) + 1
        assert not {"submitted", "working"} & set(states.values()), states
        _restart_and_check(tmp_path, config, db, len(load))


def _restart_and_check(tmp_path: Path, config: Path, db: Path, count: int) -> None:
    second: Server = start_server(tmp_path, "-c", str(config))
    try:
        tasks = list_all(second.url + "/")
        assert len(tasks) == count + 1
        by_state: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            by_state.setdefault(task["status"]["state"], []).append(task)
        assert set(by_state) <= TERMINAL, list(by_state)
        # some runs finished (short ones, medium ones during the drain), some were cut off
        completed = by_state.get("TASK_STATE_COMPLETED", [])
        failed = by_state.get("TASK_STATE_FAILED", [])
        assert len(completed) >= 2 + 1 + 3, [
            t["history"][0]["parts"][0]["text"][:6] for t in completed
        ]
        assert len(failed) >= 3, by_state.keys()
        for task in completed:
            assert task["artifacts"][0]["parts"][0]["text"].startswith("You said:")
        for task in failed:
            reason = task["status"]["message"]["parts"][0]["text"]
            assert "shut down" in reason or "interrupted" in reason, reason
        # GetTask agrees, in both dialects
        for task in tasks:
            got = HTTP.post(
                second.url + "/",
                json=rpc_body("tasks/get", {"id": task["id"]}),
                timeout=10,
            ).json()["result"]
            assert (
                got["status"]["state"]
                == task["status"]["state"].removeprefix("TASK_STATE_").lower()
            )
        # the restarted server works on the same database
        reply = HTTP.post(
            second.url + "/", json=rpc_body("message/send", v03_params(SHORT)), timeout=10
        ).json()["result"]
        assert reply["status"]["state"] == "completed"
    finally:
        assert second.stop() == 0
    states = check_database(db)
    assert len(states) == count + 2
    assert not {"submitted", "working"} & set(states.values())


def test_sigkill_mid_run_leaves_nothing_stuck_after_restart(tmp_path: Path) -> None:
    """No drain at all: the restart itself fails what a killed process left running."""
    db = tmp_path / "hector.db"
    config = tmp_path / "kill.yaml"
    config.write_text(
        f"storage: {{type: sqlite, path: '{db}'}}\n"
        f"llms: {{default: {{provider: demo, stream_delay: {WORD_DELAY}}}}}\n"
    )
    first: Server = start_server(tmp_path, "-c", str(config))
    url = first.url + "/"
    for _ in range(4):
        assert call(url, "immediate", LONG) == "TASK_STATE_SUBMITTED"
    done = call(url, "blocking", SHORT)
    assert done == "completed"
    wait_until(
        lambda: sum(t["status"]["state"] == "TASK_STATE_WORKING" for t in list_all(url)) == 4,
        10,
        "the runs to be working",
    )
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    first.stopped = True
    assert check_database(db)  # whole rows, even after a kill (WAL, one commit a write)
    second: Server = start_server(tmp_path, "-c", str(config))
    try:
        tasks = list_all(second.url + "/")
        states = sorted(t["status"]["state"] for t in tasks)
        assert states == ["TASK_STATE_COMPLETED"] + ["TASK_STATE_FAILED"] * 4, states
        for task in tasks:
            if task["status"]["state"] == "TASK_STATE_FAILED":
                reason = task["status"]["message"]["parts"][0]["text"]
                assert reason.startswith("interrupted"), reason
    finally:
        assert second.stop() == 0
    assert set(check_database(db).values()) == {"completed", "failed"}
