"""Two real ``hector serve`` replicas on one real PostgreSQL (issue 15): what one starts,
the other sees, cancels, streams and continues; a killed replica's runs are failed by the
survivor; token budgets add up exactly across both."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.client import ClientCallContext
from a2a.helpers import new_text_message
from a2a.types.a2a_pb2 import GetTaskRequest, Role, SendMessageRequest, TaskState

from tests.conftest import Server, clean_env, start_server, v03_message
from tests.metrics_helpers import REPO
from tests.postgres_server import Postgres, new_schema
from tests.reliability_helpers import HTTP, rpc_body, sse_data, v1_message, wait_until

WORD_DELAY = 0.05
MEDIUM, LONG = " ".join(["medium"] * 12), " ".join(["long"] * 400)
V1 = {"A2A-Version": "1.0"}


def write_config(path: Path, postgres: Postgres, schema: str, extra: str = "") -> Path:
    path.write_text(
        f"storage: {{type: postgres, dsn: '{postgres.dsn}', schema: {schema},"
        " lease_seconds: 3, pool: {min: 1, max: 8}}\n"
        f"llms: {{default: {{provider: demo, stream_delay: {WORD_DELAY}}}}}\n" + extra
    )
    return path


@pytest.fixture(scope="module")
def replicas(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    """Replicas A and B: two processes, two ports, one database schema."""
    workdir = tmp_path_factory.mktemp("replicas")
    config = write_config(workdir / "hector.yaml", postgres, new_schema())
    a = start_server(workdir, "-c", str(config))
    b = start_server(workdir, "-c", str(config))
    yield a, b
    for server in (a, b):
        assert server.stop() == 0
        assert "Traceback" not in server.log_path.read_text()


def v1(server: Server, method: str, params: dict[str, Any]) -> dict[str, Any]:
    response = HTTP.post(server.url + "/", json=rpc_body(method, params), headers=V1, timeout=20)
    assert response.status_code == 200 and "Traceback" not in response.text, response.text
    return response.json()  # type: ignore[no-any-return]


def v03(server: Server, method: str, params: dict[str, Any]) -> dict[str, Any]:
    response = HTTP.post(server.url + "/", json=rpc_body(method, params), timeout=20)
    assert response.status_code == 200 and "Traceback" not in response.text, response.text
    return response.json()  # type: ignore[no-any-return]


def start_on(server: Server, text: str, **message: Any) -> str:
    """Start a run on ``server`` without waiting for it; its task id."""
    params = v1_message(text, returnImmediately=True)
    params["message"].update(message)
    return v1(server, "SendMessage", params)["result"]["task"]["id"]  # type: ignore[no-any-return]


def state_on(server: Server, task_id: str) -> str:
    return v1(server, "GetTask", {"id": task_id})["result"]["status"]["state"]  # type: ignore[no-any-return]


def reply_of(task: dict[str, Any]) -> str:
    return "".join(p["text"] for a in task.get("artifacts", []) for p in a["parts"])


def test_a_task_started_on_a_is_seen_on_b_in_both_dialects(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    task_id = start_on(a, MEDIUM)
    assert state_on(b, task_id) in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
    wait_until(lambda: state_on(b, task_id) == "TASK_STATE_COMPLETED", 20, "completion seen on B")
    on_a = v1(a, "GetTask", {"id": task_id})["result"]
    on_b_v03 = v03(b, "tasks/get", {"id": task_id})["result"]
    assert on_b_v03["status"]["state"] == "completed" and on_b_v03["kind"] == "task"
    assert reply_of(on_b_v03) == reply_of(on_a) and "medium" in reply_of(on_a)
    listed = v1(b, "ListTasks", {"pageSize": 100})["result"]["tasks"]
    assert task_id in [t["id"] for t in listed]


async def _sdk_send_on_a_get_on_b(a_url: str, b_url: str) -> tuple[Any, Any]:
    on_a = await create_client(a_url, client_config=ClientConfig(streaming=False))
    on_b = await create_client(b_url, client_config=ClientConfig(streaming=False))
    async with on_a, on_b:
        request = SendMessageRequest(message=new_text_message("hi there", role=Role.ROLE_USER))
        events = [
            e async for e in on_a.send_message(request, context=ClientCallContext(timeout=20))
        ]
        sent = events[-1].task
        return sent, await on_b.get_task(GetTaskRequest(id=sent.id))


def test_the_a2a_sdk_client_gets_on_b_what_it_sent_to_a(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    sent, got = asyncio.run(_sdk_send_on_a_get_on_b(a.url, b.url))
    assert sent.status.state == TaskState.TASK_STATE_COMPLETED
    assert got.id == sent.id and got.status.state == TaskState.TASK_STATE_COMPLETED
    assert got.artifacts[0].parts[0].text == sent.artifacts[0].parts[0].text


@pytest.mark.parametrize("dialect", ["1.0", "0.3"])
def test_cancel_on_b_stops_the_run_on_a(replicas: tuple[Server, Server], dialect: str) -> None:
    a, b = replicas
    task_id = start_on(a, LONG)
    wait_until(lambda: state_on(b, task_id) == "TASK_STATE_WORKING", 10, "the run on A")
    if dialect == "1.0":
        canceled = v1(b, "CancelTask", {"id": task_id})["result"]["status"]["state"]
        assert canceled == "TASK_STATE_CANCELED"
    else:
        assert v03(b, "tasks/cancel", {"id": task_id})["result"]["status"]["state"] == "canceled"
    # only A's runner writes 'canceled' (when its run is stopped); A agrees, and knows it
    assert state_on(a, task_id) == "TASK_STATE_CANCELED"
    again = v1(b, "CancelTask", {"id": task_id})["error"]
    assert again["code"] == -32002


@pytest.mark.parametrize("dialect", ["1.0", "0.3"])
def test_subscribe_on_b_streams_a_run_to_its_end(
    replicas: tuple[Server, Server], dialect: str
) -> None:
    a, b = replicas
    task_id = start_on(a, MEDIUM)
    if dialect == "1.0":
        response = HTTP.post(
            b.url + "/", json=rpc_body("SubscribeToTask", {"id": task_id}), headers=V1, timeout=30
        )
    else:
        response = HTTP.post(b.url + "/", json=rpc_body("tasks/resubscribe", {"id": task_id}))
    assert response.status_code == 200 and "Traceback" not in response.text
    events = [json.loads(data)["result"] for data in sse_data(response)]
    if dialect == "1.0":
        assert events[0]["task"]["id"] == task_id
        last = events[-1]["statusUpdate"]["status"]["state"]
        artifacts = [e["artifactUpdate"]["artifact"] for e in events if "artifactUpdate" in e]
        assert last == "TASK_STATE_COMPLETED"
    else:
        assert events[0]["kind"] == "task"
        assert events[-1]["status"]["state"] == "completed" and events[-1]["final"] is True
        artifacts = [e["artifact"] for e in events if e["kind"] == "artifact-update"]
    streamed = "".join(p["text"] for artifact in artifacts for p in artifact["parts"])
    assert streamed == reply_of(v1(a, "GetTask", {"id": task_id})["result"])


def test_a_context_continued_on_b_sees_the_history_written_on_a(
    replicas: tuple[Server, Server],
) -> None:
    a, b = replicas
    context = f"ctx-{new_schema()}"
    first = v03(a, "message/send", v03_message("one", contextId=context))["result"]
    second = v03(b, "message/send", v03_message("two", contextId=context))["result"]
    assert "(turn 1)" in reply_of(first)
    assert "(turn 2)" in reply_of(second)  # the demo model counts the user turns it was sent
    assert second["contextId"] == context


def test_a_replica_killed_mid_run_has_its_tasks_failed_by_the_survivor(
    postgres: Postgres, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "hector.yaml", postgres, new_schema())
    a = start_server(tmp_path, "-c", str(config))
    b = start_server(tmp_path, "-c", str(config))
    try:
        task_ids = [start_on(a, LONG) for _ in range(2)]
        wait_until(
            lambda: all(state_on(b, t) == "TASK_STATE_WORKING" for t in task_ids), 10, "runs"
        )
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        a.stopped = True
        wait_until(
            lambda: all(state_on(b, t) == "TASK_STATE_FAILED" for t in task_ids),
            15,
            "the survivor to fail the dead replica's tasks",
        )
        for task_id in task_ids:
            status = v1(b, "GetTask", {"id": task_id})["result"]["status"]
            assert status["message"]["parts"][0]["text"].startswith("interrupted")
        assert state_on(b, start_on(b, "still serving")) in (
            "TASK_STATE_SUBMITTED",
            "TASK_STATE_WORKING",
            "TASK_STATE_COMPLETED",
        )
    finally:
        b.stop()
        a.stop()


async def _charged(dsn: str, schema: str, tenant: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        period = datetime.now(UTC).strftime("%Y-%m-%d")
        tokens = await conn.fetchval(
            f'SELECT tokens FROM "{schema}".token_usage WHERE tenant = $1 AND period = $2',
            tenant,
            period,
        )
        return int(tokens or 0)
    finally:
        await conn.close()


def test_a_budget_shared_by_two_replicas_charges_exactly_what_upstream_used(
    postgres: Postgres, tmp_path: Path
) -> None:
    schema = new_schema()
    config = write_config(
        tmp_path / "hector.yaml",
        postgres,
        schema,
        "server: {auth: {tenant_header: X-Tenant}}\n"
        "budgets: {acme: {daily_tokens: 400, reserve_tokens: 30}}\n",
    )
    replicas = [start_server(tmp_path, "-c", str(config)) for _ in range(2)]
    try:
        headers = {"X-Tenant": "acme"}

        def send(n: int) -> dict[str, Any]:
            server = replicas[n % 2]
            body = rpc_body("message/send", v03_message(f"request {n} with a few words"))
            response = httpx.post(server.url + "/", json=body, headers=headers, timeout=60)
            assert response.status_code == 200 and "Traceback" not in response.text
            return response.json()  # type: ignore[no-any-return]

        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(send, range(100)))
        ran = [a["result"] for a in answers if "result" in a]
        refused = [a["error"] for a in answers if "error" in a]
        assert ran and all(e["code"] == -32011 for e in refused)
        upstream = sum(
            t["metadata"]["usage"]["promptTokens"] + t["metadata"]["usage"]["completionTokens"]
            for t in ran
        )

        def settled() -> bool:  # charges are written as each run ends
            return asyncio.run(_charged(postgres.dsn, schema, "acme")) == upstream

        wait_until(settled, 10, "every run's tokens to be charged")
        # then one at a time, alternating replicas, until the budget refuses
        for n in range(100, 200):
            answer = send(n)
            if "error" in answer:
                assert answer["error"]["code"] == -32011
                break
            ran.append(answer["result"])
        else:
            raise AssertionError("the budget never ran out")
        upstream = sum(
            t["metadata"]["usage"]["promptTokens"] + t["metadata"]["usage"]["completionTokens"]
            for t in ran
        )
        wait_until(settled, 10, "every run's tokens to be charged")
        largest = max(
            t["metadata"]["usage"]["promptTokens"] + t["metadata"]["usage"]["completionTokens"]
            for t in ran
        )
        # refused only once spent, and spent by less than one more run
        assert 400 <= upstream < 400 + largest
        for server in replicas:  # neither replica starts another run
            assert send(0 if server is replicas[0] else 1)["error"]["code"] == -32011
    finally:
        for server in replicas:
            server.stop()


def scheduled_runs(server: Server) -> list[datetime]:
    """The cron times of the scheduled runs ``server`` finished, in log order."""
    text = server.log_path.read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()[: text.count("\n")]]
    return [
        datetime.fromisoformat(r["due"])
        for r in records
        if r.get("logger") == "hector.triggers" and r["msg"].startswith("scheduled run of reporter")
    ]


def test_schedules_fire_once_across_replicas_and_survive_the_leader(
    postgres: Postgres, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "hector.yaml",
        postgres,
        new_schema(),
        "agents:\n  reporter:\n    trigger: {type: schedule, cron: '* * * * *'}\n",
    )
    env = clean_env(PYTHONPATH=str(REPO), FAST_CLOCK_START=str(time.time()))
    replicas = [
        start_server(
            tmp_path,
            *("-c", str(config), "--log-format", "json"),
            env=env,
            module="tests.fakes.fast_clock",  # a cron minute every second, one clock for both
        )
        for _ in range(2)
    ]
    try:
        wait_until(lambda: sum(len(scheduled_runs(r)) for r in replicas) >= 3, 20, "three runs")
        leaders = [r for r in replicas if scheduled_runs(r)]
        assert len(leaders) == 1, "both replicas ran the schedule"
        leader = leaders[0]
        follower = replicas[1] if leader is replicas[0] else replicas[0]
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait(10)
        leader.stopped = True
        wait_until(lambda: len(scheduled_runs(follower)) >= 2, 20, "the follower to take over")
        fired = scheduled_runs(leader) + scheduled_runs(follower)
        assert len(fired) == len(set(fired)), f"a cron time fired twice: {sorted(fired)}"
        assert max(scheduled_runs(leader)) < min(scheduled_runs(follower))
    finally:
        for server in replicas:
            server.stop()
