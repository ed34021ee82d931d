"""RFC 3339 timestamps, formatted fast: log lines and A2A task states need one each."""

from __future__ import annotations

import math
import time

_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def rfc3339(moment: float) -> str:
    """``moment`` (Unix seconds) as RFC 3339 UTC with milliseconds and ``Z``, exactly as
    ``datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")`` writes it
    (same rounding), formatting the date and time once per second."""
    global _second
    fraction, whole = math.modf(moment)
    seconds, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    cached = _second
    if cached[0] != seconds:
        cached = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{micros // 1000:03d}Z"
