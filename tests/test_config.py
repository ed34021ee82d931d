"""Config loading through the public CLI: validate, print-config, env expansion, precedence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import clean_env, hector

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "hector.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_are_valid(name: str) -> None:
    result = hector("validate", str(REPO / "configs" / name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_three_problems_three_lines_with_path_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "server:\n"
            "  port: eighty\n"  # line 2: wrong type
            "agents:\n"
            "  assistant:\n"
            "    instruction: hi\n"
            "    instrucion: typo\n"  # line 6: unknown key
            "llms:\n"
            "  default:\n"
            "    api_key: ${MISSING_VAR_FOR_TEST}\n"  # line 9: missing env var
        ),
    )
    result = hector("validate", str(path))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("server.port: ") and lines[0].endswith(f"({path}:2)")
    assert (
        lines[1]
        == f"agents.assistant.instrucion: unknown key; did you mean `instruction`? ({path}:6)"
    )
    assert lines[2].startswith("llms.default.api_key: ") and "MISSING_VAR_FOR_TEST" in lines[2]
    assert lines[2].endswith(f"({path}:9)")
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_json_format_lists_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "observability:\n  tracing:\n    sampling_rate: 2\n")
    result = hector("validate", str(path), "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    [problem] = report["problems"]
    assert problem["path"] == "observability.tracing.sampling_rate"
    assert problem["where"] == f"{path}:3"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 1\n   host: [oops\n")
    result = hector("validate", str(path))
    assert result.returncode == 1
    assert f"{path}:3" in result.stdout
    assert "invalid YAML" in result.stdout


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    result = hector("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert len(result.stdout.strip().splitlines()) == 1
    assert "cannot read" in result.stdout


def test_unknown_llm_reference(tmp_path: Path) -> None:
    path = write(tmp_path, "agents:\n  a:\n    llm: nowhere\n")
    result = hector("validate", str(path))
    assert result.returncode == 1
    assert (
        result.stdout.strip() == f"agents.a.llm: unknown llm 'nowhere' (known: default) ({path}:3)"
    )


def test_env_expansion_forms_and_secret_masking(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "llms:\n"
            "  default:\n"
            "    api_key: ${SECRET_FOR_TEST}\n"
            "    base_url: http://${HOST_FOR_TEST:-fallback.local}:${PORT_UNSET_FOR_TEST:-9}/v1\n"
            "agents:\n"
            "  assistant:\n"
            "    instruction: costs $$5 for ${WHO_FOR_TEST}\n"
            "observability:\n"
            "  tracing:\n"
            "    headers:\n"
            "      Authorization: Bearer ${SECRET_FOR_TEST}\n"
        ),
    )
    env = clean_env(SECRET_FOR_TEST="sk-very-secret-123", WHO_FOR_TEST="you")
    result = hector("validate", str(path), "--print-config", "--format", "json", env=env)
    assert result.returncode == 0, result.stdout
    assert "sk-very-secret-123" not in result.stdout + result.stderr
    config = json.loads(result.stdout)["config"]
    assert config["llms"]["default"]["base_url"] == "http://fallback.local:9/v1"
    assert config["agents"]["assistant"]["instruction"] == "costs $5 for you"
    assert config["llms"]["default"]["api_key"] == "**********"
    assert config["observability"]["tracing"]["headers"]["Authorization"] == "**********"
    # defaults are filled in
    assert config["observability"]["metrics"]["namespace"] == "hector"


def test_env_overrides_file_and_dotenv_never_overrides_env(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 1111\n  host: ${BIND_FOR_TEST}\n")
    (tmp_path / ".env").write_text("HECTOR_SERVER__PORT=3333\nBIND_FOR_TEST=10.0.0.1\n")
    env = clean_env(HECTOR_SERVER__PORT="2222")
    result = hector(
        "validate", str(path), "--print-config", "--format", "json", cwd=tmp_path, env=env
    )
    config = json.loads(result.stdout)["config"]
    assert config["server"]["port"] == 2222  # env beats file and .env
    assert config["server"]["host"] == "10.0.0.1"  # .env fills what the env lacks


def test_bad_env_override_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 1111\n")
    result = hector("validate", str(path), env=clean_env(HECTOR_SERVER__PORT="abc"))
    assert result.returncode == 1
    assert result.stdout.strip().startswith("server.port: ")
    assert result.stdout.strip().endswith("(env HECTOR_SERVER__PORT)")


def test_schema_is_json_schema_of_the_config() -> None:
    result = hector("schema")
    schema = json.loads(result.stdout)
    assert set(schema["properties"]) >= {
        "server",
        "llms",
        "agents",
        "tools",
        "storage",
        "observability",
        "logging",
    }
    assert schema["additionalProperties"] is False


def test_validate_reports_unknown_tools_like_serve_would(tmp_path: Path) -> None:
    path = write(tmp_path, "agents:\n  helper:\n    tools: [calculator, teleport]\n")
    result = hector("validate", str(path))
    assert result.returncode == 1
    assert result.stdout.startswith("agents.helper.tools[1]: ")
    assert "teleport" in result.stdout


def test_validate_rejects_const_labels_that_would_break_scrapes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "observability:\n  metrics:\n    enabled: true\n    const_labels: {le: x, agent: y}\n",
    )
    result = hector("validate", str(path))
    assert result.returncode == 1
    assert "observability.metrics.const_labels.le" in result.stdout
    assert "observability.metrics.const_labels.agent" in result.stdout


def test_print_config_masks_credentials_embedded_in_urls(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "llms:\n  default:\n    provider: openai\n    model: gpt-4o\n"
        "    base_url: http://bob:pw-in-url-123@127.0.0.1:9/v1?api-key=q-secret-456&region=eu\n"
    )
    for fmt in ("text", "json"):
        result = hector("validate", str(path), "--print-config", "--format", fmt)
        assert result.returncode == 0, result.stderr
        assert "pw-in-url-123" not in result.stdout and "q-secret-456" not in result.stdout
        assert "bob:**********@127.0.0.1:9/v1" in result.stdout, result.stdout
        assert "region=eu" in result.stdout


def test_config_errors_never_echo_a_value_from_an_env_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "llms:\n  default:\n    provider: ${PROV}\n    model: demo\n"
        "agents:\n  assistant:\n    tools: ['${TOOL_NAME}']\n"
    )
    env = clean_env(PROV="leaky-provider-123", TOOL_NAME="tool-secret-456")
    result = hector("validate", str(path), env=env)
    assert result.returncode == 1
    assert "llms.default.provider: unknown provider '**********'" in result.stdout
    assert "leaky-provider-123" not in result.stdout + result.stderr
    assert "tool-secret-456" not in result.stdout + result.stderr


def test_build_time_errors_mask_env_values_and_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("agents:\n  assistant:\n    tools: ['${TOOL_NAME}']\n")
    result = hector("validate", str(path), env=clean_env(TOOL_NAME="tool-secret-456"))
    assert result.returncode == 1
    assert "tool-secret-456" not in result.stdout + result.stderr
    assert "unknown tool '**********'" in result.stdout and f"({path})" in result.stdout


def test_file_problems_name_the_file_and_typos_get_a_suggestion(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    result = hector("validate", str(missing))
    assert result.returncode == 1
    assert f"{missing}: cannot read: No such file or directory" in result.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("server: [\n")
    result = hector("validate", str(broken))
    assert result.returncode == 1
    assert f"{broken}:2: invalid YAML:" in result.stdout
    assert "<file>" not in result.stdout
    typo = tmp_path / "typo.yaml"
    typo.write_text("server:\n  prot: 1\n  zzzzzz: 2\n")
    result = hector("validate", str(typo))
    assert f"server.prot: unknown key; did you mean `port`? ({typo}:2)" in result.stdout
    assert f"server.zzzzzz: unknown key ({typo}:3)" in result.stdout
