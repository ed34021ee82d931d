"""Structured output: ``agents.<x>.output_schema`` and ``/v1`` ``response_format`` reach the
model in its provider's form, the answer is validated (one repair round, then a clear
failure), A2A replies carry the object as a data part, and the official ``openai`` SDK's
``chat.completions.parse`` gets a parsed object."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.types.a2a_pb2 import Message as SdkMessage
from a2a.types.a2a_pb2 import Part, Role, SendMessageRequest
from google.protobuf.json_format import MessageToDict
from openai import OpenAI
from pydantic import BaseModel

from tests.a2a_helpers import DIALECTS, call, collect, sdk_client, v1_message
from tests.conftest import FakeLLM, Server, configured_server, hector
from tests.test_providers import run

TICKET = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "priority": {"enum": ["low", "high"]},
        "words": {"type": "integer"},
    },
    "required": ["summary", "priority", "words"],
    "additionalProperties": False,
}
CONFIG = """\
llms:
  default: {provider: demo}
  fake: {provider: openai, model: gpt-fake, base_url: "URL", max_retries: 0}
agents:
  assistant: {output_schema: SCHEMA}
  upstream: {llm: fake, output_schema: SCHEMA}
  free: {}
""".replace("SCHEMA", json.dumps(TICKET))


@pytest.fixture(scope="module")
def server(openai_fake: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with configured_server(
        tmp_path_factory, "structured", CONFIG.replace("URL", openai_fake.base_url)
    ) as server:
        yield server


EXPECTED = {"summary": "printer on fire", "priority": "low", "words": 3}


def test_blocking_reply_has_the_object_as_a_data_part(server: Server) -> None:
    task = call(f"{server.url}/agents/assistant", "SendMessage", v1_message("printer on fire"))
    parts = task["result"]["task"]["artifacts"][0]["parts"]
    assert json.loads(parts[0]["text"]) == EXPECTED
    assert parts[1] == {"data": EXPECTED}
    params = {
        "message": {
            "kind": "message",
            "messageId": "v03",
            "role": "user",
            "parts": [{"kind": "text", "text": "printer on fire"}],
        }
    }
    old = call(f"{server.url}/agents/assistant", "message/send", params)["result"]
    assert old["artifacts"][0]["parts"][1] == {"kind": "data", "data": EXPECTED}


@pytest.mark.parametrize("version", DIALECTS)
def test_stream_ends_the_artifact_with_the_data_part(server: Server, version: str) -> None:
    async def stream() -> list[Any]:
        client = await sdk_client(server.url, version)
        message = SdkMessage(
            message_id=f"s-{version}", role=Role.ROLE_USER, parts=[Part(text="printer on fire")]
        )
        events = await collect(client.send_message(SendMessageRequest(message=message)))
        await client.close()
        return [MessageToDict(e) for e in events]

    events = run(stream())
    updates = [e["artifactUpdate"] for e in events if "artifactUpdate" in e]
    text = "".join(p.get("text", "") for u in updates for p in u["artifact"]["parts"])
    assert json.loads(text) == EXPECTED
    assert updates[-1]["lastChunk"] is True
    assert updates[-1]["artifact"]["parts"][-1]["data"] == EXPECTED


class Ticket(BaseModel):
    summary: str
    urgent: bool
    tags: list[str]


def test_openai_sdk_parse_returns_a_parsed_object(server: Server) -> None:
    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.parse(
        model="free",
        messages=[{"role": "user", "content": "disk full"}],
        response_format=Ticket,
    )
    parsed = completion.choices[0].message.parsed
    assert parsed == Ticket(summary="disk full", urgent=True, tags=["disk full"])


def test_the_schema_goes_upstream_and_a_bad_answer_is_repaired_once(
    server: Server, openai_fake: FakeLLM
) -> None:
    good = {"summary": "s", "priority": "high", "words": 1}
    seen = openai_fake.script({"text": "Sure! Here it is."}, {"text": json.dumps(good)})
    task = call(f"{server.url}/agents/upstream", "SendMessage", v1_message("help"))["result"]
    assert task["task"]["artifacts"][0]["parts"][1] == {"data": good}
    first, second = (r["body"] for r in openai_fake.requests()[seen:])
    assert first["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": TICKET, "strict": False},
    }
    repair = second["messages"][-1]
    assert (
        repair["role"] == "user" and "does not match the required JSON Schema" in repair["content"]
    )
    assert second["messages"][-2] == {"role": "assistant", "content": "Sure! Here it is."}


def test_an_answer_still_wrong_after_the_repair_fails_the_task(
    server: Server, openai_fake: FakeLLM
) -> None:
    openai_fake.script(
        {"text": '{"summary": 1}'}, {"text": '{"summary": "x", "priority": "urgent"}'}
    )
    task = call(f"{server.url}/agents/upstream", "SendMessage", v1_message("help"))["result"]
    status = task["task"]["status"]
    assert status["state"] == "TASK_STATE_FAILED"
    reason = status["message"]["parts"][0]["text"]
    assert "does not match the output schema" in reason and "$.priority" in reason, reason


def test_bad_schemas_are_refused_where_they_are_given(server: Server, tmp_path: Path) -> None:
    body = {
        "model": "free",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 5}}},
    }
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "response_format.json_schema"
    config = tmp_path / "bad.yaml"
    config.write_text("agents:\n  a: {output_schema: {type: objekt}}\n")
    result = hector("validate", str(config))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "agents.a.output_schema: not a valid JSON Schema" in output, output
    assert "Traceback" not in output
