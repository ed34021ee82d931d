"""``hector ops-kit --namespace``: the kit for a custom metric namespace/subsystem reads
only series such a server emits, and its rules and alert unit tests pass in promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Server, hector, rpc, start_server, v03_message
from tests.ops_kit import metric_names

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).is_file(),
    reason="promtool is not installed (apt-get install prometheus; .ci/run does)",
)
PREFIX = "acme_agents_"


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kit")
    result = hector("ops-kit", "--namespace", "acme", "--subsystem", "agents", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _walk(node: Any, key: str) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, str):
                yield v
            else:
                yield from _walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def _exprs(kit: Path) -> tuple[list[str], set[str]]:
    """Every PromQL expression of the kit's dashboards and rules, and the recorded names."""
    exprs: list[str] = []
    for board in sorted((kit / "grafana/dashboards").glob("*.json")):
        data = json.loads(board.read_text(encoding="utf-8"))
        exprs += _walk(data, "expr")
        exprs += [
            re.sub(r"^label_values\((.+),\s*\w+\)$", r"\1", q)
            for q in _walk(data.get("templating", {}), "query")
        ]
    recorded: set[str] = set()
    for name in ("recording_rules.yml", "alerts.yml"):
        rules = yaml.safe_load((kit / "prometheus" / name).read_text(encoding="utf-8"))
        for group in rules["groups"]:
            for rule in group["rules"]:
                exprs.append(rule["expr"])
                recorded.update([rule["record"]] if "record" in rule else [])
    return exprs, recorded


def _emitted(server: Server) -> set[str]:
    """Every series name the server's scrape can have (histograms' three series)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    names = set()
    for kind_line in re.findall(r"^# TYPE (\S+) (\w+)", text, re.M):
        name, kind = kind_line
        names |= (
            {f"{name}_bucket", f"{name}_count", f"{name}_sum"} if kind == "histogram" else set()
        )
        names.add(name if kind != "counter" or name.endswith("_total") else f"{name}_total")
    return names


def test_the_kit_reads_only_series_a_custom_namespace_server_emits(
    kit: Path, tmp_path: Path
) -> None:
    config = tmp_path / "acme.yaml"
    config.write_text(
        "agents:\n  assistant:\n    tools: [calculator]\n"
        "observability:\n  metrics: {enabled: true, namespace: acme, subsystem: agents}\n"
    )
    server = start_server(tmp_path, "-c", str(config))
    try:
        rpc(server.url + "/", "message/send", v03_message("hi"))
        emitted = _emitted(server)
    finally:
        server.stop()
    exprs, recorded = _exprs(kit)
    read = {name for expr in exprs for name in metric_names(expr)}
    assert not {n for n in read if n.startswith("hector_") or ":hector_" in n}
    ours = {n for n in read if n.startswith(PREFIX)}
    assert ours, "the kit names no acme_agents_ series"
    assert ours <= emitted, sorted(ours - emitted)
    assert all(PREFIX in name for name in recorded)


@needs_promtool
def test_promtool_checks_and_unit_tests_pass_for_the_custom_kit(kit: Path) -> None:
    prometheus = kit / "prometheus"
    checks = [
        ["check", "config", str(prometheus / "prometheus.yml")],
        ["test", "rules", str(prometheus / "alerts_test.yml")],
    ]
    for args in checks:
        result = subprocess.run(
            [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_a_bad_namespace_is_a_one_line_error(tmp_path: Path) -> None:
    result = hector("ops-kit", "--namespace", "1bad", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "--namespace" in result.stderr and "Traceback" not in result.stderr


@needs_promtool
def test_rules_and_alerts_keep_the_config_const_labels(tmp_path: Path) -> None:
    """``ops-kit -c`` takes the config's const labels: an alert fires once per environment
    (before, ``sum by (job, agent)`` merged prod and staging into one alert)."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "observability:\n  metrics:\n    enabled: true\n    namespace: acme\n"
        "    const_labels: {environment: prod, region: eu}\n"
    )
    out = tmp_path / "kit"
    result = hector("ops-kit", "-c", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    prometheus = out / "prometheus"
    for name in ("recording_rules.yml", "alerts.yml"):
        text = (prometheus / name).read_text(encoding="utf-8")
        clauses = re.findall(r"\bby \(([^)]*)\)", text)
        assert clauses and all(c.startswith("environment, region, ") for c in clauses)
    series = 'acme_llm_tokens_total{{job="hector", environment="{env}", region="eu", agent="a"}}'
    case = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": series.format(env=env), "values": "0+20000x90"}
                    for env in ("prod", "staging")
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "80m",
                        "alertname": "HectorHighTokenUsage",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "job": "hector",
                                    "agent": "a",
                                    "environment": env,
                                    "region": "eu",
                                },
                                "exp_annotations": {
                                    "summary": "hector agent a used more than 1M tokens in an hour",
                                    "description": "Agent a used 1.2M tokens (prompt + completion)"
                                    " in the last hour.",
                                },
                            }
                            for env in ("prod", "staging")
                        ],
                    }
                ],
            }
        ],
    }
    (prometheus / "labels_test.yml").write_text(yaml.safe_dump(case), encoding="utf-8")
    for args in (["test", "rules", "labels_test.yml"], ["test", "rules", "alerts_test.yml"]):
        run = subprocess.run(
            [PROMTOOL, *args], cwd=prometheus, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_a_bad_keep_label_is_a_one_line_error(tmp_path: Path) -> None:
    result = hector("ops-kit", "--keep-label", "9x", "--out", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --keep-label: '9x' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
    ]
