"""The ops kit, proven: dashboards, rules, alerts, compose, k8s and the Dockerfile.

The live part starts a real Prometheus (Debian's ``prometheus``) scraping a real
``hector serve`` while a load loop makes traffic (tool calls that work and fail, LLM
retries, a provider that is down, streams, 404s, a bad API key, admission 503s, webhook
triggers, notifications to a local receiver), then evaluates through Prometheus's HTTP
API every dashboard query, template variable, recording rule and alert. The rest checks
the files with the tools their consumers use: promtool, tsc against ``@grafana/schema``.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import hashlib
import hmac
import json
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import (
    FakeLLM,
    Server,
    clean_env,
    hector,
    start_fake_llm,
    start_server,
    v03_message,
)
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.ops_kit import (
    ALERTS_TEST,
    COMPOSE,
    DASHBOARDS_DIR,
    K8S_DIR,
    PROMETHEUS_RULE,
    PROMETHEUS_YML,
    REPO,
    alerting_rules,
    boolify,
    dashboards,
    data_panels,
    grouping_labels,
    load_yaml,
    metric_names,
    panel_queries,
    prometheus_rule,
    recording_rules,
    rule_files,
    selector_labels,
    substitute,
    variable_queries,
)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_prometheus = pytest.mark.skipif(
    not Path(PROMETHEUS).is_file(),
    reason="Prometheus is not installed (apt-get install prometheus; .ci/run does)",
)
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).is_file(),
    reason="promtool is not installed (apt-get install prometheus; .ci/run does)",
)
# Where npm installs the schema and the compiler (.ci/run installs the same pins there).
SCHEMA_DIR = Path(
    os.environ.get("HECTOR_GRAFANA_SCHEMA_DIR", Path.home() / ".cache/hector-py/grafana-schema")
)
NPM_PACKAGES = ("@grafana/schema@13", "typescript@5")
DOCKERFILE = REPO / "Dockerfile"
JOB = "hector"  # the scrape job the alerts select on

# --- dashboards, statically --------------------------------------------------------------


def test_dashboards_have_uid_templating_and_panels_with_datasource_and_targets() -> None:
    boards = dashboards()
    assert set(boards) == {"hector-overview", "hector-llm", "hector-tools"}
    uids = [board.get("uid") for board in boards.values()]
    assert all(uids) and len(set(uids)) == len(uids), uids
    for stem, board in boards.items():
        variables = {var["name"]: var for var in board["templating"]["list"]}
        assert {"datasource", "instance", "agent"} <= set(variables), stem
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for var in variables.values():
            if var["type"] == "query":
                assert var["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                assert var["includeAll"] and var["allValue"] == ".*", (stem, var["name"])
        ids = [panel["id"] for panel in board["panels"]]
        assert len(set(ids)) == len(ids), stem
        panels = list(data_panels(board))
        assert len(panels) >= 10, stem
        for panel in panels:
            where = f"{stem} / {panel.get('title')}"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], where
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, where
            refs = [target["refId"] for target in panel["targets"]]
            assert len(set(refs)) == len(refs), where
            for target in panel["targets"]:
                assert target["expr"].strip(), where
                assert target["datasource"] == panel["datasource"], where
                reads_buckets = re.search(r"histogram_quantile\(.*_bucket\{", target["expr"])
                if reads_buckets and panel["type"] == "timeseries":  # exemplars link to traces
                    assert target.get("exemplar") is True, where


def _tsc() -> Path:
    """The TypeScript compiler next to ``@grafana/schema``, installed by npm if missing."""
    tsc = SCHEMA_DIR / "node_modules" / ".bin" / "tsc"
    schema = SCHEMA_DIR / "node_modules" / "@grafana" / "schema" / "package.json"
    if tsc.exists() and schema.exists() and shutil.which("node"):
        return tsc
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot type-check dashboards with @grafana/schema")
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(SCHEMA_DIR), *NPM_PACKAGES],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return tsc


def test_dashboards_typecheck_against_grafana_schema() -> None:
    """``const d: Dashboard = <json>`` under ``tsc --noEmit --strict``, per dashboard; a
    broken dashboard in the same run proves the check bites."""
    tsc = _tsc()
    broken = {
        "uid": "broken",
        "schemaVersion": "39",
        "panels": [{"type": "timeseries", "gridPos": {"h": "8", "w": 12, "x": 0, "y": 0}}],
        "templating": {"list": [{"name": "agent", "type": "not-a-variable-type"}]},
    }
    sources = {stem: json.dumps(board, indent=2) for stem, board in dashboards().items()}
    sources["negative_control"] = json.dumps(broken, indent=2)
    # Inside SCHEMA_DIR so that module resolution finds its node_modules.
    workdir = Path(tempfile.mkdtemp(prefix="dashboards-", dir=SCHEMA_DIR))
    try:
        files = {}
        for stem, body in sources.items():
            path = workdir / f"{stem.replace('-', '_')}.ts"
            path.write_text(
                "import type { Dashboard } from '@grafana/schema';\n"
                f"export const dashboard: Dashboard = {body};\n",
                encoding="utf-8",
            )
            files[stem] = path
        result = subprocess.run(
            [
                str(tsc),
                "--noEmit",
                "--strict",
                "--skipLibCheck",  # our files are checked in full; the library's own are not
                "--target",
                "es2020",
                "--module",
                "esnext",
                "--moduleResolution",
                "bundler",
                *map(str, files.values()),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    output = result.stdout + result.stderr
    errors = re.findall(r"^(\S+?\.ts)\(\d+,\d+\): error (TS\d+: .*)$", output, re.MULTILINE)
    by_file: dict[str, list[str]] = {}
    for path, message in errors:
        by_file.setdefault(Path(path).stem, []).append(message)
    assert not {k: v for k, v in by_file.items() if k != "negative_control"}, output
    assert len(by_file.get("negative_control", [])) >= 3, output  # 2 strings, 1 bad type
    assert "Cannot find module" not in output, output


# --- Prometheus config, rules and alert unit tests ----------------------------------------


@needs_promtool
def test_promtool_checks_config_and_rules() -> None:
    config = subprocess.run(
        [PROMTOOL, "check", "config", str(PROMETHEUS_YML)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert f"SUCCESS: {len(rule_files())} rule files found" in config.stdout
    rules = subprocess.run(
        [PROMTOOL, "check", "rules", *map(str, rule_files())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    found = sum(int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", rules.stdout))
    assert found == len(recording_rules()) + len(alerting_rules())


@needs_promtool
def test_promtool_alert_unit_tests_pass() -> None:
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(ALERTS_TEST)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _alert_cases() -> dict[str, dict[str, list[list[Any]]]]:
    """alert -> {"fires": [expected alerts...], "quiet": [...]} over every eval of the tests."""
    cases: dict[str, dict[str, list[list[Any]]]] = {}
    for test in load_yaml(ALERTS_TEST)["tests"]:
        for check in test.get("alert_rule_test", []):
            kind = "fires" if check.get("exp_alerts") else "quiet"
            cases.setdefault(check["alertname"], {"fires": [], "quiet": []})[kind].append(
                check.get("exp_alerts") or []
            )
    return cases


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    """Each alert is expected to fire on its bad series while the good series beside it
    stays out of the expected alerts (promtool compares the exact set)."""
    cases = _alert_cases()
    names = [rule["alert"] for rule in alerting_rules()]
    assert len(names) == len(set(names))
    assert set(cases) == set(names)
    for name in names:
        assert cases[name]["fires"], f"{name}: no case where it fires"
        assert cases[name]["quiet"], f"{name}: no case where it stays quiet"
    tests = load_yaml(ALERTS_TEST)["tests"]
    for test in tests:  # the good series sits next to the bad one
        assert len(test["input_series"]) >= 2, test["name"]
    assert load_yaml(ALERTS_TEST)["rule_files"] == [p.name for p in rule_files()]


def test_readme_lists_every_alert_and_dashboard() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Observability stack\n", 1)[1].split("\n## ", 1)[0]
    missing = [rule["alert"] for rule in alerting_rules() if f"`{rule['alert']}`" not in section]
    missing += [
        board["uid"] for board in dashboards().values() if f"`{board['uid']}`" not in section
    ]
    assert not missing, f"README's Observability stack section does not mention {missing}"


def _write_mutant(workdir: Path, key: str, mutant: dict[str, Any], tests: list[Any]) -> str:
    """A test file running ``tests`` against the real rules with one alert swapped."""
    document = load_yaml(rule_files()[-1])
    for group in document["groups"]:
        group["rules"] = [
            mutant if rule.get("alert") == mutant["alert"] else rule for rule in group["rules"]
        ]
    (workdir / f"alerts-{key}.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    # Recording rules only where the tested alerts read recorded series (they cost time).
    tested = {check["alertname"] for test in tests for check in test["alert_rule_test"]}
    exprs = [rule["expr"] for rule in alerting_rules() if rule["alert"] in tested]
    records = any(":" in name for expr in exprs for name in metric_names(expr))
    names = [path.name for path in rule_files()[:-1] if records]
    names.append(f"alerts-{key}.yml")
    suite = {**load_yaml(ALERTS_TEST), "rule_files": names, "tests": tests}
    (workdir / f"test-{key}.yml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return f"test-{key}.yml"


def _promtool_results(workdir: Path, test_files: list[str]) -> dict[str, bool]:
    """Test file -> passed, from one ``promtool test rules`` run over all of them."""
    result = subprocess.run(
        [PROMTOOL, "test", "rules", *test_files],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    sections = re.split(r"^Unit Testing:\s+", result.stdout + result.stderr, flags=re.MULTILINE)
    verdicts = {}
    for section in sections[1:]:
        name, _, rest = section.partition("\n")
        verdicts[name.strip()] = rest.lstrip().startswith("SUCCESS")
    return verdicts


@needs_promtool
def test_alert_unit_tests_catch_an_alert_that_never_fires_or_ignores_its_threshold(
    tmp_path: Path,
) -> None:
    """Mutation check, per alert: with its expression replaced by one that never fires, or
    by its threshold-less (``bool``) form that also fires for the good series, the alert's
    unit tests must fail (unchanged, they pass: test_promtool_alert_unit_tests_pass)."""
    assert rule_files()[-1].name == "alerts.yml"
    for path in rule_files()[:-1]:
        shutil.copy(path, tmp_path / path.name)
    suite = load_yaml(ALERTS_TEST)["tests"]
    mutants: dict[str, str] = {}  # test file -> what was broken
    for rule in alerting_rules():
        name = rule["alert"]
        tests = [
            t for t in suite if any(c["alertname"] == name for c in t.get("alert_rule_test", []))
        ]
        unthresholded = boolify(rule["expr"])
        assert unthresholded != rule["expr"], name
        for kind, expr in (("never-fires", "vector(1) > 2"), ("no-threshold", unthresholded)):
            test_file = _write_mutant(tmp_path, f"{name}-{kind}", {**rule, "expr": expr}, tests)
            mutants[test_file] = f"{name} ({kind})"
    files = sorted(mutants)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        halves = pool.map(lambda part: _promtool_results(tmp_path, part), (files[::2], files[1::2]))
        verdicts = {name: ok for half in halves for name, ok in half.items()}
    assert set(verdicts) == set(files), verdicts
    survivors = [mutants[name] for name, passed in verdicts.items() if passed]
    assert not survivors, f"unit tests still pass with a broken alert: {survivors}"


# --- Kubernetes, compose, Dockerfile ---------------------------------------------------------


def _k8s_objects() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        for path in sorted(K8S_DIR.glob("*.yaml"))
    }


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [obj for obj in objects if obj["kind"] == kind]
    return found


def test_prometheusrule_is_the_rule_files() -> None:
    """configs/k8s/prometheusrule.yaml holds exactly the groups prometheus.yml loads
    (regenerate it with ``python -m tests.ops_kit``)."""
    shipped = load_yaml(PROMETHEUS_RULE)
    assert shipped == prometheus_rule(), "run: python -m tests.ops_kit"


def test_k8s_manifests_parse_and_fit_together(tmp_path: Path) -> None:
    files = _k8s_objects()
    objects = [obj for docs in files.values() for obj in docs]
    for name, docs in files.items():
        assert docs, name
        for obj in docs:
            assert obj.get("apiVersion") and obj.get("kind"), name
            assert obj.get("metadata", {}).get("name"), name
    kustomization = _one(objects, "Kustomization")
    assert sorted(kustomization["resources"]) == sorted(
        name for name in files if name != "kustomization.yaml"
    )
    deployment = _one(objects, "Deployment")
    service = _one(objects, "Service")
    monitor = _one(objects, "ServiceMonitor")
    config_map = _one(objects, "ConfigMap")
    secret = _one(objects, "Secret")
    assert _one(objects, "PrometheusRule")["metadata"]["name"]

    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    [container] = pod["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports, probe
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][bound]), bound
    secret_refs = [ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref]
    assert secret_refs == [secret["metadata"]["name"]]
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == _dockerfile_user().split(":")[0]
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    [config_mount] = [m for m in container["volumeMounts"] if m["mountPath"] == "/app/config.yaml"]
    config_volume = volumes[config_mount["name"]]["configMap"]
    assert config_volume["name"] == config_map["metadata"]["name"]
    assert config_mount["subPath"] in config_map["data"]
    assert container["args"] == ["serve", "-c", "/app/config.yaml"]

    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    budget = _one(objects, "PodDisruptionBudget")
    assert (
        budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    )
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert yaml.safe_load(config_map["data"]["config.yaml"])["storage"]["type"] == "postgres"
    assert "DATABASE_URL" in secret["stringData"]
    [service_port] = service["spec"]["ports"]
    assert service_port["targetPort"] in ports
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"]
    hector_config = yaml.safe_load(config_map["data"][config_mount["subPath"]])
    assert endpoint["path"] == hector_config["observability"]["metrics"]["endpoint"]
    assert hector_config["server"]["port"] == ports[service_port["targetPort"]]
    # The operator names the scrape job after the Service: the alerts select that job.
    assert service["metadata"]["name"] == JOB

    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_map["data"][config_mount["subPath"]])
    env = clean_env(**{k: "sk-test-placeholder" for k in secret["stringData"]})
    result = hector("validate", str(config_file), env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def _compose_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repo path for a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (COMPOSE.parent / source).resolve()
    return mounts


def test_compose_parses_and_mounts_files_that_exist() -> None:
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    assert set(services) == {"hector", "jaeger", "prometheus", "grafana", "postgres"}
    assert "postgres" in services["hector"]["environment"]["DATABASE_URL"]
    published = {
        name: {int(port.split(":")[0]) for port in service.get("ports", [])}
        for name, service in services.items()
    }
    assert {8080} <= published["hector"]
    assert {16686, 4317} <= published["jaeger"]
    assert {9090} <= published["prometheus"]
    assert {3000} <= published["grafana"]
    for name, service in services.items():
        for target, source in _compose_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert REPO in source.parents, f"{name}: {source} is outside the repository"
        for volume in service.get("volumes", []):
            if not volume.startswith((".", "/")):
                assert volume.split(":")[0] in compose["volumes"], (name, volume)
    build = services["hector"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE

    hector_mounts = _compose_mounts(services["hector"])
    assert "/app/config.yaml" in hector_mounts
    env = clean_env(**{k: v for k, v in services["hector"]["environment"].items() if v})
    result = hector("validate", str(hector_mounts["/app/config.yaml"]), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    hector_config = load_yaml(hector_mounts["/app/config.yaml"])
    collector_host, collector_port = services["hector"]["environment"]["OTEL_COLLECTOR"].split(":")
    assert collector_host in services and int(collector_port) in published[collector_host]

    prometheus = services["prometheus"]
    prom_mounts = _compose_mounts(prometheus)
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    assert prom_mounts[config_path] == PROMETHEUS_YML
    for rule_file in rule_files():  # relative to the config file, inside the container
        assert prom_mounts[str(Path(config_path).parent / rule_file.name)] == rule_file
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    [job] = load_yaml(PROMETHEUS_YML)["scrape_configs"]
    assert job["job_name"] == JOB
    assert job["metrics_path"] == hector_config["observability"]["metrics"]["endpoint"]
    [target] = [t for c in job["static_configs"] for t in c["targets"]]
    assert target == f"hector:{hector_config['server']['port']}"

    grafana = services["grafana"]
    graf_mounts = _compose_mounts(grafana)
    provisioning = graf_mounts["/etc/grafana/provisioning"]
    providers = load_yaml(provisioning / "dashboards" / "dashboards.yml")["providers"]
    [provider] = providers
    assert graf_mounts[provider["options"]["path"]] == DASHBOARDS_DIR
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS_DIR / Path(home).relative_to(provider["options"]["path"])).is_file()
    sources = {
        d["uid"]: d
        for d in load_yaml(provisioning / "datasources" / "datasources.yml")["datasources"]
    }
    by_type = {d["type"]: d for d in sources.values()}
    assert set(by_type) == {"prometheus", "jaeger"}
    for kind, service_name in (("prometheus", "prometheus"), ("jaeger", "jaeger")):
        url = httpx.URL(by_type[kind]["url"])
        assert url.host == service_name and url.port in published[service_name], kind
    [destination] = by_type["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["name"] == "trace_id"  # the exemplar label hector writes
    assert sources[destination["datasourceUid"]]["type"] == "jaeger"


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def _dockerfile_user() -> str:
    return [args for instruction, args in _dockerfile() if instruction == "USER"][-1].strip()


def _healthcheck_argv() -> list[str]:
    [check] = [args for instruction, args in _dockerfile() if instruction == "HEALTHCHECK"]
    return list(json.loads(check.split("CMD", 1)[1]))


def test_dockerfile_is_slim_non_root_with_a_urllib_healthcheck() -> None:
    steps = _dockerfile()
    bases = [args.split()[0] for instruction, args in steps if instruction == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases), bases
    assert _dockerfile_user().split(":")[0] not in ("root", "0")
    argv = _healthcheck_argv()
    assert argv[0] == "python" and "urllib" in argv[-1] and "/health/live" in argv[-1]
    assert not any("curl" in args for _, args in steps)  # slim has none
    entrypoint = [json.loads(a) for i, a in steps if i == "ENTRYPOINT"][-1]
    cmd = [json.loads(a) for i, a in steps if i == "CMD"][-1]
    assert [*entrypoint, *cmd] == ["hector", "serve", "-c", "/app/config.yaml"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^hector = "hector_py\.cli:app"$', pyproject, re.MULTILINE)
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for instruction, args in steps:
        if instruction != "COPY" or "--from=" in args:
            continue
        sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), source
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


# --- the live stack: hector serve + fake upstreams + load + Prometheus -----------------------

API_KEY = "ops-kit-key"
WEBHOOK_SECRET = "ops-kit-secret"
HECTOR_CONFIG = """\
server:
  auth: {api_keys: ["${API_KEY}"], tenant_header: X-Tenant}
llms:
  main:
    provider: openai
    model: gpt-4o-mini
    base_url: ${MAIN_URL}
    max_retries: 2
    retry_backoff: 0.01
    pricing: {input_per_million: 0.15, output_per_million: 0.6}
  broken:
    provider: anthropic
    model: claude-down
    base_url: ${BROKEN_URL}
    api_key: test-key
    max_retries: 0
  slow:
    provider: openai
    model: gpt-4o-slow
    base_url: ${SLOW_URL}
guardrails:
  watch:
    input:
      blocked_patterns: {patterns: ['forbidden'], action: warn}
budgets:
  acme: {daily_tokens: 100000000, monthly_tokens: 1000000000}
rate_limits:
  tenants:
    limited: {requests_per_minute: 1}  # its second request of a minute is refused
agents:
  assistant:
    llm: main
    tools: [calculator, current_time, random_number]
    guardrails: [watch]
    notifications: [{url: "${NOTIFY_URL}"}]
    trigger: {type: webhook, secret: "${WEBHOOK_SECRET}"}
  flaky:
    llm: broken
  gated:  # one run at a time, on an upstream slow enough for a second to be refused
    llm: slow
    max_concurrent_runs: 1
default_agent: assistant
observability:
  metrics: {enabled: true}
  tracing: {enabled: true, exporter: stdout, sampling_rate: 1.0}
logging:
  level: info  # the "listening on" banner
"""
# One agent run on the main upstream: a 503 (retried), a tool that works, one that fails,
# another tool, then the answer.
RUN_SCRIPT = [
    {"status": 503},
    {"tool_calls": [["calculator", {"expression": "6*7"}]], "usage": [220, 18]},
    {"tool_calls": [["calculator", {"expression": "1/0"}]], "usage": [250, 20]},
    {"tool_calls": [["random_number", {"min": 1, "max": 6}]], "usage": [280, 16]},
    {"text": "All done.", "usage": [300, 40]},
]
CONCRETE = {
    "agent": "assistant",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "tool": "calculator",
}
LOAD_MAX_S = 60.0  # the load loop's hard bound; it stops once Prometheus has the data
WARMUP_TIMEOUT_S = 30.0
SCRAPE_INTERVAL = "500ms"
MIN_SCRAPES = 6  # with load running, before the evaluation time


@dataclass
class Load:
    """The traffic: a bounded loop in a thread, one iteration of every kind of request."""

    hector_url: str
    main: FakeLLM
    slow: FakeLLM
    stop: threading.Event = field(default_factory=threading.Event)
    iterations: int = 0
    statuses: dict[str, set[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def _record(self, what: str, response: httpx.Response) -> None:
        self.statuses.setdefault(what, set()).add(response.status_code)

    def run(self) -> None:
        origin = self.main.base_url.split("/v1")[0]
        deadline = time.monotonic() + LOAD_MAX_S
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    self._iteration(client, origin)
                except httpx.HTTPError as exc:  # pragma: no cover - reported by the tests
                    self.failures.append(repr(exc))
                self.iterations += 1
                self.stop.wait(0.05)  # pacing, not synchronisation

    def _iteration(self, client: httpx.Client, origin: str) -> None:
        url = self.hector_url
        client.post(f"{origin}/_fake/script", json=RUN_SCRIPT).raise_for_status()
        send = {"jsonrpc": "2.0", "id": 1, "method": "message/send"}
        params = v03_message("use the tools please")
        tenant = {"X-Tenant": "acme"}  # charged to acme's token budget
        self._record(
            "a2a",
            client.post(f"{url}/agents/assistant", json={**send, "params": params}, headers=tenant),
        )
        stream = {
            "model": "assistant",
            "stream": True,
            "messages": [{"role": "user", "content": "a forbidden word (the guardrail warns)"}],
        }
        self._record("stream", client.post(f"{url}/v1/chat/completions", json=stream))
        chat = {"model": "assistant", "messages": [{"role": "user", "content": "quick one"}]}
        limited = {"X-Tenant": "limited"}
        self._record(
            "limited", client.post(f"{url}/v1/chat/completions", json=chat, headers=limited)
        )
        down = {"model": "flaky", "messages": [{"role": "user", "content": "are you there?"}]}
        self._record("down", client.post(f"{url}/v1/chat/completions", json=down))
        if self.iterations % 3 == 0:
            self._record(
                "a2a-down", client.post(f"{url}/agents/flaky", json={**send, "params": params})
            )
        if self.iterations % 3 == 0:
            self._overload(client)
        # runs assistant (notifications go to the receiver); a distinct event each time
        event = b'{"event": "deploy", "n": %d}' % self.iterations
        stamp = str(int(time.time()))
        signature = hmac.new(
            WEBHOOK_SECRET.encode(), stamp.encode() + b"." + event, hashlib.sha256
        ).hexdigest()
        signed = {"X-Hector-Signature": f"sha256={signature}", "X-Hector-Timestamp": stamp}
        self._record(
            "webhook", client.post(f"{url}/webhooks/assistant", content=event, headers=signed)
        )
        bad_key = {"Authorization": "Bearer not-the-key"}
        self._record("bad-key", client.get(f"{url}/v1/models", headers=bad_key))
        self._record("404", client.get(f"{url}/no-such-page"))
        self._record("models", client.get(f"{url}/v1/models"))
        self._record("health", client.get(f"{url}/health/ready"))

    def _overload(self, client: httpx.Client) -> None:
        """Two runs of the one-slot agent at once: the second is refused (503) while the
        first waits on the slow upstream."""
        url = f"{self.hector_url}/v1/chat/completions"
        chat = {"model": "gated", "messages": [{"role": "user", "content": "take your time"}]}
        seen = len(self.slow.requests())
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(client.post, url, json=chat)
            while len(self.slow.requests()) == seen and not first.done():
                time.sleep(0.01)  # until the first run holds the slot (its LLM call is out)
            self._record("overloaded", client.post(url, json=chat))
            self._record("gated", first.result())


@dataclass
class Prometheus:
    """A running Prometheus and a client for its HTTP API."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15))

    def api(self, path: str, **params: Any) -> dict[str, Any]:
        """POST form parameters to ``/api/v1/{path}``; the JSON answer (errors included)."""
        body: dict[str, Any] = self.client.post(f"{self.url}/api/v1/{path}", data=params).json()
        return body

    def get(self, path: str) -> dict[str, Any]:
        """GET ``/api/v1/{path}`` (targets, rules, label values take no POST)."""
        body: dict[str, Any] = self.client.get(f"{self.url}/api/v1/{path}").json()
        return body

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Stack:
    """The running stack, and ``at``: the time the tests evaluate queries at (the load was
    running, and Prometheus had scraped it and evaluated its rules)."""

    hector: Server
    prometheus: Prometheus
    load: Load
    instance: str
    at: float

    @property
    def values_all(self) -> dict[str, str]:
        return {"datasource": "prometheus", **dict.fromkeys(CONCRETE, ".*"), "instance": ".*"}

    @property
    def values_concrete(self) -> dict[str, str]:
        return {"datasource": "prometheus", **CONCRETE, "instance": self.instance}

    def evaluate(self, expr: str, *, instant: bool = True) -> dict[str, Any]:
        """``expr`` as Grafana asks it: an instant query at ``at``, or a range ending there."""
        if instant:
            return self.prometheus.api("query", query=expr, time=self.at)
        return self.prometheus.api(
            "query_range", query=expr, start=self.at - 20, end=self.at, step=2
        )

    def evaluate_all(self, items: list[tuple[str, bool]]) -> list[dict[str, Any]]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda item: self.evaluate(item[0], instant=item[1]), items))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _prometheus_config(target: str) -> dict[str, Any]:
    """configs/prometheus/prometheus.yml, pointed at the test's server, scraping often."""
    config = load_yaml(PROMETHEUS_YML)
    every = SCRAPE_INTERVAL
    config["global"].update(scrape_interval=every, evaluation_interval=every)
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    job.update(scrape_interval=every, scrape_timeout=every, static_configs=[{"targets": [target]}])
    config["scrape_configs"] = [job]
    config["rule_files"] = [str(path) for path in rule_files()]
    config.pop("alerting", None)
    return config


def _start_prometheus(workdir: Path, target: str) -> Prometheus:
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(_prometheus_config(target), sort_keys=False))
    port = _free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as sink:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited {proc.returncode}: {log_path.read_text()}")
        try:
            if prometheus.client.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200:
                return prometheus
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    prometheus.stop()
    raise AssertionError(f"prometheus did not become ready: {log_path.read_text()}")


def _eventually(check: Callable[[], list[str]], timeout: float) -> list[str]:
    """Run ``check`` until it reports no problem or ``timeout`` passes; the last problems."""
    deadline = time.monotonic() + timeout
    problems = check()
    while problems and time.monotonic() < deadline:
        time.sleep(0.2)
        problems = check()
    return problems


def _scalar(prometheus: Prometheus, expr: str) -> float:
    result = prometheus.api("query", query=expr).get("data", {}).get("result") or []
    return float(result[0]["value"][1]) if result else math.nan


def _warm(prometheus: Prometheus, load: Load, started: float) -> list[str]:
    """Problems left before the data is worth querying: scrapes under load, rules."""
    problems = []
    since = f"{max(1, round(time.time() - started))}s"  # scrapes since the load started
    scrapes = _scalar(prometheus, f'count_over_time(up{{job="{JOB}"}}[{since}])')
    if not scrapes >= MIN_SCRAPES:
        problems.append(f"{scrapes} scrapes")
    if load.iterations < 10:
        problems.append(f"only {load.iterations} load iterations")
    if not _scalar(prometheus, "min(timestamp(job:hector_slo_errors:ratio_rate5m))") > started:
        problems.append("no recording rule evaluated since the load started")
    return problems


def _caught_up(prometheus: Prometheus, at: float) -> list[str]:
    """Series Prometheus has no sample of newer than ``at`` yet (a scrape, each rule)."""
    latest = [f'up{{job="{JOB}"}}', *(rule["record"] for rule in recording_rules())]
    return [name for name in latest if not _scalar(prometheus, f"min(timestamp({name}))") > at]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(PROMETHEUS).is_file():
        pytest.skip("Prometheus is not installed (apt-get install prometheus; .ci/run does)")
    workdir = tmp_path_factory.mktemp("ops-kit")
    main = start_fake_llm("openai", "--usage", "120,40")
    broken = start_fake_llm("anthropic", "--fail-first", "1000000", "--status", "500")
    slow = start_fake_llm("openai", "--delay", "0.5")
    receiver = WebhookReceiver()
    receiver.start()
    config = workdir / "hector.yaml"
    config.write_text(HECTOR_CONFIG)
    env = clean_env(
        MAIN_URL=main.base_url,
        BROKEN_URL=broken.base_url,
        SLOW_URL=slow.base_url,
        NOTIFY_URL=receiver.url,
        API_KEY=API_KEY,
        WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    server: Server | None = None
    prometheus: Prometheus | None = None
    load: Load | None = None
    thread: threading.Thread | None = None
    try:
        server = start_server(workdir, "-c", str(config), env=env)
        instance = server.url.split("://", 1)[1].rstrip("/")
        prometheus = _start_prometheus(workdir, instance)
        running, traffic, started = prometheus, Load(server.url, main, slow), time.time()
        load = traffic
        thread = threading.Thread(target=traffic.run, name="ops-kit-load", daemon=True)
        thread.start()
        warm = _eventually(lambda: _warm(running, traffic, started), WARMUP_TIMEOUT_S)
        assert not warm, f"{warm}\n{prometheus.log_path.read_text()}"
        at = time.time()
        behind = _eventually(lambda: _caught_up(running, at), 10)
        assert not behind, f"{behind}\n{prometheus.log_path.read_text()}"
        traffic.stop.set()  # the tests query at `at`: the load has done its job
        thread.join(15)
        yield Stack(server, prometheus, traffic, instance, at)
    finally:
        if load is not None and thread is not None:
            load.stop.set()
            thread.join(15)
        if prometheus is not None:
            prometheus.stop()
        if server is not None:
            server.stop()
        main.stop()
        broken.stop()
        slow.stop()
        receiver.stop()


def _has_data(body: dict[str, Any]) -> bool:
    """A successful query answer with at least one sample that is a number (not NaN)."""
    if body.get("status") != "success":
        return False
    data = body["data"]
    result = data["result"]
    if data["resultType"] == "scalar":
        return not math.isnan(float(result[1]))
    values = [
        float(sample[1])
        for series in result
        for sample in ([series["value"]] if "value" in series else series["values"])
    ]
    return any(not math.isnan(value) for value in values)


def _problem(name: str, expr: str, body: dict[str, Any]) -> str | None:
    if body.get("status") != "success":
        return f"{name}: {body.get('error')} in {expr}"
    if not _has_data(body):
        return f"{name}: no data for {expr}"
    return None


@needs_prometheus
def test_prometheus_scrapes_hector_and_evaluates_every_rule_without_error(stack: Stack) -> None:
    [target] = stack.prometheus.get("targets")["data"]["activeTargets"]
    assert target["health"] == "up", target
    assert target["labels"] == {"instance": stack.instance, "job": JOB}
    groups = stack.prometheus.get("rules")["data"]["groups"]
    assert sorted(g["name"] for g in groups) == sorted(
        g["name"] for path in rule_files() for g in load_yaml(path)["groups"]
    )
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(recording_rules()) + len(alerting_rules())
    unhealthy = [r for r in rules if r["health"] != "ok" or r.get("lastError")]
    assert not unhealthy, unhealthy
    assert not stack.load.failures, stack.load.failures
    # The traffic is what the ops kit has to show: successes, 5xx, 404s, failed tasks,
    # refused keys, admission 503s and triggered runs.
    assert stack.load.statuses["a2a"] == {200}
    assert stack.load.statuses["stream"] == {200}
    assert stack.load.statuses["down"] == {502}
    assert stack.load.statuses["404"] == {404}
    assert stack.load.statuses["bad-key"] == {401}
    assert stack.load.statuses["webhook"] == {200}
    assert stack.load.statuses["gated"] == {200}
    assert stack.load.statuses["overloaded"] == {503}
    assert stack.load.statuses["limited"] == {200, 429}


@needs_prometheus
def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    """Every panel target of every dashboard, with the variables on "All" and on concrete
    values (agent=assistant, tool=calculator...), as Grafana asks it (range or instant)."""
    queries = panel_queries()
    assert len(queries) >= 50
    items = [
        (query, substitute(query.expr, values))
        for query in queries
        for values in (stack.values_all, stack.values_concrete)
    ]
    bodies = stack.evaluate_all([(expr, query.instant) for query, expr in items])
    problems = [
        _problem(query.name, expr, body) for (query, expr), body in zip(items, bodies, strict=True)
    ]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@needs_prometheus
def test_every_template_variable_query_returns_values(stack: Stack) -> None:
    problems = []
    for dashboard, name, query in variable_queries():
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, query
        selector, label = substitute(match.group(1), stack.values_all), match.group(2)
        series = stack.prometheus.api("series", **{"match[]": selector})["data"]
        values = {s[label] for s in series if label in s}
        expected = {"instance": stack.instance, **CONCRETE}[name]
        if expected not in values:
            problems.append(f"{dashboard} ${name}: {expected!r} not in {sorted(values)}")
    assert not problems, problems


@needs_prometheus
def test_every_recording_rule_returns_data(stack: Stack) -> None:
    """Both the rule's expression and the series Prometheus recorded from it."""
    items = [
        (expr, rule["record"])
        for rule in recording_rules()
        for expr in (rule["expr"], rule["record"])
    ]
    bodies = stack.evaluate_all([(expr, True) for expr, _ in items])
    problems = [
        _problem(name, expr, body) for (expr, name), body in zip(items, bodies, strict=True)
    ]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@needs_prometheus
def test_every_alert_parses_and_the_signal_it_watches_returns_data(stack: Stack) -> None:
    """The alert expression as Prometheus runs it parses and evaluates; its ``bool`` form
    (thresholds kept, nothing filtered out) returns data: the alert watches real series."""
    problems = []
    for rule in alerting_rules():
        as_is = stack.evaluate(rule["expr"])
        if as_is.get("status") != "success":
            problems.append(f"{rule['alert']}: {as_is.get('error')}")
        signal = boolify(rule["expr"])
        problems.append(_problem(rule["alert"], signal, stack.evaluate(signal)))
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@needs_prometheus
def test_queries_use_only_metric_and_label_names_hector_emits(stack: Stack) -> None:
    """No name can hide behind an ``or`` branch or a ``.*`` matcher: every metric, recorded
    series and label that a panel, variable or rule names exists in Prometheus, and each
    selector's matchers only use labels that metric has."""
    exprs = [substitute(q.expr, stack.values_all) for q in panel_queries()]
    exprs += [
        substitute(re.sub(r"^label_values\((.+),\s*\w+\)$", r"\1", q), stack.values_all)
        for _, _, q in variable_queries()
    ]
    exprs += [rule["expr"] for rule in recording_rules() + alerting_rules()]
    known_metrics = set(stack.prometheus.get("label/__name__/values")["data"])
    known_labels = set(stack.prometheus.get("labels")["data"])
    recorded = {rule["record"] for rule in recording_rules()}
    problems = []
    labels_of: dict[str, set[str]] = {}
    for expr in exprs:
        for metric in metric_names(expr):
            if metric not in known_metrics:
                problems.append(f"unknown metric {metric} in {expr}")
            if ":" in metric and metric not in recorded:
                problems.append(f"{metric} is not a recording rule of ours")
        for label in grouping_labels(expr):
            if label not in known_labels:
                problems.append(f"unknown label {label} in {expr}")
        for metric, matchers in selector_labels(expr):
            if metric not in labels_of:
                series = stack.prometheus.api("series", **{"match[]": metric})["data"]
                labels_of[metric] = {name for s in series for name in s}
            if matchers - labels_of[metric]:
                problems.append(f"{metric} has no label {matchers - labels_of[metric]}: {expr}")
    for query in panel_queries():  # legends name labels too
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(query.__dict__)):
            if label not in known_labels:
                problems.append(f"{query.name}: legend label {label}")
    assert not problems, "\n".join(problems)


@needs_prometheus
def test_latency_histograms_carry_trace_id_exemplars(stack: Stack) -> None:
    """What the panels' exemplar links need: Prometheus stores a trace_id per bucket."""
    histograms = sorted(
        {match for q in panel_queries() for match in re.findall(r"(hector_\w+_bucket)\{", q.expr)}
    )
    assert len(histograms) == 5, histograms
    problems = []
    for metric in histograms:
        body = stack.prometheus.api(
            "query_exemplars", query=metric, start=stack.at - 300, end=stack.at
        )
        trace_ids = [
            exemplar["labels"].get("trace_id", "")
            for series in body.get("data") or []
            for exemplar in series["exemplars"]
        ]
        if not any(re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids):
            problems.append(f"{metric}: no trace_id exemplar ({body})")
    assert not problems, problems


@needs_prometheus
def test_dockerfile_healthcheck_command_probes_the_server(stack: Stack) -> None:
    argv = [sys.executable, *_healthcheck_argv()[1:]]
    port = stack.instance.rsplit(":", 1)[1]
    live = subprocess.run(argv, env=clean_env(PORT=port), capture_output=True, timeout=15)
    assert live.returncode == 0, live.stderr
    dead = subprocess.run(
        argv, env=clean_env(PORT=str(_free_port())), capture_output=True, timeout=15
    )
    assert dead.returncode != 0
