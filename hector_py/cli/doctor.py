"""``hector doctor``: check a config against the real world, one line per check."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hector_py.cli.base import ConfigOption, app, out, resolve


@app.command()
def doctor(
    config: ConfigOption = None,
    output: Annotated[
        str, typer.Option("--format", help="text (a line per check) or json.", metavar="FORMAT")
    ] = "text",
    live: Annotated[
        bool, typer.Option(help="Also send each model one real (paid) completion.")
    ] = False,
) -> None:
    """Check that the models answer, the tools list, the trace exporter and the store work;
    exit 1 when something fails."""
    import asyncio

    from hector_py.server.doctor import run_checks

    cfg, _ = resolve(config)
    checks = asyncio.run(run_checks(cfg, live=live))
    if output == "json":
        out.print(json.dumps([c.as_dict() for c in checks]), markup=False, soft_wrap=True)
    else:
        for check in checks:
            mark = "ok  " if check.ok else "FAIL"
            fix = f" (fix: {check.fix})" if check.fix and not check.ok else ""
            out.print(f"{mark} {check.name}: {check.detail}{fix}", markup=False, soft_wrap=True)
    if not all(check.ok for check in checks):
        raise typer.Exit(1)
