"""``hector serve``: run the agent server (or a ``--workers`` supervisor)."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from hector_py.cli.base import JSON_ERRORS, ConfigOption, app, choices, fail, resolve
from hector_py.config.names import LogFormat, LogLevel, ProviderName


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
            metavar="NAME",
            help=f"LLM provider: {choices(ProviderName)}.",
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
        typer.Option(
            envvar="HECTOR_LOG_LEVEL",
            metavar="LEVEL",
            help=f"Log level: {choices(LogLevel)}.",
            show_default="info",
        ),
    ] = None,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            envvar="HECTOR_LOG_FORMAT",
            metavar="FORMAT",
            help="text (for people) or json (for log shippers).",
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
    approve_tools: Annotated[
        bool | None,
        typer.Option(
            "--approve-tools/--no-approve-tools",
            envvar="HECTOR_APPROVE_TOOLS",
            help="A person approves each tool call of the agent first (over A2A,"
            " input-required); --no-approve-tools turns the config's require_approval off.",
            show_default=False,
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
        approve_tools=approve_tools,
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
