"""Local sub-agents as tools (``tools: [agent:NAME]``), offline on the demo model: the
coordinator's model calls the specialist, whose reply is the tool result; a second
delegation in the same conversation continues the specialist's conversation; one trace
holds both agents' spans; the coordinator's task usage and the tenant's count include the
specialist's tokens; cycles and unknown agents are one-line config errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, hector, rpc, v03_message
from tests.fakes.trace_receivers import OTLPHttpReceiver, children
from tests.metrics_helpers import scrape

CONFIG = """\
llms:
  default: {{provider: demo, stream_delay: 0}}
agents:
  coordinator: {{tools: ["agent:researcher"]}}
  researcher: {{description: Finds facts.}}
observability:
  metrics: {{enabled: true}}
  tracing: {{enabled: true, protocol: http, endpoint: "127.0.0.1:{port}", sampling_rate: 1.0}}
"""
ASK = 'use researcher {"message": "who wrote Dune?"}'


def send(server: Server, text: str, context: str) -> dict[str, Any]:
    result = rpc(
        f"{server.url}/agents/coordinator", "message/send", v03_message(text, contextId=context)
    )["result"]
    return result  # type: ignore[no-any-return]


def test_coordinator_delegates_with_one_trace_and_one_ledger(serve: Any, tmp_path: Path) -> None:
    with OTLPHttpReceiver() as receiver:
        config = tmp_path / "team.yaml"
        config.write_text(CONFIG.format(port=receiver.port))
        server: Server = serve("-c", str(config))
        first = send(server, ASK, "ctx-1")
        assert first["status"]["state"] == "completed", first
        reply = first["artifacts"][0]["parts"][0]["text"]
        assert reply == (
            'The tool returned: You said: "who wrote Dune?". This is the offline demo model'
            " (turn 1)."
        )
        metrics = scrape(f"{server.url}/metrics")
        usage = first["metadata"]["usage"]
        tokens = "hector_llm_tokens_total"
        both = sum(
            metrics.value(tokens, agent=agent, provider="demo", model="demo", type="prompt")
            for agent in ("coordinator", "researcher")
        )
        assert (
            metrics.value(tokens, agent="researcher", provider="demo", model="demo", type="prompt")
            > 0
        )
        assert usage["promptTokens"] == both  # the specialist's tokens are the run's too
        # the same conversation again: the specialist continues its own (turn 2)
        second = send(server, ASK, "ctx-1")
        assert "(turn 2)" in second["artifacts"][0]["parts"][0]["text"]
        other = send(server, ASK, "ctx-2")  # another conversation starts its own
        assert "(turn 1)" in other["artifacts"][0]["parts"][0]["text"]
        after = scrape(f"{server.url}/metrics")
        delegations = "hector_agent_delegations_total"
        assert (
            after.value(delegations, agent="coordinator", target="researcher", status="success")
            == 3
        )

        spans = receiver.wait_for(
            lambda got: sum(s.name == "invoke_agent researcher" for s in got) >= 3,
            what="the specialist's runs",
        )
        tool = next(s for s in spans if s.name == "execute_tool researcher")
        child = [s for s in children(spans, tool) if s.name == "invoke_agent researcher"]
        assert len(child) == 1, [s.name for s in children(spans, tool)]
        assert [s.name for s in children(spans, child[0])] == ["chat demo"]
        assert child[0].attributes["gen_ai.agent.name"] == "researcher"


def test_cycles_and_unknown_agents_are_config_errors(tmp_path: Path) -> None:
    config = tmp_path / "loop.yaml"
    config.write_text(
        'agents:\n  a: {tools: ["agent:b"]}\n  b: {tools: ["agent:a"]}\n'
        '  c: {tools: ["agent:nobody"]}\n'
    )
    result = hector("validate", str(config))
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert "agents.c.tools.0: unknown agent 'nobody'" in output, output
    config.write_text('agents:\n  a: {tools: ["agent:b"]}\n  b: {tools: ["agent:a"]}\n')
    output = hector("validate", str(config)).stdout
    assert "delegation a -> b -> a is a cycle" in output, output
    deep = "".join(f'  a{i}: {{tools: ["agent:a{i + 1}"]}}\n' for i in range(4)) + "  a4: {}\n"
    config.write_text(f"max_delegation_depth: 3\nagents:\n{deep}")
    output = hector("validate", str(config)).stdout
    assert "delegation a0 -> a1 -> a2 -> a3 -> a4 is deeper than 3" in output, output


def test_card_lists_configured_skills(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "skills.yaml"
    config.write_text(
        "agents:\n  pricing:\n    description: Prices things.\n    skills:\n"
        "      - {id: quote, name: Quote, tags: [pricing], examples: ['price of 3 ABC-1?']}\n"
        "      - {id: refund, name: Refund, description: Refunds an order.}\n"
    )
    server: Server = serve("-c", str(config))
    card = httpx.get(f"{server.url}/agents/pricing", timeout=5).json()
    assert card["skills"] == [
        {
            "id": "quote",
            "name": "Quote",
            "description": "Prices things.",
            "tags": ["pricing"],
            "examples": ["price of 3 ABC-1?"],
        },
        {
            "id": "refund",
            "name": "Refund",
            "description": "Refunds an order.",
            "tags": [],
            "examples": [],
        },
    ]


def test_extended_card_needs_credentials(serve: Any, tmp_path: Path) -> None:
    key = "key-ext-0123456789"
    config = tmp_path / "auth.yaml"
    config.write_text(
        f"server: {{auth: {{api_keys: [{key}]}}}}\nagents:\n  assistant: {{tools: [calculator]}}\n"
    )
    server: Server = serve("-c", str(config))
    card = httpx.get(f"{server.url}/.well-known/agent-card.json", timeout=5).json()
    assert card["capabilities"]["extendedAgentCard"] is True
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetExtendedAgentCard", "params": {}}
    headers = {"Content-Type": "application/json", "A2A-Version": "1.0"}
    anonymous = httpx.post(server.url + "/", json=body, headers=headers, timeout=5)
    assert anonymous.status_code == 401
    authed = httpx.post(
        server.url + "/", json=body, headers={**headers, "X-API-Key": key}, timeout=5
    )
    skills = authed.json()["result"]["skills"]
    assert [s["id"] for s in skills] == ["assistant", "tool:calculator"]
