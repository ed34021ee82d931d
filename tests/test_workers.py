"""``--workers N``: several processes on one port, one set of metrics that adds up."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SHARED_STORE, Server, clean_env, v03_message
from tests.metrics_helpers import REPO
from tests.reliability_helpers import wait_until

MAX_REQUESTS = 300
SCHEDULED = (
    "llms:\n  default:\n    provider: demo\n    stream_delay: 0\n"
    "agents:\n  reporter:\n    trigger: {type: schedule, cron: '* * * * *'}\n"
)


def _value(scrape: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(scrape)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_two_workers_share_the_port_and_their_counts_add_up(serve: Any) -> None:
    server: Server = serve(
        "--workers", "2", "--metrics", "--log-format", "json", env=clean_env(**SHARED_STORE)
    )
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")}
    sent = 0
    pids: set[int] = set()
    while sent < MAX_REQUESTS and (len(pids) < 2 or sent < 40):
        # a new connection each time, so the kernel can hand it to either worker
        reply = httpx.post(server.url + "/", json=body, headers={"Connection": "close"})
        assert reply.json()["result"]["status"]["state"] == "completed"
        sent += 1
        if sent % 10 == 0:
            records = [json.loads(line) for line in server.log_lines()]
            pids = {r["pid"] for r in records if r["logger"] == "hector.access"}
    assert len(pids) == 2, f"only one worker served {sent} requests"
    scrape = httpx.get(server.url + "/metrics").text
    assert _value(scrape, "hector_requests_total", route="/") == sent
    assert _value(scrape, "hector_llm_requests_total", status="success") == sent
    assert _value(scrape, "hector_agent_invocations_total") == sent
    assert _value(scrape, "hector_active_requests") == 1  # just this scrape
    assert server.stop() == 0
    records = [json.loads(line) for line in server.log_lines()]
    assert sum(1 for r in records if r["msg"] == "stopped") == 2


def _scheduled_runs(server: Server) -> list[tuple[int, datetime]]:
    """(worker pid, cron time) of every scheduled run that ended, in log order."""
    text = server.log_path.read_text(encoding="utf-8")
    lines = text.splitlines()[: text.count("\n")]  # not a line still being written
    records = [json.loads(line) for line in lines]
    return [
        (r["pid"], datetime.fromisoformat(r["due"]))
        for r in records
        if r["logger"] == "hector.triggers" and r["msg"].startswith("scheduled run of reporter")
    ]


def _consecutive(times: list[datetime]) -> bool:
    return times == [times[0] + timedelta(minutes=i) for i in range(len(times))]


def test_one_worker_runs_the_schedules_and_its_replacement_takes_over(
    serve: Any, tmp_path: Path
) -> None:
    path = tmp_path / "scheduled.yaml"
    path.write_text(SCHEDULED)
    server: Server = serve(
        *("-c", str(path), "--workers", "2", "--metrics", "--log-format", "json"),
        module="tests.fakes.fast_clock",  # a cron minute every second
        env=clean_env(PYTHONPATH=str(REPO), **SHARED_STORE),
    )
    wait_until(lambda: len(_scheduled_runs(server)) >= 3, 15, "three scheduled runs")
    owners = {pid for pid, _ in _scheduled_runs(server)}
    assert len(owners) == 1, "more than one worker runs the schedules"
    owner = owners.pop()
    os.kill(owner, signal.SIGKILL)

    def replacement_runs() -> list[tuple[int, datetime]]:
        return [(pid, due) for pid, due in _scheduled_runs(server) if pid != owner]

    wait_until(lambda: len(replacement_runs()) >= 3, 15, "the replacement's runs")
    runs = _scheduled_runs(server)
    assert len({pid for pid, _ in replacement_runs()}) == 1, "more than one took over"
    times = [due for _, due in runs]
    assert len(set(times)) == len(times), "a cron time fired twice"
    # every time once, none skipped, except those due while the replacement started
    assert _consecutive([due for pid, due in runs if pid == owner])
    assert _consecutive([due for _, due in replacement_runs()])

    def counted() -> float:
        scrape = httpx.get(server.url + "/metrics").text
        return _value(scrape, "hector_scheduler_triggers_total", type="schedule")

    wait_until(lambda: counted() == len(_scheduled_runs(server)), 10, "the count to add up")
    assert server.stop() == 0
