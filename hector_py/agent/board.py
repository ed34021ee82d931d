"""The runs in flight, for the run console (``/console/api/runs``) and ``hector top``:
whose, which agent, what it is doing now and the tokens it used so far. Bounded: past
``MAX_RUNS`` the oldest entries are forgotten (their runs go on)."""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hector_py.agent.calls import UsageMeter

MAX_RUNS = 10_000


@dataclass
class LiveRun:
    """One run in flight; ``step`` says what it does now."""

    id: int
    agent: str
    tenant: str
    session: str | None
    depth: int
    meter: UsageMeter
    started: float = field(default_factory=time.time)
    step: str = "starting"
    span_ids: Callable[[], str | None] | None = None
    """The run span's ``trace_id-span_id`` (``RunScope.span_ids``), read when shown."""

    def view(self, now: float) -> dict[str, Any]:
        """The run as the console shows it."""
        ids = self.span_ids() if self.span_ids is not None else None
        return {
            "id": self.id,
            "agent": self.agent,
            "tenant": self.tenant or "anonymous",
            "session": self.session,
            "depth": self.depth,
            "state": "working",
            "step": self.step,
            "elapsed_s": round(now - self.started, 3),
            "prompt_tokens": self.meter.prompt_tokens,
            "completion_tokens": self.meter.completion_tokens,
            "cost_usd": round(self.meter.cost_usd, 6),
            "trace_id": ids.partition("-")[0] if ids else None,
        }


class RunBoard:
    """Every run in flight in this process."""

    def __init__(self) -> None:
        self._runs: OrderedDict[int, LiveRun] = OrderedDict()
        self._ids = itertools.count(1)

    def start(
        self, agent: str, tenant: str, session: str | None, depth: int, meter: UsageMeter
    ) -> LiveRun:
        """A run begins."""
        run = LiveRun(next(self._ids), agent, tenant, session, depth, meter)
        self._runs[run.id] = run
        while len(self._runs) > MAX_RUNS:
            self._runs.popitem(last=False)
        return run

    def end(self, run: LiveRun) -> None:
        """A run is over (answered, failed, paused or canceled)."""
        self._runs.pop(run.id, None)

    def views(self) -> list[dict[str, Any]]:
        """Every run in flight, oldest first."""
        now = time.time()
        return [run.view(now) for run in list(self._runs.values())]
