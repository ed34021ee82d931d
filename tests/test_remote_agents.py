"""Remote A2A agents as tools (``remote_agents:`` + ``a2a:NAME``): two real
``hector serve`` processes on the demo model: the coordinator's model calls the
specialist over A2A with our own client, the reply is the tool result, a second delegation
continues the specialist's conversation, the specialist's spans join the coordinator's
trace, its tokens are in the coordinator's task usage, and an unreachable remote is an
unready component and a tool error, never a stuck task. A third party, the a2a-sdk's
reference server (``tests/fakes/a2a_reference.py``), answers through the same tool kind."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from hector_py.client import Peer
from tests.conftest import Server, rpc, v03_message
from tests.fakes.trace_receivers import OTLPHttpReceiver
from tests.metrics_helpers import scrape
from tests.test_mcp import free_port

TRACING = """\
observability:
  metrics: {{enabled: true}}
  tracing: {{enabled: true, protocol: http, endpoint: "127.0.0.1:{port}", sampling_rate: 1.0}}
"""
SPECIALIST = """\
llms: {{default: {{provider: demo, stream_delay: 0}}}}
agents:
  specialist:
    description: Prices things.
    skills: [{{id: quote, name: Quote, description: Quotes a price.}}]
"""
COORDINATOR = """\
llms: {{default: {{provider: demo, stream_delay: 0}}}}
remote_agents:
  pricing: {{url: "{url}/agents/specialist", headers: {{X-Team: blue}}}}
  ghost: {{url: "http://127.0.0.1:9/agents/nobody", timeout: 2}}
  echo: {{url: "http://127.0.0.1:{reference}/echo"}}
  old: {{url: "{url}/agents/specialist", protocol: "0.3"}}
agents:
  coordinator: {{tools: ["a2a:pricing", "a2a:ghost", "a2a:echo", "a2a:old"]}}
"""
ASK = 'use pricing {"message": "price of ABC-1?"}'


def send(server: Server, text: str, context: str) -> dict[str, Any]:
    params = v03_message(text, contextId=context)
    return rpc(f"{server.url}/agents/coordinator", "message/send", params)["result"]  # type: ignore[no-any-return]


@pytest.fixture
def reference() -> Iterator[int]:
    """The a2a-sdk's reference server (tests/fakes/a2a_reference.py) on a free port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.a2a_reference", str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/echo/.well-known/agent-card.json").is_success:
                break
        time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)


def test_a_remote_agent_answers_as_a_tool(serve: Any, tmp_path: Path, reference: int) -> None:
    with OTLPHttpReceiver() as receiver:
        tracing = TRACING.format(port=receiver.port)
        (tmp_path / "specialist.yaml").write_text(SPECIALIST.format() + tracing)
        specialist: Server = serve("-c", str(tmp_path / "specialist.yaml"))
        config = COORDINATOR.format(url=specialist.url, reference=reference) + tracing
        (tmp_path / "coordinator.yaml").write_text(config)
        coordinator: Server = serve("-c", str(tmp_path / "coordinator.yaml"))

        deadline = time.monotonic() + 15  # the card is fetched in the background
        while time.monotonic() < deadline:
            health = httpx.get(f"{coordinator.url}/health", timeout=5).json()["components"]
            if health["remote.pricing"]["status"] == "ok":
                break
            time.sleep(0.1)
        assert health["remote.pricing"]["status"] == "ok"
        assert health["remote.ghost"]["status"] == "unavailable"
        assert httpx.get(f"{coordinator.url}/health/ready", timeout=5).status_code == 503

        first = send(coordinator, ASK, "ctx-1")
        assert first["status"]["state"] == "completed", first
        assert first["artifacts"][0]["parts"][0]["text"] == (
            'The tool returned: You said: "price of ABC-1?". This is the offline demo model'
            " (turn 1)."
        )
        second = send(coordinator, ASK, "ctx-1")  # the specialist's conversation goes on
        assert "(turn 2)" in second["artifacts"][0]["parts"][0]["text"]

        tokens = "hector_llm_tokens_total"
        remote = scrape(f"{specialist.url}/metrics").value(
            tokens, agent="specialist", provider="demo", model="demo", type="prompt"
        )
        local = scrape(f"{coordinator.url}/metrics").value(
            tokens, agent="coordinator", provider="demo", model="demo", type="prompt"
        )
        used = (
            first["metadata"]["usage"]["promptTokens"] + second["metadata"]["usage"]["promptTokens"]
        )
        assert used == local + remote  # the specialist's tokens are counted at the top too

        # the a2a-sdk's reference server, a third party, answers through the same tool kind
        echo = send(coordinator, 'use echo {"message": "hello reference"}', "ctx-3")
        assert echo["artifacts"][0]["parts"][0]["text"] == (
            "The tool returned: reference echo: hello reference"
        )

        # the same specialist in the v0.3 dialect (message/stream, then tasks/get)
        old = send(coordinator, 'use old {"message": "in the old dialect"}', "ctx-4")
        assert old["artifacts"][0]["parts"][0]["text"].startswith(
            'The tool returned: You said: "in the old dialect".'
        )

        ghost = send(coordinator, 'use ghost {"message": "hello?"}', "ctx-2")
        assert ghost["status"]["state"] == "completed"
        assert "error: remote agent ghost:" in ghost["artifacts"][0]["parts"][0]["text"]

        def chain(got: list[Any]) -> tuple[Any, Any, Any] | None:
            """The first ``execute_tool pricing`` span, the delegation's CLIENT span under
            it and the specialist's server span under that, once all arrived (each server
            exports on its own schedule)."""
            tool = next((s for s in got if s.name == "execute_tool pricing"), None)
            client = tool and next((s for s in got if s.parent_span_id == tool.span_id), None)
            server = client and next((s for s in got if s.parent_span_id == client.span_id), None)
            return (tool, client, server) if server else None

        spans = receiver.wait_for(lambda got: chain(got) is not None, what="both servers' spans")
        tool, client, server_span = chain(spans)  # type: ignore[misc]
        assert client.name == "invoke_agent specialist" and client.kind == "CLIENT"
        assert client.attributes["server.address"] == "127.0.0.1"
        assert client.attributes["server.port"] == int(specialist.url.rsplit(":", 1)[1])
        assert server_span.name.startswith("POST /agents/")  # the specialist's, in one trace
        assert any(
            s.name == "invoke_agent specialist" and s.trace_id == tool.trace_id for s in spans
        )


def test_canceling_the_caller_cancels_the_remote_task(serve: Any, tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(
        "llms: {default: {provider: demo, stream_delay: 0.3}}\nagents:\n  specialist: {}\n"
    )
    specialist: Server = serve("-c", str(tmp_path / "slow.yaml"))
    (tmp_path / "top.yaml").write_text(
        "llms: {default: {provider: demo, stream_delay: 0}}\n"
        f'remote_agents:\n  pricing: {{url: "{specialist.url}/agents/specialist"}}\n'
        'agents:\n  coordinator: {tools: ["a2a:pricing"]}\n'
    )
    coordinator: Server = serve("-c", str(tmp_path / "top.yaml"))
    words = " ".join(f"word{i}" for i in range(40))  # 40 words at 0.3 s: 12 s of streaming
    top_url, bottom_url = (
        f"{coordinator.url}/agents/coordinator",
        f"{specialist.url}/agents/specialist",
    )

    def bottom_tasks() -> list[dict[str, Any]]:
        return rpc(bottom_url, "ListTasks", {}, version="1.0")["result"]["tasks"]  # type: ignore[no-any-return]

    deadline = time.monotonic() + 15  # the card (streaming: true) is read in the background
    while time.monotonic() < deadline:
        health = httpx.get(f"{coordinator.url}/health", timeout=5).json()["components"]
        if health["remote.pricing"]["status"] == "ok":
            break
        time.sleep(0.1)
    params = {
        **v03_message(f'use pricing {{"message": "{words}"}}'),
        "configuration": {"blocking": False},
    }
    top = rpc(top_url, "message/send", params)["result"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not bottom_tasks():
        time.sleep(0.1)
    (working,) = bottom_tasks()
    assert working["status"]["state"] == "TASK_STATE_WORKING"
    canceled = rpc(top_url, "tasks/cancel", {"id": top["id"]})["result"]
    assert canceled["status"]["state"] == "canceled"
    deadline = time.monotonic() + 10
    state = ""
    while time.monotonic() < deadline and state != "TASK_STATE_CANCELED":
        state = bottom_tasks()[0]["status"]["state"]
        time.sleep(0.1)
    assert state == "TASK_STATE_CANCELED"  # well before its 12 s of streaming ended


def test_the_v03_dialect_is_spoken_when_asked() -> None:
    """Our client's v0.3 requests are v0.3 (methods, kinds, roles), checked on the wire."""
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"version": request.headers.get("A2A-Version"), **body})
        task = {
            "kind": "task",
            "id": "t1",
            "contextId": "c1",
            "status": {"state": "completed"},
            "artifacts": [{"artifactId": "a", "parts": [{"kind": "text", "text": "old hi"}]}],
        }
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": task})

    async def go() -> str:
        app = web.Application()
        app.router.add_post("/a2a", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as http:
                peer = Peer(http, f"http://127.0.0.1:{port}/a2a", {}, 5.0, "0.3")
                return (await peer.send("hi", None)).text
        finally:
            await runner.cleanup()

    assert asyncio.run(go()) == "old hi"
    (request,) = seen
    assert request["version"] == "0.3" and request["method"] == "message/send"
    message = request["params"]["message"]
    assert message["kind"] == "message" and message["role"] == "user"
    assert message["parts"] == [{"kind": "text", "text": "hi"}]


def test_a_remote_that_answers_garbage_or_hangs_is_a_tool_error(serve: Any, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.bad_a2a", str(port)])
    try:
        (tmp_path / "top.yaml").write_text(
            "llms: {default: {provider: demo, stream_delay: 0}}\nremote_agents:\n"
            f'  garbage: {{url: "http://127.0.0.1:{port}/garbage"}}\n'
            f'  hang: {{url: "http://127.0.0.1:{port}/hang", timeout: 1}}\n'
            'agents:\n  coordinator: {tools: ["a2a:garbage", "a2a:hang"]}\n'
            "observability: {metrics: {enabled: true}}\n"
        )
        coordinator: Server = serve("-c", str(tmp_path / "top.yaml"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            health = httpx.get(f"{coordinator.url}/health", timeout=5).json()["components"]
            if all(health[f"remote.{n}"]["status"] == "ok" for n in ("garbage", "hang")):
                break
            time.sleep(0.1)
        for name, why in (("garbage", "JSONDecodeError"), ("hang", "TimeoutError")):
            task = send(coordinator, f'use {name} {{"message": "hi"}}', f"ctx-{name}")
            assert task["status"]["state"] == "completed", task  # the run went on
            reply = task["artifacts"][0]["parts"][0]["text"]
            assert reply.startswith(f"The tool returned: error: remote agent {name}:"), reply
            assert why in reply and "\n" not in reply  # one line naming the cause
        metrics = scrape(f"{coordinator.url}/metrics")
        failed = metrics.value(
            "hector_agent_delegations_total",
            agent="coordinator",
            target="a2a:garbage",
            status="error",
        )
        assert failed == 1
    finally:
        proc.kill()  # its hanging handler would hold a graceful stop
        proc.wait(10)


def test_the_card_is_revalidated_with_its_etag(serve_once: Server) -> None:
    async def go() -> tuple[Any, Any]:
        async with aiohttp.ClientSession() as http:
            peer = Peer(http, f"{serve_once.url}/agents/assistant", {}, 5.0)
            first = await peer.revalidate_card(5.0)
            again = await peer.revalidate_card(5.0, first.etag)
            return first, again

    first, again = asyncio.run(go())
    assert first.card["name"] == "assistant" and first.etag and first.max_age == 300
    assert again.card is None and again.etag == first.etag  # 304: the cached copy holds
