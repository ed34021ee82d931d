"""Structured output: the final answer read as JSON and validated against the schema with
the same maintained validator the tools use; the problems make the repair prompt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema import validators

from hector_py.llm.base import OutputSchema

MAX_PROBLEMS = 5


@dataclass(frozen=True)
class Structured:
    """The final answer as a JSON value that matches the schema."""

    value: Any


def read(text: str, output: OutputSchema) -> Structured | list[str]:
    """``text`` (a code fence around it is allowed) as a value valid under the schema, or
    the problems found (at most :data:`MAX_PROBLEMS`)."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rstrip().removesuffix("```")
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        return [f"the answer is not JSON ({exc.msg} at character {exc.pos})"]
    validator = validators.validator_for(output.schema)(output.schema)
    problems = [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(value), key=lambda e: e.json_path)
    ]
    return problems[:MAX_PROBLEMS] if problems else Structured(value)


def repair_prompt(problems: list[str]) -> str:
    """The message asking the model, once, for an answer that matches the schema."""
    listed = "\n".join(f"- {p}" for p in problems)
    return (
        "Your answer does not match the required JSON Schema:\n"
        f"{listed}\nAnswer again with only the corrected JSON value."
    )
