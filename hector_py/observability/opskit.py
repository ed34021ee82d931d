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


def write_kit(
    out: Path, namespace: str, subsystem: str = "", source: Path | None = None
) -> list[Path]:
    """Write the kit for ``namespace``/``subsystem`` under ``out``; the files written."""
    kit = find_kit(source)
    prefix = metric_prefix(namespace, subsystem)
    written: list[Path] = []
    for pattern in KIT:
        for path in sorted(kit.glob(pattern)):
            target = out / path.relative_to(kit)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(rewrite(path.read_text(encoding="utf-8"), prefix), "utf-8")
            except OSError as exc:
                raise OpsKitError(f"{target}: {exc.strerror or exc}") from None
            written.append(target)
    return written
