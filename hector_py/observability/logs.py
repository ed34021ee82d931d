"""Structured logging: text for people, JSON lines for shippers, with bound context.

Context (``request_id``, ``agent``, ``session_id``...) is bound per task with
:func:`bind` and added to every record written inside that scope.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import orjson
from opentelemetry import trace

from hector_py.observability.redact import Redactor
from hector_py.timestamps import rfc3339

_context: ContextVar[dict[str, Any]] = ContextVar("hector_log_context", default={})  # noqa: B039

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log record written inside the ``with`` block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The bound context, the current span's ids and the ``extra=`` fields of one record."""
    fields = dict(_context.get())
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"] = format(span.trace_id, "032x")
        fields["span_id"] = format(span.span_id, "016x")
    fields.update((k, v) for k, v in vars(record).items() if k not in _STANDARD_ATTRS)
    return fields


class _RedactingFormatter(logging.Formatter):
    """A formatter whose every line passes through a ``Redactor``."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        """The redacted line."""
        return self.redact(self.render(record))

    def render(self, record: logging.LogRecord) -> str:
        """The line before redaction."""
        raise NotImplementedError


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line: time, level, msg, logger, then context and extras."""

    def render(self, record: logging.LogRecord) -> str:
        """The JSON line."""
        entry: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "msg": record.getMessage(),
            "logger": record.name,
            "pid": record.process,
        }
        entry.update(record_fields(record))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(_RedactingFormatter):
    """``TIME LEVEL logger: msg key=value ...`` on one line."""

    def render(self, record: logging.LogRecord) -> str:
        """The text line."""
        parts = [
            rfc3339(record.created),
            f"{record.levelname:<7}",
            f"{record.name}:",
            record.getMessage(),
        ]
        parts.extend(f"{k}={v}" for k, v in record_fields(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(
    level: str = "info",
    fmt: str = "text",
    file: str | None = None,
    redact: Redactor | None = None,
) -> None:
    """Send all process logs (ours, aiohttp's, warnings) through one redacting handler."""
    handler: logging.Handler = (
        logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    logging.captureWarnings(True)
    # Our lines never show the caller's file/line, thread or multiprocessing names: skip
    # collecting them for every record (the logging HOWTO's "Optimization" settings).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
