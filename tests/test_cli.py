"""The ``hector`` command's smaller subcommands and its error handling."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import httpx

from hector_py import __version__
from tests.conftest import Server, clean_env, hector


def test_version() -> None:
    result = hector("version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"hector-py {__version__}")


def test_info_lists_agents_with_model_provider_and_tools(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "llms:\n  fast:\n    provider: demo\n    model: demo-fast\n"
        "agents:\n  helper:\n    llm: fast\n    tools: [calculator]\n  other:\n    llm: fast\n"
    )
    result = hector("info", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "helper" in result.stdout and "other" in result.stdout
    assert "demo-fast" in result.stdout and "calculator" in result.stdout
    one = hector("info", "helper", "-c", str(path))
    assert "helper" in one.stdout and "other" not in one.stdout
    missing = hector("info", "ghost", "-c", str(path))
    assert missing.returncode == 1
    assert "agent 'ghost' not found" in missing.stderr


def test_info_zero_config_uses_demo() -> None:
    result = hector("info")
    assert result.returncode == 0
    assert "assistant" in result.stdout and "demo" in result.stdout


def test_zero_config_picks_provider_from_env_key_and_never_prints_it(serve: Any) -> None:
    server: Server = serve(env=clean_env(ANTHROPIC_API_KEY="sk-ant-test-secret"))
    log = "\n".join(server.log_lines())
    assert "anthropic/claude-sonnet-4-0" in log
    assert "demo model" not in log
    assert "sk-ant-test-secret" not in log


def test_serve_model_name_infers_provider(serve: Any) -> None:
    server: Server = serve("--model", "gpt-4o-mini")
    log = "\n".join(server.log_lines())
    assert "openai/gpt-4o-mini" in log
    # no key anywhere: one warning at start-up rather than a 502 at the first request
    assert log.count("no API key for openai/gpt-4o-mini") == 1
    assert "OPENAI_API_KEY" in log
    keyed: Server = serve("--model", "gpt-4o-mini", env=clean_env(OPENAI_API_KEY="sk-x"))
    assert "no API key" not in "\n".join(keyed.log_lines())
    unknown = hector("serve", "--model", "mystery-model")
    assert unknown.returncode == 1
    assert "--model: cannot tell the provider of 'mystery-model'; pass --provider" in unknown.stderr


def test_serve_bad_config_exits_1_with_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  prot: 1\n")
    result = hector("serve", "-c", str(path))
    assert result.returncode == 1
    expected = f"error: server.prot: unknown key; did you mean `port`? ({path}:2)"
    assert result.stderr.strip() == expected


def test_serve_port_in_use_is_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = hector("serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_shows_defaults_and_version_flags() -> None:
    help_text = " ".join(hector("serve", "-h", env=clean_env(COLUMNS="200")).stdout.split())
    for default in ("default: (0.0.0.0)", "default: (8080)", "default: (info)"):
        assert default in help_text, default
    assert "auth is off unless configured" in help_text
    for flag in ("--version", "-V"):
        result = hector(flag)
        assert result.returncode == 0
        assert result.stdout.startswith(f"hector-py {__version__}")


def test_call_prints_the_failure_reason_to_stderr_in_both_modes(serve: Any, tmp_path: Path) -> None:
    with socket.socket() as gone:  # a port nothing listens on once closed
        gone.bind(("127.0.0.1", 0))
        dead = gone.getsockname()[1]
    path = tmp_path / "c.yaml"
    path.write_text(
        "llms:\n  default:\n    provider: openai\n    model: gpt-fake\n"
        f"    base_url: http://127.0.0.1:{dead}/v1\n    max_retries: 0\n"
    )
    server: Server = serve("-c", str(path))
    for mode in ("--stream", "--no-stream"):
        result = hector("call", "--url", server.url, mode, "hello")
        assert result.returncode == 1, (mode, result.stderr)
        reason = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(reason) == 1 and "openai" in reason[0], (mode, result.stderr)
        assert "failed" in result.stderr
        assert "openai" not in result.stdout, mode


def test_demo_model_answers_plain_requests_with_the_offered_tool(serve: Any) -> None:
    server: Server = serve("-c", str(Path(__file__).parent.parent / "configs" / "example.yaml"))
    calc = hector("call", "--url", server.url, "calculate 2+2")
    assert calc.returncode == 0, calc.stderr
    assert "→ calculator" in calc.stderr and '"expression": "2+2"' in calc.stderr
    assert "The tool returned: 4" in calc.stdout
    clock = hector("call", "--url", server.url, "--no-stream", "what time is it?")
    assert clock.returncode == 0, clock.stderr
    assert re.search(r"The tool returned: \d{4}-\d\d-\d\dT\d\d:\d\d", clock.stdout)
    plain = hector("call", "--url", server.url, "--no-stream", "hello")
    assert 'You said: "hello"' in plain.stdout


def test_first_mistakes_get_answers_that_say_what_to_do(serve: Any) -> None:
    server: Server = serve()
    missing = httpx.post(
        server.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert missing.status_code == 400
    error = missing.json()["error"]
    assert error["param"] == "model" and error["code"] == "missing_required_parameter"
    assert "assistant" in error["message"]
    off = httpx.get(server.url + "/metrics", timeout=5)
    assert off.status_code == 404 and "--metrics" in off.json()["error"]


def test_tracing_endpoint_stdout_prints_spans_without_a_collector(serve: Any) -> None:
    server: Server = serve("--tracing-endpoint", "stdout", "--log-format", "json")
    reply = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "assistant", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert reply.status_code == 200
    assert server.stop() == 0
    lines = [json.loads(line) for line in server.log_lines()]
    names = {line["name"] for line in lines if "context" in line and "name" in line}
    assert {"POST /v1/chat/completions", "invoke_agent assistant", "chat demo"} <= names


def test_bool_flags_take_an_optional_value(serve: Any) -> None:
    on = serve("--observe", "false", "--metrics=true")
    assert httpx.get(f"{on.url}/metrics").status_code == 200
    off = serve("--metrics", "off")
    assert httpx.get(f"{off.url}/metrics").status_code == 404
    bad = hector("serve", "--observe", "maybe")
    assert bad.returncode == 2
