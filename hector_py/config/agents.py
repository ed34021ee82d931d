"""``agents:``: an LLM, an instruction and the tools it may use."""

from __future__ import annotations

from typing import Any

from jsonschema import exceptions as schema_exceptions
from jsonschema import validators
from pydantic import Field, field_validator

from hector_py.config.automation import NotificationConfig, ScheduleTrigger, WebhookTrigger
from hector_py.config.base import DEFAULT_LLM, Strict


class SkillConfig(Strict):
    """One skill the agent card advertises (A2A ``AgentSkill``)."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)


class AgentConfig(Strict):
    """An agent: an LLM, an instruction and the tools it may use."""

    name: str | None = Field(None, description="Display name (default: the agent's key).")
    description: str = "A hector-py agent."
    llm: str = DEFAULT_LLM
    instruction: str = "You are a helpful assistant."
    tools: list[str] = Field(default_factory=list)
    max_concurrent_runs: int | None = Field(
        None, ge=1, description="This agent's runs at once (within server.max_concurrent_runs)."
    )
    max_iterations: int = Field(
        10, ge=1, le=100, description="Most LLM calls in one run (tool loops included)."
    )
    history_messages: int = Field(
        50, ge=0, description="Most earlier session messages sent to the model."
    )
    max_reply_chars: int = Field(
        1_000_000,
        ge=1,
        description="Longest reply in characters (all model calls of a run); a longer one "
        "fails the run.",
    )
    guardrails: list[str] = Field(
        default_factory=list, description="Names of top-level guardrails, applied in order."
    )
    notifications: list[NotificationConfig] = Field(
        default_factory=list, description="Outbound webhooks on task.started/completed/failed."
    )
    trigger: ScheduleTrigger | WebhookTrigger | None = Field(
        None, discriminator="type", description="Run on a schedule or on a signed webhook."
    )
    knowledge: list[str] = Field(
        default_factory=list,
        description="Names of document_stores the agent searches (the search_knowledge tool).",
    )
    inject: int | None = Field(
        None,
        ge=1,
        le=50,
        description="Instead of the tool: add this many best chunks to the prompt first.",
    )
    skills: list[SkillConfig] = Field(
        default_factory=list,
        description="Skills the agent card lists, so orchestrators choose well (default: one"
        " skill from the agent's name, description and tools).",
    )
    approval_timeout: float = Field(
        3600.0,
        gt=0,
        description="Seconds a run waits for a person to approve its tool calls; then it fails.",
    )
    output_schema: dict[str, Any] | None = Field(
        None,
        description="JSON Schema of the final answer: sent to the model in its provider's"
        " form, the answer validated (one repair round), and added to A2A replies as a data"
        " part.",
    )

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            try:
                validators.validator_for(schema).check_schema(schema)
            except schema_exceptions.SchemaError as exc:
                raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return schema
