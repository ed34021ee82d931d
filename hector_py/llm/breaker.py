"""Circuit breakers: a model that keeps failing is skipped for a cooldown, then given one
trial call (half-open); its state is what ``/health`` shows for it, learnt from real calls
only (never a paid probe)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hector_py.config.llm import CircuitBreakerConfig
from hector_py.llm.base import LLM
from hector_py.llm.cache import ResponseCache

log = logging.getLogger("hector.llm")
State = Literal["ok", "degraded", "open"]
STATE_VALUES: dict[State, int] = {"ok": 0, "degraded": 1, "open": 2}
"""``hector_llm_circuit_state`` values."""


@dataclass
class Breaker:
    """The circuit of one model. ``ok``: no failure in the window; ``degraded``: failures
    below the threshold, or a trial call pending; ``open``: skipped until the cooldown ends.
    ``on_change`` hears each transition (once)."""

    name: str
    config: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    on_change: Callable[[State], None] | None = None
    clock: Callable[[], float] = time.monotonic
    last_error: str | None = None
    _failures: deque[float] = field(default_factory=deque)
    _opened_at: float | None = None
    _trial: bool = False
    _state: State = "ok"

    @property
    def state(self) -> State:
        """The state as of now."""
        self._expire(self.clock())
        return self._state

    def open_to_calls(self) -> bool:
        """Whether ``allow`` would let a call through now (claiming nothing)."""
        if self._opened_at is None:
            return True
        return not self._trial and self.clock() - self._opened_at >= self.config.cooldown_seconds

    def allow(self) -> bool:
        """Whether a call may go to the model now (after the cooldown: one trial at a time,
        claimed by this call)."""
        if not self.open_to_calls():
            return False
        if self._opened_at is not None:
            self._trial = True
            self._set("degraded")
        return True

    def untried(self) -> None:
        """A call ``allow`` let through was not made (a rate limit held it back): a
        pending trial is open to the next call again."""
        self._trial = False

    def success(self) -> None:
        """A call succeeded: the circuit closes."""
        self._failures.clear()
        self._opened_at, self._trial, self.last_error = None, False, None
        self._set("ok")

    def failure(self, reason: str) -> None:
        """A call failed for a reason worth skipping the model for."""
        now = self.clock()
        self.last_error = reason
        self._failures.append(now)
        self._expire(now)
        if self._trial or len(self._failures) >= self.config.failure_threshold:
            self._opened_at, self._trial = now, False
            self._set("open")
        elif self._opened_at is None:
            self._set("degraded")

    def health(self) -> dict[str, Any]:
        """For ``/health``: ``ok`` or ``degraded`` (a model never makes the server unready)."""
        state = self.state
        out: dict[str, Any] = {"status": "ok" if state == "ok" else "degraded", "state": state}
        if self.last_error is not None and state != "ok":
            out["last_error"] = self.last_error
        return out

    def _expire(self, now: float) -> None:
        window = self.config.window_seconds
        while self._failures and now - self._failures[0] > window:
            self._failures.popleft()
        if self._opened_at is None and not self._failures and self._state == "degraded":
            self._set("ok")

    def _set(self, state: State) -> None:
        if state == self._state:
            return
        self._state = state
        log.info("model %s: circuit %s", self.name, state, extra={"llm": self.name})
        if self.on_change is not None:
            self.on_change(state)


@dataclass(frozen=True)
class Model:
    """A configured model (an ``llms:`` key) and its circuit."""

    name: str
    llm: LLM
    breaker: Breaker | None = None
    cache: ResponseCache | None = None
