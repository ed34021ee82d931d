"""Whether the store answers: a shared store (PostgreSQL) can go away and come back; the
server then fails readiness and answers 503 ``store unavailable`` until it does."""

from __future__ import annotations

import logging

log = logging.getLogger("hector.store")


class StoreUnavailable(Exception):
    """The store cannot be reached right now (the request may be retried later)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"store unavailable: {reason}")
        self.reason = reason


class StoreHealth:
    """The store's last known reachability, reported by the store and read by the probes."""

    def __init__(self) -> None:
        self.reason: str | None = None

    @property
    def ok(self) -> bool:
        """True while the store answers."""
        return self.reason is None

    def failed(self, reason: str) -> None:
        """The store did not answer (logged once per outage)."""
        if self.reason is None:
            log.error("store unavailable: %s", reason)
        self.reason = reason

    def recovered(self) -> None:
        """The store answered again."""
        if self.reason is not None:
            log.info("store available again")
        self.reason = None
