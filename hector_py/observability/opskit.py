"""``hector ops-kit``: the shipped Prometheus config, recording rules, alerts (with their
promtool unit tests) and Grafana dashboards, rewritten for the metric names a custom
``observability.metrics.namespace``/``subsystem`` gives, so the kit keeps working."""

from __future__ import annotations

import re
import sys
from pathlib import Path

DEFAULT_PREFIX = "hector"
KIT = (
    "prometheus/prometheus.yml",
    "prometheus/recording_rules.yml",
    "prometheus/alerts.yml",
    "prometheus/alerts_test.yml",
    "grafana/dashboards/*.json",
    "grafana/provisioning/*/*.yml",
)
# ``hector_`` where it starts a metric name (also inside a recording rule's ``level:name``),
# not inside words such as ``hector-py`` or the job name ``hector``.
_METRIC_PREFIX = re.compile(r"(?<![\w-])hector_(?=[a-z])")
LABEL_NAME = re.compile(r"(?!__)[a-zA-Z_][a-zA-Z0-9_]*")
_BY = re.compile(r"\bby \(([\w, ]+)\)")


class OpsKitError(Exception):
    """The kit cannot be written (one line, naming what and where)."""


def metric_prefix(namespace: str, subsystem: str = "") -> str:
    """What prometheus_client puts before every metric name: ``namespace[_subsystem]``."""
    return "_".join(part for part in (namespace, subsystem) if part)


def rewrite(text: str, prefix: str) -> str:
    """``text`` with every hector metric name under ``prefix`` instead of ``hector``."""
    return _METRIC_PREFIX.sub(f"{prefix}_", text) if prefix != DEFAULT_PREFIX else text


def find_kit(source: Path | None = None) -> Path:
    """The ``configs`` directory the kit is read from: ``source``, else the source tree's
    (a checkout or an editable install), else the one a wheel installs under the prefix."""
    candidates = (
        [source]
        if source
        else [
            Path(__file__).resolve().parents[2] / "configs",
            Path(sys.prefix) / "share" / "hector-py" / "configs",
        ]
    )
    for candidate in candidates:
        if (candidate / KIT[0]).is_file():
            return candidate
    where = candidates[0]
    raise OpsKitError(f"{where}: no ops kit here (expected {KIT[0]}); pass --from CONFIGS_DIR")


def keep_labels(text: str, labels: list[str]) -> str:
    """``text`` with ``labels`` kept by every ``by (…)`` aggregation, so rules and alerts
    of servers with ``const_labels`` (environment, region…) stay apart per value."""
    if not labels:
        return text
    return _BY.sub(lambda m: f"by ({', '.join([*labels, *m.group(1).split(', ')])})", text)


def write_kit(
    out: Path,
    namespace: str,
    subsystem: str = "",
    source: Path | None = None,
    labels: list[str] | None = None,
) -> list[Path]:
    """Write the kit for ``namespace``/``subsystem`` under ``out`` (rules and alerts keeping
    ``labels``); the files written."""
    kit = find_kit(source)
    prefix = metric_prefix(namespace, subsystem)
    written: list[Path] = []
    for pattern in KIT:
        for path in sorted(kit.glob(pattern)):
            target = out / path.relative_to(kit)
            text = rewrite(path.read_text(encoding="utf-8"), prefix)
            if path.parent.name == "prometheus":
                text = keep_labels(text, labels or [])
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, "utf-8")
            except OSError as exc:
                raise OpsKitError(f"{target}: {exc.strerror or exc}") from None
            written.append(target)
    return written
