"""Drive a real Arize Phoenix and a real ``hector serve`` inside a network namespace with only
loopback up (Phoenix's gRPC server binds ``[::]``): run by ``tests/test_phoenix.py`` as

    unshare -n sh -c 'ip link set lo up && exec python -m tests.phoenix_driver PHOENIX WORKDIR'

``PHOENIX`` is the ``phoenix`` command of a venv that has ``arize-phoenix``. For each OTLP
protocol (gRPC and HTTP) the driver starts hector with only ``OTEL_EXPORTER_OTLP_*``
variables pointing at Phoenix, makes one chat completion through the fake OpenAI
upstream, and prints one JSON line: the protocol and the spans Phoenix's REST API returns
for that run's trace (name, span kind, attributes)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import clean_env, start_fake_llm, start_server

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with_value = check()
        if with_value:
            return with_value
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def spans_of(ui: str, trace_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{ui}/v1/projects/default/spans", params={"trace_id": trace_id, "limit": 100}, timeout=5
    )
    return response.json().get("data", []) if response.status_code == 200 else []


def run(phoenix: str, workdir: Path) -> None:
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(http_port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_WORKING_DIR": str(workdir / "phoenix"),
    }
    log = (workdir / "phoenix.log").open("wb")
    server = subprocess.Popen([phoenix, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    fake = start_fake_llm("openai")
    ui = f"http://127.0.0.1:{http_port}"
    try:
        wait_until(lambda: healthy(f"{ui}/healthz"), "Phoenix")
        config = workdir / "hector.yaml"
        llm = f'{{provider: openai, model: gpt-fake, base_url: "{fake.base_url}"}}'
        config.write_text(f"llms:\n  default: {llm}\n")
        for protocol, endpoint in (
            ("grpc", f"http://127.0.0.1:{grpc_port}"),
            ("http/protobuf", f"{ui}/"),
        ):
            hector_env = clean_env(
                PYTHONPATH=str(ROOT),
                OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true",
            )
            hector = start_server(workdir, "-c", str(config), "--observe", env=hector_env)
            trace_id = secrets.token_hex(16)  # the caller's sampled trace: ours continues it
            try:
                answer = httpx.post(
                    f"{hector.url}/v1/chat/completions",
                    json={"model": "assistant", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
                    timeout=10,
                )
            finally:
                hector.stop()  # flushes its spans
            spans = wait_until(lambda: spans_of(ui, trace_id), "spans")  # noqa: B023
            time.sleep(1)  # the rest of the batch
            spans = spans_of(ui, trace_id)
            print(json.dumps({"protocol": protocol, "answer": answer.json(), "spans": spans}))
    finally:
        fake.stop()
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    run(sys.argv[1], Path(sys.argv[2]))
