"""The ``hector`` app and what its commands share: one-line failures, config resolution.

Only what ``hector --help`` needs is imported up front; the config models (pydantic),
asyncio, YAML and the server load inside the commands, so the help comes back fast.
"""

from __future__ import annotations

import logging
import os
import platform
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import typer.core
from rich.console import Console

from hector_py import __version__

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

    def list_commands(self, ctx: Any) -> list[str]:
        """``serve`` first, then the rest in registration order (modules import sorted)."""
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: (name not in _FIRST, _FIRST.get(name, 0)))


_FIRST = {"serve": 0, "call": 1, "validate": 2, "info": 3}


app = typer.Typer(
    cls=_Group,
    name="hector",
    help="hector-py: a self-hosted LLM agent runner (A2A + OpenAI API) with observability.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
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


def choices(literal: Any) -> str:
    """The values of a ``Literal`` type as ``a, b or c`` for a help text (no mid-word wrap
    in the narrow metavar column)."""
    values: list[str] = list(typing.get_args(literal))
    return ", ".join(values[:-1]) + " or " + values[-1]


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
def version() -> None:
    """Print the version."""
    _print_version(True)
