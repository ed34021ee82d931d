"""``python -m tests.fakes.fast_clock serve --workers N ...``: ``hector`` whose workers'
schedules run on a clock ``SPEED`` times fast, so an every-minute cron fires every second.

Every worker, replacements included, reads the same clock: the supervisor's start time
plus ``SPEED`` times the wall time since. Only the workers are patched, once the
supervisor has put prometheus_client in multiprocess mode (importing the triggers here
would import it too early).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime

from hector_py.cli import main
from hector_py.config.model import Config
from hector_py.server import workers
from hector_py.server.listeners import Listeners

SPEED = 60
# replicas started apart share one clock when given the same FAST_CLOCK_START
START = float(os.environ.get("FAST_CLOCK_START") or time.time())
_work = workers._work


def _now(_clock: object) -> datetime:
    return datetime.fromtimestamp(START + (time.time() - START) * SPEED, UTC)


async def _sleep_until(clock: object, when: datetime) -> None:
    while (left := (when - _now(clock)).total_seconds()) > 0:
        await asyncio.sleep(left / SPEED)


def _fast_clock() -> None:
    from hector_py.server.triggers import Clock

    Clock.now = _now  # type: ignore[method-assign,assignment]
    Clock.sleep_until = _sleep_until  # type: ignore[method-assign,assignment]


def _fast_work(config: Config, listeners: Listeners, schedules: bool) -> None:
    _fast_clock()
    _work(config, listeners, schedules)


if __name__ == "__main__":
    workers._work = _fast_work
    if "--workers" not in sys.argv:  # one process: no multiprocess metrics to wait for
        _fast_clock()
    main()
