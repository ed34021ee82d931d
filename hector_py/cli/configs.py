"""Commands that read a config offline: validate, index, schema, info."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hector_py.cli.base import ConfigOption, app, fail, out, resolve

if TYPE_CHECKING:
    from hector_py.config.model import Config


async def check_databases(cfg: Config) -> list[tuple[str, str, bool, str]]:
    """``--check-connections``: (what, the setting to fix, usable, what was found) for the
    ``storage:`` database and each postgres index's (each database and schema checked once):
    can we connect, and which schema version is there (4 and up hold the index tables)."""
    from hector_py.agent.stores.postgres import check_connection

    storage = cfg.storage
    targets = []
    if storage.type == "postgres" and storage.dsn is not None:
        targets.append(("storage", "storage.dsn", storage.dsn, storage.schema_name))
    for name, store in cfg.document_stores.items():
        if store.index.type != "postgres":
            continue
        secret, schema = store.index_database(storage)
        if secret is not None:
            own = store.index.dsn is not None
            setting = f"document_stores.{name}.index.dsn" if own else "storage.dsn"
            targets.append((f"document_stores.{name}.index", setting, secret, schema))
    checked: dict[tuple[str, str], tuple[bool, str]] = {}
    found = []
    if storage.type != "postgres":
        found.append(("storage", "storage", True, f"{storage.type}: nothing to connect to"))
    for what, setting, secret, schema in targets:
        key = (secret.get_secret_value(), schema)
        if key not in checked:
            checked[key] = await check_connection(*key)
        found.append((what, setting, *checked[key]))
    return found


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Config file to check.", dir_okay=False)],
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the resolved config (secrets masked).")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    check_connections: Annotated[
        bool,
        typer.Option(
            "--check-connections",
            help="Also connect to the postgres databases (storage, document store indexes)"
            " and check their schema version.",
        ),
    ] = False,
) -> None:
    """Check a config file; exit 1 with one line per problem when it is invalid."""
    import asyncio

    import yaml

    from hector_py.config.loader import ConfigError, Problem, load_config

    if fmt not in ("text", "json"):
        fail(f"--format: must be text or json, not '{fmt}'", code=2)
    try:
        cfg = load_config(file)
        from hector_py.server.app import check_buildable

        asyncio.run(check_buildable(cfg))
        checks = asyncio.run(check_databases(cfg)) if check_connections else []
        failed = dict.fromkeys((setting, message) for _, setting, ok, message in checks if not ok)
        if failed:  # an index on the storage database fails with it: said once
            raise ConfigError([Problem(path, message, "config") for path, message in failed])
    except ConfigError as exc:
        from hector_py.config.loader import masked

        found = masked(exc.problems, file, os.environ)
        if fmt == "json":
            problems = [vars(problem) for problem in found]
            print(json.dumps({"valid": False, "file": str(file), "problems": problems}))
        else:
            for problem in found:
                print(problem)
        raise typer.Exit(1) from None
    from hector_py.config.masking import mask_urls

    resolved = mask_urls(cfg.model_dump(mode="json"))
    if fmt == "json":
        report: dict[str, Any] = {"valid": True, "file": str(file)}
        for what, _, _, message in checks:
            if what == "storage":
                report["store"] = message
            else:
                name = what.removeprefix("document_stores.").removesuffix(".index")
                report.setdefault("indexes", {})[name] = message
        if print_config:
            report["config"] = resolved
        print(json.dumps(report, indent=2))
    elif print_config:
        print(yaml.safe_dump(resolved, sort_keys=False), end="")
    else:
        print(f"{file}: valid")
    if fmt == "text":
        for what, _, _, message in checks:
            print(f"{what}: {message}")


@app.command()
def index(
    store: Annotated[str | None, typer.Argument(help="Only this document store.")] = None,
    config: ConfigOption = None,
    docs_folder: Annotated[
        str | None,
        typer.Option(envvar="HECTOR_DOCS_FOLDER", help="Index this folder as the store 'docs'."),
    ] = None,
) -> None:
    """Build or refresh document store indexes offline and print their counts."""
    import asyncio

    from hector_py.config.flags import ServeFlags
    from hector_py.config.loader import ConfigError
    from hector_py.observability.logs import configure_logging
    from hector_py.observability.redact import Redactor
    from hector_py.server.knowledge import index_offline

    cfg, _ = resolve(config, ServeFlags(docs_folder=docs_folder))
    redactor = Redactor(cfg.logging.redact, cfg.secret_values())
    configure_logging(cfg.logging.level, cfg.logging.format, None, redactor)
    names = list(cfg.document_stores)
    if store is not None:
        if store not in cfg.document_stores:
            fail(f"document store '{store}' not found (stores: {', '.join(names) or 'none'})")
        names = [store]
    elif not names:
        fail("no document_stores in the config (or pass --docs-folder DIR)")
    try:
        indexed = asyncio.run(index_offline(cfg, names))
    except ConfigError as exc:
        fail([str(problem) for problem in exc.problems])
    for done in indexed:
        report = done.report
        vectors = (
            f", {done.embedded} chunks embedded" if cfg.document_stores[done.name].embedder else ""
        )
        out.print(
            f"{done.name}: {report.documents} documents, {report.chunks} chunks"
            f" ({report.added} added, {report.updated} updated, {report.removed} removed,"
            f" {report.unchanged} unchanged, {report.skipped} skipped{vectors})"
            f" in {report.seconds:.2f} s",
            markup=False,
            soft_wrap=True,
        )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the config file."""
    from hector_py.config.model import Config

    print(json.dumps(Config.model_json_schema(), indent=2))


@app.command()
def info(
    agent: Annotated[str | None, typer.Argument(help="Show only this agent.")] = None,
    config: ConfigOption = None,
) -> None:
    """List the agents with their model, provider and tools."""
    cfg, _ = resolve(config)
    names = list(cfg.agents)
    if agent is not None:
        if agent not in cfg.agents:
            fail(f"agent '{agent}' not found (agents: {', '.join(names)})")
        names = [agent]
    from rich.table import Table

    table = Table("agent", "provider", "model", "tools", "description")
    for name in names:
        spec = cfg.agents[name]
        llm = cfg.llms[spec.llm]
        label = f"{name} (default)" if name == cfg.default_agent_name else name
        table.add_row(
            label, llm.provider, llm.model, ", ".join(spec.tools) or "-", spec.description
        )
    out.print(table)
