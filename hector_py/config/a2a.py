"""``a2a:``: how A2A task streams behave."""

from __future__ import annotations

from pydantic import Field

from hector_py.config.base import Strict


class A2AConfig(Strict):
    """How A2A task streams behave."""

    cancel_on_disconnect: bool = Field(
        False,
        description="Cancel a task when the client that started it leaves its stream or"
        " blocking send (saves tokens; off by default: per the A2A spec a task runs to its"
        " end and can be fetched or resubscribed).",
    )
    keepalive_seconds: float = Field(
        3.0,
        gt=0,
        le=60,
        description="Seconds of silence after which a task stream sends an SSE comment.",
    )
    subscriber_buffer: int = Field(
        1024,
        ge=16,
        le=1_000_000,
        description="Events a stream subscriber may lag behind before it is dropped with an"
        " error event (the task goes on).",
    )
