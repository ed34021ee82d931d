"""``hector ops-kit``: dashboards, rules and alerts for a metric namespace."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hector_py.cli.base import app, err, fail

if TYPE_CHECKING:
    pass


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
) -> None:
    """Write the dashboards, recording rules and alerts for a custom metric namespace."""
    from pydantic import ValidationError

    from hector_py.config.observability import MetricsConfig
    from hector_py.observability.opskit import OpsKitError, write_kit

    try:
        MetricsConfig(namespace=namespace, subsystem=subsystem)
    except ValidationError as exc:
        fail([f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors()])
    try:
        written = write_kit(out, namespace, subsystem, source)
    except OpsKitError as exc:
        fail(str(exc))
    err.print(f"wrote {len(written)} files under {out}")
