"""The ops kit's files as data: dashboards' queries, rules, the PrometheusRule, PromQL helpers.

``python -m tests.ops_kit`` rewrites ``configs/k8s/prometheusrule.yaml`` from
``configs/prometheus/recording_rules.yml`` and ``alerts.yml`` (tests/test_ops_kit.py fails
while the two disagree).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
PROMETHEUS_DIR = CONFIGS / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
DASHBOARDS_DIR = CONFIGS / "grafana" / "dashboards"
K8S_DIR = CONFIGS / "k8s"
PROMETHEUS_RULE = K8S_DIR / "prometheusrule.yaml"
COMPOSE = CONFIGS / "compose" / "docker-compose.yml"

# What Grafana puts in place of its built-in variables when the tests evaluate a query.
GRAFANA_BUILTINS = {"__rate_interval": "30s", "__interval": "5s", "__range": "5m"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rule_files() -> list[Path]:
    """The rule files prometheus.yml loads, in its order."""
    config = load_yaml(PROMETHEUS_YML)
    return [PROMETHEUS_DIR / name for name in config["rule_files"]]


def rule_groups() -> list[dict[str, Any]]:
    """Every rule group of every rule file, in load order."""
    return [group for path in rule_files() for group in load_yaml(path)["groups"]]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON by file stem."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def data_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The dashboard's panels other than rows (also those nested in rows)."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


@dataclass(frozen=True)
class PanelQuery:
    """One PromQL target of one panel."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def panel_queries() -> list[PanelQuery]:
    return [
        PanelQuery(
            stem,
            panel["title"],
            target["refId"],
            target["expr"],
            bool(target.get("instant")) and not target.get("range"),
        )
        for stem, board in dashboards().items()
        for panel in data_panels(board)
        for target in panel["targets"]
    ]


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard, variable, query) for every query variable."""
    return [
        (
            stem,
            var["name"],
            var["query"] if isinstance(var["query"], str) else var["query"]["query"],
        )
        for stem, board in dashboards().items()
        for var in board["templating"]["list"]
        if var["type"] == "query"
    ]


def substitute(expr: str, values: dict[str, str]) -> str:
    """``expr`` with ``$name``, ``${name}`` and ``[[name]]`` replaced (built-ins included)."""
    merged = {**GRAFANA_BUILTINS, **values}
    for name in sorted(merged, key=len, reverse=True):
        value = merged[name]
        expr = expr.replace(f"${{{name}}}", value).replace(f"[[{name}]]", value)
        expr = re.sub(rf"\${re.escape(name)}(?![A-Za-z0-9_])", lambda _m, v=value: v, expr)
    leftover = re.search(r"\$\{?[A-Za-z_]\w*", expr)
    assert leftover is None, f"unsubstituted variable {leftover.group(0)} in {expr}"
    return expr


# --- PromQL -------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)")


def boolify(expr: str) -> str:
    """``expr`` with every comparison turned into a ``bool`` one (``a > 1`` -> ``a > bool 1``).

    A comparison filters series out; its ``bool`` form keeps every series of its left side
    (as 0 or 1). So an alert's bool form returns data exactly when the signal the alert
    watches exists, whatever its value. Label matchers (inside braces) stay as they are.
    """
    out, depth, i = [], 0, 0
    while i < len(expr):
        char = expr[i]
        if char == '"':
            literal = _STRING.match(expr, i)
            assert literal is not None, f"unterminated string in {expr}"
            out.append(literal.group(0))
            i = literal.end()
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0:
            match = _COMPARISON.match(expr, i)
            if match:
                out.append(f"{match.group(1)} bool")
                i = match.end()
                continue
        out.append(char)
        i += 1
    return "".join(out)


_SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_][\w:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_METRIC = re.compile(r"(?<![\w:\"$])([a-zA-Z_][\w:]*)(?![\w:]|\s*\()")
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names (and recorded series names) an expression reads."""
    bare = _STRING.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = _GROUPING.sub("", bare)
    return {
        name
        for name in _METRIC.findall(bare)
        if name.lower() not in _KEYWORDS and not re.fullmatch(r"[0-9a-fx.e]+", name)
    }


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names in its matchers) for every ``metric{...}`` selector."""
    return [
        (metric, set(_MATCHER.findall(matchers))) for metric, matchers in _SELECTOR.findall(expr)
    ]


def grouping_labels(expr: str) -> set[str]:
    """Label names in ``by``/``without``/``on``/``ignoring``/``group_*`` clauses."""
    return {
        label.strip()
        for clause in _GROUPING.findall(expr)
        for label in clause.split(",")
        if label.strip()
    }


# --- the PrometheusRule -------------------------------------------------------------------

_HEADER = """\
# GENERATED from configs/prometheus/recording_rules.yml and alerts.yml: do not edit.
# Regenerate with: python -m tests.ops_kit   (tests/test_ops_kit.py checks they agree)
# Your Prometheus must select this object (kube-prometheus-stack: the "release" label, or
# ruleSelector).
"""


def prometheus_rule() -> dict[str, Any]:
    """The PrometheusRule object holding every rule group prometheus.yml loads."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "hector",
            "labels": {"app.kubernetes.io/name": "hector", "release": "prometheus"},
        },
        "spec": {"groups": rule_groups()},
    }


class _BlockDumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def render_prometheus_rule() -> str:
    body = yaml.dump(
        prometheus_rule(), Dumper=_BlockDumper, sort_keys=False, width=200, allow_unicode=True
    )
    return _HEADER + body


if __name__ == "__main__":
    PROMETHEUS_RULE.write_text(render_prometheus_rule(), encoding="utf-8")
    print(f"wrote {PROMETHEUS_RULE.relative_to(REPO)}")
