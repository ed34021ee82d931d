"""Notifications and triggers: what an agent sends out and what starts it."""

from __future__ import annotations

from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from hector_py.config.base import Strict

NotificationEvent = Literal["task.started", "task.completed", "task.failed"]
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = get_args(NotificationEvent)


class RetryPolicy(Strict):
    """Attempts of one delivery; waits double from ``initial_delay`` up to ``max_delay``."""

    max_attempts: int = Field(3, ge=1, le=20)
    initial_delay: float = Field(1.0, ge=0)
    max_delay: float = Field(30.0, ge=0)


class NotificationConfig(Strict):
    """An outbound webhook: a JSON POST to ``url`` on each of ``events``."""

    url: str = Field(pattern=r"^https?://")
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(NOTIFICATION_EVENTS), min_length=1
    )
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    secret: SecretStr | None = Field(
        None, description="Signs the body: X-Hector-Signature: sha256=<hex HMAC-SHA256>."
    )
    timeout: float = Field(10.0, gt=0, description="Seconds per attempt.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


class _Trigger(Strict):
    tenant: str = Field(
        "", description="Tenant the runs belong to: their tokens count against its budget."
    )


class ScheduleTrigger(_Trigger):
    """Run the agent on a cron schedule inside ``serve``."""

    type: Literal["schedule"]
    cron: str = Field(description="Five-field cron expression, e.g. '*/5 * * * *'.")
    timezone: str = Field("UTC", description="IANA time zone the cron fields are read in.")
    input: str = Field("Scheduled run.", min_length=1, description="The message each run gets.")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise PydanticCustomError(
                "cron", "'{value}' is not a five-field cron expression", {"value": value}
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "unknown time zone '{value}'", {"value": value}
            ) from None
        return value


class WebhookTrigger(_Trigger):
    """Run the agent on a signed ``POST /webhooks/{agent}`` (or ``path``)."""

    type: Literal["webhook"]
    path: str | None = Field(
        None,
        pattern=r"^/webhooks(/[A-Za-z0-9._~-]+)+$",
        description="An extra route under /webhooks/ for this agent.",
    )
    secret: SecretStr = Field(description="HMAC-SHA256 key the sender signs the body with.")
    signature_header: str = "X-Hector-Signature"
    timestamp_header: str | None = Field(
        "X-Hector-Timestamp",
        description="Header with the send time (Unix seconds); the signature then covers "
        "'{timestamp}.{body}'. null: it covers the body only (GitHub's), with weaker "
        "replay protection.",
    )
    tolerance: float = Field(
        300.0, gt=0, description="Seconds a signed timestamp may be off from now."
    )
    delivery_header: str = Field(
        "X-Hector-Delivery",
        description="Header with the sender's delivery id; one seen before is refused (409).",
    )
    input: str = Field(
        "{body}",
        min_length=1,
        description="Template of the message: {body} is the raw body, {body.a.b} a JSON field.",
    )
    response: Literal["sync", "async"] = Field(
        "sync", description="sync: answer with the result; async: 202 with the task id at once."
    )
