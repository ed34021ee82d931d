"""The two A2A dialects' wire shapes: v1.0 (proto JSON) and v0.3 (``kind``-tagged)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hector_py.agent.runner import ToolCallFinished, ToolCallStarted
from hector_py.agent.stores import ChatTurn, Task, TaskState, new_id
from hector_py.timestamps import rfc3339

STATE_NAMES = {
    state.value: "TASK_STATE_" + state.value.upper().replace("-", "_") for state in TaskState
}


@dataclass(frozen=True)
class Dialect:
    """How one protocol version names roles and states and shapes parts and results."""

    version: str
    user_role: str
    agent_role: str
    kinds: bool  # v0.3 tags objects with "kind" and returns results unwrapped

    def state(self, state: TaskState) -> str:
        """The wire name of a task state."""
        return state.value if self.kinds else STATE_NAMES[state.value]

    def parse_state(self, name: str) -> TaskState | None:
        """A wire state name back to a TaskState (``None`` if unknown)."""
        for state in TaskState:
            if name == self.state(state):
                return state
        return None

    def _tag(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"kind": kind, **body} if self.kinds else body

    def _wrap(self, key: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """A stream/send result: ``{key: body}`` in 1.0, ``body`` with ``kind`` in 0.3."""
        return {"kind": kind, **body} if self.kinds else {key: body}

    def text_part(self, text: str) -> dict[str, Any]:
        """A text part."""
        return self._tag("text", {"text": text})

    def data_part(self, data: Any) -> dict[str, Any]:
        """A structured-data part (v0.3 takes objects only: another value is wrapped as
        ``{"value": ...}``)."""
        if self.kinds and not isinstance(data, dict):
            data = {"value": data}
        return self._tag("data", {"data": data})

    def reply_parts(self, task: Task, text: str) -> list[dict[str, Any]]:
        """The reply artifact's parts: the text, and the JSON answer of an output schema."""
        parts = [self.text_part(text)]
        if task.data is not None:
            parts.append(self.data_part(task.data))
        return parts

    def message(
        self, turn: ChatTurn, task: Task, parts: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """One message of ``task``."""
        return self._tag(
            "message",
            {
                "messageId": turn.id,
                "role": self.user_role if turn.role == "user" else self.agent_role,
                "parts": parts if parts is not None else [self.text_part(turn.text)],
                "contextId": task.context_id,
                "taskId": task.id,
            },
        )

    def status(self, task: Task) -> dict[str, Any]:
        """The task's status object (with the failure reason as a message)."""
        status: dict[str, Any] = {
            "state": self.state(task.state),
            "timestamp": rfc3339(task.updated_at),
        }
        if task.error and task.state.terminal:
            status["message"] = self.message(ChatTurn(new_id(), "agent", task.error), task)
        elif task.state == TaskState.INPUT_REQUIRED and task.pending is not None:
            asked = task.pending["question"]
            parts = [self.text_part(asked["text"]), self.data_part(asked["data"])]
            status["message"] = self.message(
                ChatTurn(new_id(), "agent", asked["text"]), task, parts
            )
        return status

    def artifact(self, task: Task, parts: list[dict[str, Any]]) -> dict[str, Any]:
        """The reply artifact of ``task`` with ``parts``."""
        return {"artifactId": f"{task.id}-reply", "name": "reply", "parts": parts}

    def task(
        self,
        task: Task,
        history_length: int | None = None,
        *,
        artifacts: bool = True,
        partial: str = "",
    ) -> dict[str, Any]:
        """A task object (no wrapper): ``history_length`` 0 omits the history, and
        ``artifacts=False`` the reply; ``partial`` is the reply streamed so far of a task
        still running."""
        out: dict[str, Any] = {
            "id": task.id,
            "contextId": task.context_id,
            "status": self.status(task),
        }
        if history_length != 0:
            history = task.history[-history_length:] if history_length else task.history
            out["history"] = [self.message(turn, task) for turn in history]
        reply = task.reply if task.reply is not None else (partial or None)
        if artifacts and reply is not None:
            parts = self.reply_parts(task, reply) if task.reply is not None else None
            out["artifacts"] = [self.artifact(task, parts or [self.text_part(reply)])]
        if task.reply is not None:
            usage: dict[str, Any] = {
                "promptTokens": task.prompt_tokens,
                "completionTokens": task.completion_tokens,
            }
            if task.cost_usd:
                usage["costUsd"] = round(task.cost_usd, 9)
            out["metadata"] = {"usage": usage, **({"model": task.model} if task.model else {})}
        return self._tag("task", out)

    def task_result(
        self, task: Task, history_length: int | None = None, *, partial: str = ""
    ) -> dict[str, Any]:
        """A send result or the first stream event: the task, wrapped for 1.0."""
        return self._wrap("task", "task", self.task(task, history_length, partial=partial))

    def status_update(self, task: Task, message: dict[str, Any] | None = None) -> dict[str, Any]:
        """A status-update stream event (``final`` on terminal states, 0.3 only)."""
        status = self.status(task)
        if message is not None:
            status["message"] = message
        body: dict[str, Any] = {"taskId": task.id, "contextId": task.context_id, "status": status}
        if self.kinds:
            body["final"] = task.state.terminal
        return self._wrap("statusUpdate", "status-update", body)

    def artifact_update(
        self,
        task: Task,
        text: str,
        *,
        append: bool,
        last: bool,
        parts: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """An artifact-update stream event carrying a piece of the reply (never empty), or
        the ``parts`` given."""
        parts = parts if parts is not None else [self.text_part(text)]
        body = {
            "taskId": task.id,
            "contextId": task.context_id,
            "artifact": self.artifact(task, parts),
            "append": append,
            "lastChunk": last,
        }
        return self._wrap("artifactUpdate", "artifact-update", body)

    def tool_update(self, task: Task, event: ToolCallStarted | ToolCallFinished) -> dict[str, Any]:
        """A working-state status update describing a tool call as it happens."""
        call = event.call
        data: dict[str, Any] = {"tool_call_id": call.id, "tool": call.name}
        if isinstance(event, ToolCallStarted):
            data.update(type="tool_call", arguments=call.arguments)
            text = f"calling tool {call.name}"
        else:
            data.update(type="tool_result", ok=event.outcome.ok, output=event.outcome.output)
            text = f"tool {call.name} {'succeeded' if event.outcome.ok else 'failed'}"
        turn = ChatTurn(new_id(), "agent", text)
        message = self.message(turn, task, [self.text_part(text), self.data_part(data)])
        return self.status_update(task, message)


V1 = Dialect("1.0", user_role="ROLE_USER", agent_role="ROLE_AGENT", kinds=False)
V03 = Dialect("0.3", user_role="user", agent_role="agent", kinds=True)
