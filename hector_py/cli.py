"""The ``hector`` command: serve, validate, schema, version, info.

Only what ``hector --help`` needs is imported up front; the config models (pydantic),
asyncio, YAML and the server load inside the commands, so the help comes back fast.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import typer.core
from rich.console import Console

from hector_py import __version__
from hector_py.config.names import LogFormat, LogLevel, ProviderName

if TYPE_CHECKING:
    from hector_py.config.flags import ServeFlags
    from hector_py.config.model import Config

_BOOL_FLAGS = ("--observe", "--metrics")
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _bool_flag_values(args: list[str]) -> list[str]:
    """Accept `--observe true` / `--observe=false` (the hint says <bool>) as the plain flags."""
    result: list[str] = []
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        nxt = args[i + 1].lower() if i + 1 < len(args) else ""
        if name in _BOOL_FLAGS and not eq and nxt in _TRUE | _FALSE:
            value, i = nxt, i + 1
        if name in _BOOL_FLAGS and value.lower() in _TRUE | _FALSE:
            result.append(name if value.lower() in _TRUE else "--no-" + name[2:])
        else:
            result.append(args[i])
        i += 1
    return result


class _Group(typer.core.TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer vendors click
        return super().parse_args(ctx, _bool_flag_values(args))


app = typer.Typer(
    cls=_Group,
    name="hector",
    help="hector-py: a self-hosted LLM agent runner (A2A + OpenAI API) with observability.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _print_version(value: bool) -> None:
    if value:
        print(f"hector-py {__version__} (python {platform.python_version()})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """hector-py: a self-hosted LLM agent runner (A2A + OpenAI API) with observability."""


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c", "--config", envvar="HECTOR_CONFIG", help="YAML config file.", dir_okay=False
    ),
]


JSON_ERRORS: set[bool] = set()
"""Holds ``True`` once ``serve`` knows its logs are JSON: fatal errors are log lines then."""


def fail(lines: list[str] | str, code: int = 1) -> NoReturn:
    """Print one-line errors to stderr (as JSON log lines under ``--log-format json``) and
    exit with ``code``."""
    lines = [lines] if isinstance(lines, str) else lines
    if JSON_ERRORS:
        from hector_py.observability.logs import configure_logging

        if not logging.getLogger().handlers:
            configure_logging("info", "json", None)
        for line in lines:
            logging.getLogger("hector").critical(line)
        raise typer.Exit(code)
    for line in lines:
        err.print(f"error: {line}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def resolve(path: Path | None, flags: ServeFlags | None = None) -> tuple[Config, bool]:
    """Load the config from ``path`` (or zero-config) with ``flags`` on top.

    Returns the config and whether the demo model was chosen for lack of any other.
    """
    from hector_py.config.flags import ServeFlags, overrides_for, zero_config_flags
    from hector_py.config.loader import ConfigError, load_config

    flags = flags or ServeFlags()
    demo_fallback = False
    if path is None:
        flags, demo_fallback = zero_config_flags(flags, os.environ)
    try:
        base = load_config(path)
        overrides = overrides_for(flags, base)
        return (load_config(path, overrides) if overrides else base), demo_fallback
    except ConfigError as exc:
        fail([str(problem) for problem in exc.problems])
    except ValueError as exc:
        fail(str(exc))


@app.command()
def serve(
    config: ConfigOption = None,
    model: Annotated[
        str | None, typer.Option(envvar="HECTOR_MODEL", help="Model name, e.g. gpt-4o.")
    ] = None,
    provider: Annotated[
        ProviderName | None,
        typer.Option(
            envvar="HECTOR_PROVIDER",
            help="LLM provider.",
            show_default="inferred from --model or the API key in the env",
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="HECTOR_API_KEY", help="Provider API key.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(envvar="HECTOR_BASE_URL", help="Provider base URL.")
    ] = None,
    instruction: Annotated[
        str | None, typer.Option(envvar="HECTOR_INSTRUCTION", help="System instruction.")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            envvar="HECTOR_HOST",
            help="Bind address (every interface by default; auth is off unless configured).",
            show_default="0.0.0.0",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            envvar="HECTOR_PORT",
            min=0,
            max=65535,
            help="Port (0 = any free).",
            show_default="8080",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            envvar="HECTOR_WORKERS",
            min=1,
            max=64,
            help="Processes sharing the port; /metrics adds them up.",
            show_default="1",
        ),
    ] = None,
    observe: Annotated[
        bool,
        typer.Option(
            "--observe/--no-observe",
            envvar="HECTOR_OBSERVE",
            help="Metrics + OTLP tracing to localhost:4317.",
        ),
    ] = False,
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics/--no-metrics", envvar="HECTOR_METRICS", help="Serve Prometheus /metrics."
        ),
    ] = False,
    tracing_endpoint: Annotated[
        str | None,
        typer.Option(
            envvar="HECTOR_TRACING_ENDPOINT",
            help="OTLP endpoint HOST:PORT, or stdout to print spans; enables tracing.",
        ),
    ] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(envvar="HECTOR_LOG_LEVEL", help="Log level.", show_default="info"),
    ] = None,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            envvar="HECTOR_LOG_FORMAT",
            help="text for people, json for log shippers.",
            show_default="text",
        ),
    ] = None,
    log_file: Annotated[
        str | None,
        typer.Option(envvar="HECTOR_LOG_FILE", help="Log file path.", show_default="stderr"),
    ] = None,
    docs_folder: Annotated[
        str | None,
        typer.Option(
            envvar="HECTOR_DOCS_FOLDER",
            help="Index this folder (watched) and give the agent the search_knowledge tool.",
        ),
    ] = None,
    tools: Annotated[
        str | None,
        typer.Option(
            envvar="HECTOR_TOOLS",
            help="Give the agent tools: 'all' built-ins, or a comma list of tool names.",
        ),
    ] = None,
    mcp_url: Annotated[
        str | None,
        typer.Option(
            envvar="HECTOR_MCP_URL",
            help="A streamable-HTTP MCP server whose tools the agent gets.",
        ),
    ] = None,
) -> None:
    """Run the agent server."""
    import asyncio

    from hector_py.config.flags import ServeFlags
    from hector_py.config.loader import ConfigError

    if os.environ.get("HECTOR_TOOLS", "").lstrip().startswith("{"):
        tools = None if tools == os.environ["HECTOR_TOOLS"] else tools  # the tools: section
    elif "HECTOR_TOOLS" in os.environ:
        del os.environ["HECTOR_TOOLS"]  # the --tools flag's, not the tools: section as JSON
    flags = ServeFlags(
        model=model,
        provider=provider,
        api_key=api_key,
        base_url=base_url,
        instruction=instruction,
        host=host,
        port=port,
        workers=workers,
        observe=observe,
        metrics=metrics,
        tracing_endpoint=tracing_endpoint,
        log_level=log_level,
        log_format=log_format,
        log_file=log_file,
        docs_folder=docs_folder,
        tools=tools,
        mcp_url=mcp_url,
    )
    if log_format == "json":
        JSON_ERRORS.add(True)
    cfg, demo_fallback = resolve(config, flags)
    if cfg.logging.format == "json":
        JSON_ERRORS.add(True)
    from hector_py.observability.logs import configure_logging
    from hector_py.observability.redact import Redactor

    try:
        configure_logging(
            cfg.logging.level,
            cfg.logging.format,
            cfg.logging.file,
            Redactor(cfg.logging.redact, cfg.secret_values()),
        )
    except OSError as exc:
        fail(f"logging.file: cannot open {cfg.logging.file}: {exc.strerror}")
    log = logging.getLogger("hector")
    from hector_py.config.flags import missing_keys

    for warning in missing_keys(cfg, os.environ):
        log.warning(warning)
    if demo_fallback:
        log.info(
            "no model and no provider key found: using the offline demo model "
            "(pass --model gpt-4o, or set OPENAI_API_KEY, to use a real one)"
        )
    try:
        if cfg.server.workers > 1:
            from hector_py.server.workers import run_workers

            raise typer.Exit(run_workers(cfg))
        from hector_py.server.lifecycle import serve as run_server

        asyncio.run(run_server(cfg))
    except ConfigError as exc:
        from hector_py.config.loader import masked

        fail([str(problem) for problem in masked(exc.problems, config, os.environ)])
    except OSError as exc:
        fail(f"server: cannot listen on {cfg.server.host}:{cfg.server.port}: {exc.strerror or exc}")


async def check_store(cfg: Config) -> tuple[bool, str] | None:
    """Connect to a postgres store: (reachable with a usable schema, what was found)."""
    storage = cfg.storage
    if storage.type != "postgres" or storage.dsn is None:
        return True, f"{storage.type}: nothing to connect to"
    from hector_py.agent.stores.postgres import check_connection

    return await check_connection(storage.dsn.get_secret_value(), storage.schema_name)


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
            help="Also connect to the store (postgres) and check its schema version.",
        ),
    ] = False,
) -> None:
    """Check a config file; exit 1 with one line per problem when it is invalid."""
    import asyncio

    import yaml

    from hector_py.config.loader import ConfigError, load_config

    if fmt not in ("text", "json"):
        fail(f"--format: must be text or json, not '{fmt}'", code=2)
    try:
        cfg = load_config(file)
        from hector_py.server.app import check_buildable

        asyncio.run(check_buildable(cfg))
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
    connection = asyncio.run(check_store(cfg)) if check_connections else None
    if connection is not None and not connection[0]:
        failure = {"path": "storage.dsn", "message": connection[1], "where": str(file)}
        if fmt == "json":
            print(json.dumps({"valid": False, "file": str(file), "problems": [failure]}))
        else:
            print(f"storage.dsn: {connection[1]} ({file})")
        raise typer.Exit(1)
    from hector_py.config.masking import mask_urls

    resolved = mask_urls(cfg.model_dump(mode="json"))
    if fmt == "json":
        report: dict[str, Any] = {"valid": True, "file": str(file)}
        if connection is not None:
            report["store"] = connection[1]
        if print_config:
            report["config"] = resolved
        print(json.dumps(report, indent=2))
    elif print_config:
        print(yaml.safe_dump(resolved, sort_keys=False), end="")
    else:
        print(f"{file}: valid")
    if connection is not None and fmt == "text":
        print(f"storage: {connection[1]}")


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
def version() -> None:
    """Print the version."""
    _print_version(True)


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


@app.command()
def call(
    words: Annotated[list[str], typer.Argument(help="[AGENT] MESSAGE", metavar="[AGENT] MESSAGE")],
    url: Annotated[str, typer.Option(envvar="HECTOR_URL", help="Server URL.")] = (
        "http://127.0.0.1:8080"
    ),
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Stream the reply.")] = True,
    session: Annotated[str | None, typer.Option(help="Session (contextId) to continue.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the whole reply.")] = 300,
) -> None:
    """Send a message to an agent on a running server and print the reply as it arrives."""
    import asyncio

    from hector_py.client import CallError, Printer, call_agent

    if len(words) > 2:
        fail("expected [AGENT] MESSAGE (quote a message that has spaces)", code=2)
    agent, text = (None, words[0]) if len(words) == 1 else (words[0], words[1])

    def show_tool(event: dict[str, Any]) -> None:
        if event.get("type") == "tool_call":
            arguments = json.dumps(event.get("arguments", {}))
            err.print(f"\n[cyan]→ {event['tool']}[/cyan] {arguments}", markup=True)
        else:
            colour = "green" if event.get("ok") else "red"
            err.print(
                f"[{colour}]← {event['tool']}[/{colour}] {event.get('output', '')}",
                markup=True,
                highlight=False,
            )

    printer = Printer(text=lambda piece: out.print(piece, end="", markup=False), tool=show_tool)
    try:
        result = asyncio.run(
            call_agent(
                url, agent, text, stream=stream, session=session, printer=printer, timeout=timeout
            )
        )
    except CallError as exc:
        fail(str(exc))
    out.print()
    if result.error:
        err.print(f"error: {result.error}", markup=False, soft_wrap=True)
    err.print(f"[dim]session {result.context_id} · {result.state}[/dim]")
    if result.state != "completed":
        raise typer.Exit(1)


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


def main() -> None:
    """Entry point for ``python -m hector_py``."""
    app(prog_name="hector")
