"""The bad-input table of issue 8, case by case, through one real server (sqlite store).

Each case gets the right JSON-RPC error (HTTP 200) or a 400/404/405/413 JSON error: never
a 500, never a traceback in the body, and no ERROR log line for that request. Both A2A
dialects (v1.0 ``SendMessage``..., v0.3 ``message/send``...) and ``/v1/chat/completions``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_server
from tests.reliability_helpers import json_logs, rpc_body

MAX_BODY = 262_144  # room for 100 000 levels of '[' below the limit
MAX_CHARS = 1000

PARSE, INVALID_REQUEST, NO_METHOD, INVALID_PARAMS = -32700, -32600, -32601, -32602
TASK_NOT_FOUND, VERSION, CONTENT_TYPE = -32001, -32009, -32005


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("bad-input")
    config = workdir / "bad-input.yaml"
    config.write_text(
        f"server: {{max_body_bytes: {MAX_BODY}, max_message_chars: {MAX_CHARS}}}\n"
        f"storage: {{type: sqlite, path: '{workdir / 'tasks.db'}'}}\n"
        "llms: {default: {provider: demo, stream_delay: 0}}\n"
        "logging: {format: json}\n"
    )
    running = start_server(workdir, "-c", str(config))
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One client for the module (a new one per request costs an SSL context)."""
    with httpx.Client(timeout=15) as shared:
        yield shared


@dataclass(frozen=True)
class Case:
    """A request and what it must get: a JSON-RPC ``code`` or an HTTP ``status``."""

    body: bytes | None
    code: int | None = None
    status: int = 200
    path: str = "/"
    version: str | None = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    says: str = ""  # a fragment the error message must contain


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def v03(message: Any = None, **params: Any) -> dict[str, Any]:
    base = {
        "kind": "message",
        "messageId": "m-1",
        "role": "user",
        "parts": [{"kind": "text", "text": "hi"}],
    }
    if message is not None:
        base = message
    return rpc_body("message/send", {"message": base, **params})


def v1(message: Any = None, **params: Any) -> dict[str, Any]:
    base = {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
    if message is not None:
        base = message
    return rpc_body("SendMessage", {"message": base, **params})


def with_parts(parts: Any, v03: bool = True, **extra: Any) -> dict[str, Any]:
    """A message with ``parts``: v0.3 role names and part kinds, or v1.0 ones."""
    if v03 and isinstance(parts, list):
        parts = [
            {"kind": "data" if "data" in p else "text", **p} if isinstance(p, dict) else p
            for p in parts
        ]
    role = "user" if v03 else "ROLE_USER"
    return {"messageId": "m-1", "role": role, "parts": parts, **extra}


GOOD_V03 = v03()
DEEP = b"[" * 100_000
DEEP_OBJECTS = b'{"a":' * 50_000
NESTED_PARTS = v03(with_parts(json.loads("[" * 200 + "]" * 200)))


def a2a_cases() -> Iterator[Any]:
    # malformed JSON, invalid UTF-8, deep nesting
    yield "malformed_json", Case(b'{"jsonrpc": "2.0", "id": 1, "method":', PARSE, says="parse")
    yield "empty_body", Case(b"", PARSE)
    yield "not_json", Case(b"hello there", PARSE)
    yield "trailing_garbage", Case(dumps(GOOD_V03) + b"}}", PARSE)
    yield "invalid_utf8_bytes", Case(b"\xff\xfe\xfd garbage \x80", PARSE)
    yield "invalid_utf8_in_string", Case(dumps(GOOD_V03).replace(b'"hi"', b'"h\xffi"'), PARSE)
    yield "lone_surrogate", Case(dumps(GOOD_V03).replace(b'"hi"', b'"\\ud800"'), PARSE)
    yield "nested_100000_arrays", Case(DEEP, PARSE)
    yield "nested_50000_objects", Case(DEEP_OBJECTS, PARSE)
    yield "nested_inside_parts", Case(dumps(NESTED_PARTS), INVALID_PARAMS, says="parts[0]")
    # wrong JSON-RPC shapes
    yield "batch_array", Case(dumps([GOOD_V03]), INVALID_REQUEST)
    yield "empty_array", Case(b"[]", INVALID_REQUEST)
    yield "scalar", Case(b"42", INVALID_REQUEST)
    yield "string", Case(b'"message/send"', INVALID_REQUEST)
    yield "null", Case(b"null", INVALID_REQUEST)
    yield "missing_method", Case(dumps({"jsonrpc": "2.0", "id": 1, "params": {}}), INVALID_REQUEST)
    yield "method_not_a_string", Case(dumps({**GOOD_V03, "method": 5}), INVALID_REQUEST)
    yield (
        "missing_jsonrpc",
        Case(dumps({k: v for k, v in GOOD_V03.items() if k != "jsonrpc"}), INVALID_REQUEST),
    )
    yield "wrong_jsonrpc", Case(dumps({**GOOD_V03, "jsonrpc": "1.0"}), INVALID_REQUEST)
    yield "jsonrpc_number", Case(dumps({**GOOD_V03, "jsonrpc": 2.0}), INVALID_REQUEST)
    yield "bool_id", Case(dumps({**GOOD_V03, "id": True}), INVALID_REQUEST)
    yield "object_id", Case(dumps({**GOOD_V03, "id": {"a": 1}}), INVALID_REQUEST)
    yield "list_id", Case(dumps({**GOOD_V03, "id": [1]}), INVALID_REQUEST)
    # unknown methods and versions
    yield "unknown_method", Case(dumps({**GOOD_V03, "method": "message/explode"}), NO_METHOD)
    yield (
        "unknown_v1_method",
        Case(dumps({**GOOD_V03, "method": "DeleteEverything"}), NO_METHOD, version="1.0"),
    )
    yield "v1_method_without_header", Case(dumps(v1()), VERSION, says="1.0")
    yield "v03_method_with_v1_header", Case(dumps(GOOD_V03), VERSION, version="1.0")
    yield "unknown_version_2", Case(dumps(GOOD_V03), VERSION, version="2.0", says="2.0")
    yield "unknown_version_garbage", Case(dumps(v1()), VERSION, version="banana")
    yield "unknown_version_v0_2", Case(dumps(GOOD_V03), VERSION, version="0.2")
    # wrong param types, in both dialects
    for dialect, make in (("v03", v03), ("v1", v1)):
        version = "1.0" if dialect == "v1" else None
        is_v03 = dialect == "v03"

        def msg(parts: Any, **extra: Any) -> dict[str, Any]:
            return with_parts(parts, is_v03, **extra)  # noqa: B023

        def case(body: dict[str, Any], code: int = INVALID_PARAMS, says: str = "") -> Case:
            return Case(dumps(body), code, version=version, says=says)  # noqa: B023

        send = make()
        yield f"{dialect}_params_list", case({**send, "params": [1, 2]}, says="params")
        yield f"{dialect}_params_string", case({**send, "params": "hi"}, says="params")
        yield f"{dialect}_no_message", case({**send, "params": {}}, says="message")
        yield f"{dialect}_message_string", case(make("hi"), says="message")
        yield f"{dialect}_message_list", case(make([{"text": "hi"}]), says="message")
        yield (
            f"{dialect}_parts_missing",
            case(make({"messageId": "m", "role": "user" if is_v03 else "ROLE_USER"}), says="parts"),
        )
        yield f"{dialect}_parts_string", case(make(msg("hi")), says="parts")
        yield f"{dialect}_part_string", case(make(msg(["hi"])), says="parts[0]")
        yield f"{dialect}_text_number", case(make(msg([{"text": 5}])), says="text")
        yield f"{dialect}_text_list", case(make(msg([{"text": ["a"]}])), says="text")
        yield (
            f"{dialect}_context_id_number",
            case(make(msg([{"text": "hi"}], contextId=5)), says="contextId"),
        )
        yield (
            f"{dialect}_message_id_list",
            case(make(msg([{"text": "hi"}], messageId=[])), says="messageId"),
        )
        yield (
            f"{dialect}_configuration_string",
            case(make(configuration="fast"), says="configuration"),
        )
        yield (
            f"{dialect}_history_length_string",
            case(make(configuration={"historyLength": "3"}), says="historyLength"),
        )
        yield (
            f"{dialect}_history_length_negative",
            case(make(configuration={"historyLength": -1}), says="historyLength"),
        )
        yield (
            f"{dialect}_history_length_bool",
            case(make(configuration={"historyLength": True}), says="historyLength"),
        )
        yield (
            f"{dialect}_blocking_string",
            case(make(configuration={"blocking": "no"}), says="blocking"),
        )
        yield (
            f"{dialect}_return_immediately_number",
            case(make(configuration={"returnImmediately": 1}), says="returnImmediately"),
        )
        # an empty message
        yield f"{dialect}_empty_parts", case(make(msg([])), says="parts")
        yield f"{dialect}_empty_text", case(make(msg([{"text": ""}])), says="no text")
        yield f"{dialect}_blank_text", case(make(msg([{"text": " \n\t "}])), says="no text")
        yield (
            f"{dialect}_null_data_part",
            case(make(msg([{"data": None}])), says=".data: must be"),
        )
        wav = {"raw": "UklGRg==", "mediaType": "audio/wav"}  # a type the demo model cannot take
        if is_v03:
            wav = {"kind": "file", "file": {"bytes": "UklGRg==", "mimeType": "audio/wav"}}
        yield f"{dialect}_audio_part", case(make(msg([wav])), CONTENT_TYPE, says="audio/wav")
        # over-long messages
        yield (
            f"{dialect}_over_long",
            case(make(msg([{"text": "x" * (MAX_CHARS + 1)}])), says="server.max_message_chars"),
        )
        yield (
            f"{dialect}_over_long_in_parts",
            case(
                make(msg([{"text": "x" * 600}, {"text": "y" * 600}])),
                says="server.max_message_chars",
            ),
        )
    # task methods
    yield "v1_get_task_no_id", Case(dumps(rpc_body("GetTask", {})), INVALID_PARAMS, version="1.0")
    yield (
        "v1_get_task_id_number",
        Case(dumps(rpc_body("GetTask", {"id": 5})), INVALID_PARAMS, version="1.0"),
    )
    yield (
        "v1_get_task_unknown",
        Case(dumps(rpc_body("GetTask", {"id": "nope"})), TASK_NOT_FOUND, version="1.0"),
    )
    yield "v03_get_task_unknown", Case(dumps(rpc_body("tasks/get", {"id": "nope"})), TASK_NOT_FOUND)
    yield (
        "v03_cancel_unknown",
        Case(dumps(rpc_body("tasks/cancel", {"id": "nope"})), TASK_NOT_FOUND),
    )
    yield (
        "v03_resubscribe_unknown",
        Case(dumps(rpc_body("tasks/resubscribe", {"id": "nope"})), TASK_NOT_FOUND),
    )
    for name, params in (
        ("page_size_negative", {"pageSize": -1}),
        ("page_size_huge", {"pageSize": 10**6}),
        ("page_size_string", {"pageSize": "10"}),
        ("status_unknown", {"status": "TASK_STATE_EXPLODED"}),
        ("status_number", {"status": 3}),
        ("page_token_letters", {"pageToken": "abc"}),
        ("context_id_list", {"contextId": ["a"]}),
    ):
        yield (
            f"v1_list_tasks_{name}",
            Case(dumps(rpc_body("ListTasks", params)), INVALID_PARAMS, version="1.0"),
        )
    yield pytest.param(
        Case(dumps(rpc_body("ListTasks", {"pageToken": "9" * 30})), INVALID_PARAMS, version="1.0"),
        id="v1_list_tasks_page_token_huge",
    )
    # unknown agents
    yield "unknown_agent_rpc", Case(dumps(GOOD_V03), status=404, path="/agents/ghost", says="ghost")
    yield "unknown_agent_card", Case(None, status=404, path="/agents/ghost", method="GET")
    yield (
        "unknown_agent_well_known",
        Case(None, status=404, path="/agents/ghost/.well-known/agent-card.json", method="GET"),
    )
    yield "unknown_agent_escaped", Case(dumps(GOOD_V03), status=404, path="/agents/%ff%00")
    yield "get_on_rpc_endpoint", Case(None, status=405, path="/", method="GET")
    # huge bodies
    yield "huge_raw_body", Case(b"x" * (MAX_BODY + 1), status=413)
    yield "huge_valid_json", Case(dumps(v03(with_parts([{"text": "z" * MAX_BODY}]))), status=413)
    yield "huge_agent_route", Case(b"{" * (MAX_BODY * 2), status=413, path="/agents/assistant")


def chat(**body: Any) -> bytes:
    return dumps({"model": "assistant", "messages": [{"role": "user", "content": "hi"}], **body})


def chat_cases() -> Iterator[Any]:
    path = "/v1/chat/completions"

    def case(body: bytes | None, status: int, says: str = "") -> Case:
        return Case(body, status=status, path=path, says=says)

    yield "chat_malformed_json", case(b'{"model": "assistant", "messages": [', 400, "JSON")
    yield "chat_empty_body", case(b"", 400)
    yield "chat_invalid_utf8", case(b"\xff\xfe\x00\x81", 400)
    yield "chat_invalid_utf8_in_string", case(chat().replace(b'"hi"', b'"\xc3\x28"'), 400)
    yield "chat_nested_100000_arrays", case(DEEP, 400)
    yield "chat_array_body", case(dumps([json.loads(chat())]), 400, "object")
    yield "chat_scalar_body", case(b"7", 400)
    yield "chat_unknown_model", case(chat(model="ghost"), 404, "ghost")
    yield (
        "chat_model_missing",
        case(dumps({"messages": [{"role": "user", "content": "x"}]}), 400, "model"),
    )
    yield "chat_model_number", case(chat(model=5), 400, "model")
    yield "chat_messages_missing", case(dumps({"model": "assistant"}), 400, "messages")
    yield "chat_messages_empty", case(chat(messages=[]), 400, "messages")
    yield "chat_messages_string", case(chat(messages="hi"), 400, "messages")
    yield "chat_message_string", case(chat(messages=["hi"]), 400, "messages[0]")
    yield "chat_role_unknown", case(chat(messages=[{"role": "wizard", "content": "x"}]), 400)
    yield "chat_content_number", case(chat(messages=[{"role": "user", "content": 5}]), 400)
    yield "chat_content_object", case(chat(messages=[{"role": "user", "content": {}}]), 400)
    yield (
        "chat_last_not_user",
        case(
            chat(
                messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
            ),
            400,
        ),
    )
    yield "chat_empty_content", case(chat(messages=[{"role": "user", "content": ""}]), 400)
    yield "chat_blank_content", case(chat(messages=[{"role": "user", "content": "  "}]), 400)
    yield "chat_no_content", case(chat(messages=[{"role": "user"}]), 400)
    yield (
        "chat_over_long",
        case(
            chat(messages=[{"role": "user", "content": "x" * (MAX_CHARS + 1)}]),
            400,
            "server.max_message_chars",
        ),
    )
    yield "chat_huge_body", case(b"x" * (MAX_BODY + 1), 413)
    for name, text in (("number", 5), ("null", None), ("list", ["a"])):
        yield pytest.param(
            case(
                chat(messages=[{"role": "user", "content": [{"type": "text", "text": text}]}]), 400
            ),
            id=f"chat_content_part_text_{name}",
        )


def _params(cases: Iterator[Any]) -> list[Any]:
    """``(id, case)`` pairs and ready-made ``pytest.param`` objects as parameters."""
    return [item if hasattr(item, "marks") else pytest.param(item[1], id=item[0]) for item in cases]


def _request(client: httpx.Client, server: Server, case: Case, request_id: str) -> httpx.Response:
    headers = {"X-Request-ID": request_id, **case.headers}
    if case.version:
        headers["A2A-Version"] = case.version
    if case.body is not None:
        headers["Content-Type"] = "application/json"
    return client.request(case.method, server.url + case.path, content=case.body, headers=headers)


def _check(client: httpx.Client, server: Server, case: Case, request_id: str) -> None:
    response = _request(client, server, case, request_id)
    text = response.text
    assert response.status_code < 500, text[:500]
    assert "Traceback" not in text and 'File "' not in text
    assert response.status_code == case.status, text[:500]
    body = response.json()
    if case.code is not None:
        assert body["jsonrpc"] == "2.0" and "result" not in body, body
        assert body["error"]["code"] == case.code, body
        message = body["error"]["message"]
    else:
        message = body["error"]["message"]
    assert isinstance(message, str) and message and len(message) < 500, body
    assert case.says.lower() in message.lower(), message
    errors = [
        r
        for r in json_logs(server)
        if r.get("request_id") == request_id and r["level"] in ("ERROR", "CRITICAL")
    ]
    assert not errors, errors


@pytest.mark.parametrize("case", _params(a2a_cases()))
def test_a2a_bad_input(
    client: httpx.Client, server: Server, case: Case, request: pytest.FixtureRequest
) -> None:
    _check(client, server, case, "bad-" + request.node.callspec.id)


@pytest.mark.parametrize("case", _params(chat_cases()))
def test_chat_bad_input(
    client: httpx.Client, server: Server, case: Case, request: pytest.FixtureRequest
) -> None:
    _check(client, server, case, "bad-" + request.node.callspec.id)


def test_huge_chunked_body_is_refused(client: httpx.Client, server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"[" * 4096

    headers = {"Content-Type": "application/json"}
    response = client.post(server.url + "/", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == 413


def test_request_id_survives_an_error(client: httpx.Client, server: Server) -> None:
    headers = {"X-Request-ID": "keep-me-1", "Content-Type": "application/json"}
    response = client.post(server.url + "/", content=b"{", headers=headers)
    assert response.headers["X-Request-ID"] == "keep-me-1"
    assert response.json()["id"] is None


@pytest.mark.parametrize("version", [None, "1.0"])
def test_limits_are_inclusive_and_the_server_still_works(
    server: Server, version: str | None
) -> None:
    """After the whole table: a message of exactly ``max_message_chars`` is served."""
    text = "w" * MAX_CHARS
    body = v1(with_parts([{"text": text}], False)) if version else v03(with_parts([{"text": text}]))
    headers = {"A2A-Version": version} if version else {}
    response = httpx.post(server.url + "/", json=body, headers=headers, timeout=30)
    assert response.status_code == 200
    result = response.json()["result"]
    status = result["task"]["status"] if version else result["status"]
    assert status["state"] in ("completed", "TASK_STATE_COMPLETED")
    assert server.proc.poll() is None
    assert httpx.get(server.url + "/health/live").status_code == 200
