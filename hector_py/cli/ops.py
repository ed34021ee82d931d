"""``hector ops-kit``: dashboards, rules and alerts for a metric namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hector_py.cli.base import ConfigOption, app, err, fail, resolve


@app.command("ops-kit")
def ops_kit(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the kit into.")],
    namespace: Annotated[
        str, typer.Option(help="observability.metrics.namespace of the servers.")
    ] = "hector",
    subsystem: Annotated[
        str, typer.Option(help="observability.metrics.subsystem of the servers.")
    ] = "",
    source: Annotated[
        Path | None, typer.Option("--from", help="The configs/ directory to start from.")
    ] = None,
    keep_label: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-label",
            metavar="NAME",
            help="A label rules and alerts keep when they aggregate (repeatable).",
            show_default="the config's observability.metrics.const_labels",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write the dashboards, recording rules and alerts for a custom metric namespace.

    With ``-c``, the namespace, subsystem and const labels come from the config's
    ``observability.metrics`` (flags given explicitly win)."""
    from pydantic import ValidationError

    from hector_py.config.observability import MetricsConfig
    from hector_py.observability.opskit import LABEL_NAME, OpsKitError, write_kit

    labels = list(keep_label or [])
    if config is not None:
        metrics = resolve(config)[0].observability.metrics
        namespace = namespace if namespace != "hector" else metrics.namespace
        subsystem = subsystem or metrics.subsystem
        labels = labels or sorted(metrics.const_labels)
    try:
        MetricsConfig(namespace=namespace, subsystem=subsystem)
    except ValidationError as exc:
        fail([f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors()])
    bad = [label for label in labels if not LABEL_NAME.fullmatch(label)]
    if bad:
        fail(f"--keep-label: '{bad[0]}' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
    try:
        written = write_kit(out, namespace, subsystem, source, labels)
    except OpsKitError as exc:
        fail(str(exc))
    err.print(f"wrote {len(written)} files under {out}")
