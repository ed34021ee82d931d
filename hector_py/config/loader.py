"""Load a config: YAML file -> ``${VAR}`` expansion -> overrides -> validated ``Config``.

Precedence is flags > ``HECTOR_*`` env (``HECTOR_SERVER__PORT=9000``) > file > defaults.
Every problem is reported at once, one line each: ``path.to.field: message (FILE:LINE)``.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dotenv import load_dotenv
from pydantic import BaseModel, ValidationError
from pydantic_settings import EnvSettingsSource, SettingsError

from hector_py.config.masking import MASK
from hector_py.config.model import Config

ENV_PREFIX = "HECTOR_"
ENV_NESTED_DELIMITER = "__"
MAX_DEPTH = 64

ConfigPath = tuple[str | int, ...]
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, and where it is."""

    path: str
    message: str
    where: str

    def __str__(self) -> str:
        if not self.path:  # the file itself: name it, not a placeholder
            return f"{self.where}: {self.message}"
        return f"{self.path}: {self.message} ({self.where})"


class ConfigError(Exception):
    """The config is invalid; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build and validate a ``Config``.

    ``overrides`` are nested values from CLI flags; ``environ`` defaults to ``os.environ``
    (after loading ``.env`` from the working directory, which never overrides it).
    """
    if environ is None:
        load_dotenv(Path.cwd() / ".env", override=False)
        environ = os.environ
    source = _Source(str(path) if path else "<defaults>")
    data: dict[str, Any] = source.read(path, environ) if path else {}
    try:
        env_overrides = EnvSettingsSource(
            Config,  # type: ignore[arg-type]
            env_prefix=ENV_PREFIX,
            env_nested_delimiter=ENV_NESTED_DELIMITER,
            case_sensitive=False,
        )()
    except SettingsError as exc:  # a HECTOR_<SECTION> value that is not valid JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = ENV_PREFIX + (field.group(1).upper() if field else "*")
        raise ConfigError(
            [Problem(field.group(1) if field else "<env>", "not valid JSON", f"env {name}")]
        ) from None
    for key in _leaf_paths(env_overrides):
        source.origin[key] = "env " + ENV_PREFIX + ENV_NESTED_DELIMITER.join(map(str, key)).upper()
    merged = deep_merge(deep_merge(data, env_overrides), dict(overrides or {}))
    for key in _leaf_paths(dict(overrides or {})):
        source.origin[key] = "command line"
    config: Config | None = None
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(error["loc"])
            if any(loc[: len(p)] == p for p in source.expansion_failed):
                continue  # already reported as a missing variable
            source.add(loc, _message(error) + _suggestion(loc, error["type"]))
    if config is not None:
        for loc, message in config.reference_problems():
            source.add(loc, message)
    if source.problems:
        raise ConfigError(sorted(source.problems, key=_line_number))
    assert config is not None
    return config


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``top`` into ``base`` recursively; ``top`` wins, mappings merge."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def expand_vars(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand ``${VAR}`` and ``${VAR:-default}``; ``$$`` is a literal ``$``.

    Returns the expanded text and the names of variables that are unset with no default.
    """
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                missing.append(name)
                return ""
            return default
        return value

    return _VAR.sub(substitute, text), missing


class _Source:
    """Reads one YAML file, remembering the line of every value for error messages."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.origin: dict[ConfigPath, str] = {}
        self.problems: list[Problem] = []
        self.expansion_failed: list[ConfigPath] = []
        # Values that came from ${VAR} expansion: masked in messages, as they may be secrets.
        self.from_env: set[str] = set()

    def add(self, loc: ConfigPath, message: str) -> None:
        for value in sorted(self.from_env, key=len, reverse=True):
            message = message.replace(value, MASK)
        self.problems.append(Problem(_dotted(loc), message, self._where(loc)))

    def _where(self, loc: ConfigPath) -> str:
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.origin:
                return self.origin[loc[:end]]
        return self.filename

    def read(self, path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [Problem("", f"cannot read: {getattr(exc, 'strerror', None) or exc}", str(path))]
            ) from None
        try:
            loader = yaml.SafeLoader(text)
            try:
                node = loader.get_single_node()
            finally:
                loader.dispose()
            if node is None:
                return {}
            if not isinstance(node, yaml.MappingNode):
                raise ConfigError([Problem("<root>", "must be a mapping", self._line(node))])
            self.origin[()] = self._line(node)
            value = self._build(loader, node, (), environ, depth=0)
        except RecursionError:
            raise ConfigError(
                [Problem("", "invalid YAML: nested deeper than Python can parse", str(path))]
            ) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError([Problem("", f"invalid YAML: {problem}", f"{path}{line}")]) from None
        assert isinstance(value, dict)
        return value

    def _scalar(self, loader: yaml.SafeLoader, node: yaml.Node, loc: ConfigPath) -> Any:
        """A scalar's value; a bad tag (``!!int abc``) is a problem at its line."""
        try:
            return loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, AttributeError, RecursionError) as exc:
            self.problems.append(
                Problem(
                    _dotted(loc) or "<root>",
                    f"invalid value for {node.tag}: {exc}",
                    self._line(node),
                )
            )
            return None

    def _line(self, node: yaml.Node) -> str:
        return f"{self.filename}:{node.start_mark.line + 1}"

    def _build(
        self,
        loader: yaml.SafeLoader,
        node: yaml.Node,
        loc: ConfigPath,
        environ: Mapping[str, str],
        depth: int,
    ) -> Any:
        if depth > MAX_DEPTH:
            raise ConfigError(
                [
                    Problem(
                        _dotted(loc),
                        f"nested deeper than {MAX_DEPTH} levels (or an alias that contains itself)",
                        self._line(node),
                    )
                ]
            )
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)  # YAML merge keys (<<: *base)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalar(loader, key_node, loc)
                if not isinstance(key, str | int):
                    self.problems.append(
                        Problem(
                            _dotted(loc) or "<root>", "keys must be strings", self._line(key_node)
                        )
                    )
                    continue
                child = (*loc, str(key))
                if str(key) in out:
                    self.problems.append(
                        Problem(_dotted(child), "duplicate key", self._line(key_node))
                    )
                self.origin[child] = self._line(key_node)
                out[str(key)] = self._build(loader, value_node, child, environ, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.origin[(*loc, index)] = self._line(item)
                items.append(self._build(loader, item, (*loc, index), environ, depth + 1))
            return items
        value = self._scalar(loader, node, loc)
        if isinstance(value, str):
            self.from_env.update(
                environ[m.group(1)]
                for m in _VAR.finditer(value)
                if m.group(1) and len(environ.get(m.group(1)) or "") >= 4
            )
            value, missing = expand_vars(value, environ)
            for name in missing:
                self.expansion_failed.append(loc)
                self.problems.append(
                    Problem(
                        _dotted(loc),
                        f"environment variable ${{{name}}} is not set and has no default",
                        self._line(node),
                    )
                )
        return value


def _leaf_paths(data: Mapping[str, Any], prefix: ConfigPath = ()) -> list[ConfigPath]:
    paths: list[ConfigPath] = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            paths.extend(_leaf_paths(value, (*prefix, key)))
        else:
            paths.append((*prefix, key))
    return paths


def _dotted(loc: ConfigPath) -> str:
    return ".".join(str(part) for part in loc)


def _line_number(problem: Problem) -> int:
    _, _, line = problem.where.rpartition(":")
    return int(line) if line.isdigit() else 0


def _model_at(model: type[BaseModel], loc: ConfigPath) -> type[BaseModel] | None:
    """The section model that holds the key at ``loc`` (through lists, dicts and optionals)."""
    current: Any = model
    for part in loc:
        origin = typing.get_origin(current)
        if origin in (dict, list, tuple):
            current = typing.get_args(current)[-1]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        else:
            return None
        args = [a for a in typing.get_args(current) if a is not type(None)]
        if typing.get_origin(current) not in (dict, list, tuple) and len(args) == 1:
            current = args[0]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _suggestion(loc: ConfigPath, kind: str) -> str:
    """`` (did you mean `port`?)`` when an unknown key is one typo from a valid one."""
    if kind != "extra_forbidden" or not loc or not isinstance(loc[-1], str):
        return ""
    section = _model_at(Config, loc[:-1])
    close = difflib.get_close_matches(loc[-1], list(section.model_fields) if section else [], n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required"
    return str(error["msg"]).removeprefix("Value error, ")  # our validators' own words


def masked(problems: list[Problem], path: Path | None, environ: Mapping[str, str]) -> list[Problem]:
    """``problems`` found after loading (tools, providers) with every value a ``${VAR}`` of
    ``path`` expanded to masked, and the file named where they only say ``config``."""
    try:
        text = path.read_text(encoding="utf-8") if path else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    values = {
        environ[m.group(1)]
        for m in _VAR.finditer(text)
        if m.group(1) and len(environ.get(m.group(1)) or "") >= 4
    }
    fixed = []
    for problem in problems:
        message = problem.message
        for value in sorted(values, key=len, reverse=True):
            message = message.replace(value, MASK)
        where = str(path) if problem.where == "config" and path else problem.where
        fixed.append(Problem(problem.path, message, where))
    return fixed
