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
_FIELDS = "_hector_fields"
SPAN_IDS = frozenset({"trace_id", "span_id"})
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    _FIELDS,
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
    """The bound context, the current span's ids and the ``extra=`` fields of one record,
    taken once, in the logging call (every handler, and the run console later, see the
    same)."""
    cached: dict[str, Any] | None = record.__dict__.get(_FIELDS)
    if cached is not None:
        return cached
    fields = dict(_context.get())
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"] = format(span.trace_id, "032x")
        fields["span_id"] = format(span.span_id, "016x")
    fields.update((k, v) for k, v in vars(record).items() if k not in _STANDARD_ATTRS)
    record.__dict__[_FIELDS] = fields
    return fields


class _RedactingFormatter(logging.Formatter):
    """A formatter that redacts every value before it is rendered: JSON escapes ``"`` and
    ``\\``, and ``repr`` escapes more, so a secret holding one would be missed after."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or Redactor()

    def clean(self, value: Any) -> Any:
        """``value`` with every string in it (also in dicts, lists, tuples) redacted."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.clean(v) for k, v in value.items()}
        if type(value) is list or type(value) is tuple:
            return type(value)(self.clean(v) for v in value)
        return value

    def message(self, record: logging.LogRecord) -> str:
        """The record's message, its arguments redacted before ``%`` formats them."""
        if not record.args:
            return self.redact(str(record.msg))
        args = record.args
        cleaned = self.clean(args) if isinstance(args, (dict, tuple)) else args
        return self.redact(str(record.msg) % cleaned)

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """``record_fields``, redacted (but the span's ids, hex we wrote: a known secret
        that happens to be a hex run would corrupt them)."""
        return {k: v if k in SPAN_IDS else self.clean(v) for k, v in record_fields(record).items()}

    def traceback(self, record: logging.LogRecord) -> str | None:
        """The record's traceback, redacted; ``None`` without one."""
        return self.redact(self.formatException(record.exc_info)) if record.exc_info else None


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line: time, level, msg, logger, then context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line."""
        entry: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "msg": self.message(record),
            "logger": record.name,
            "pid": record.process,
        }
        entry.update(self.fields(record))
        error = self.traceback(record)
        if error is not None:
            entry["error"] = error
        return orjson.dumps(entry, default=lambda obj: self.redact(str(obj))).decode()


class TextFormatter(_RedactingFormatter):
    """``TIME LEVEL logger: msg key=value ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The text line."""
        parts = [rfc3339(record.created), f"{record.levelname:<7}", f"{record.name}:"]
        parts.append(self.message(record))
        parts.extend(f"{k}={_text(v, self.redact)}" for k, v in self.fields(record).items())
        line = " ".join(parts)
        error = self.traceback(record)
        return line if error is None else f"{line}\n{error}"


def _text(value: Any, redact: Redactor) -> str:
    """A cleaned field value as text (an object's ``str`` may still hold a secret)."""
    if isinstance(value, (str, int, float)):
        return str(value)
    return redact(str(value))


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
