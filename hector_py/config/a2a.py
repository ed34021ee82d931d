"""``a2a:``: how A2A task streams behave."""

from __future__ import annotations

from pydantic import Field

from hector_py.config.automation import RetryPolicy
from hector_py.config.base import Strict


class FilesConfig(Strict):
    """Files in incoming messages (A2A file parts, ``/v1`` image parts)."""

    max_bytes: int = Field(
        10_485_760,
        ge=1024,
        description="Largest file a message may carry or point to, in bytes (inline files"
        " are also bounded by server.max_body_bytes).",
    )
    fetch_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts whose URLs the server fetches for file parts given by URL (none by"
        " default: such parts are refused). No redirects are followed.",
    )
    fetch_timeout: float = Field(10.0, gt=0, le=300, description="Seconds to fetch one URL.")


class PushConfig(Strict):
    """A2A push notifications: a client registers URLs per task and each state change of
    the task is POSTed there."""

    enabled: bool = Field(True, description="Offer push notifications (the card says so).")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts a push URL may name even when they resolve to a loopback, private"
        " or link-local address (refused otherwise: no requests into your network).",
    )
    max_configs_per_task: int = Field(10, ge=1, le=100, description="Push URLs per task.")
    timeout: float = Field(10.0, gt=0, le=120, description="Seconds per delivery attempt.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


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
    push_notifications: PushConfig = Field(
        default_factory=PushConfig,
        description="Push notifications: on by default; URLs into private networks refused.",
    )
    files: FilesConfig = Field(
        default_factory=FilesConfig,
        description="Files in incoming messages: size cap and the hosts URLs may point to.",
    )
