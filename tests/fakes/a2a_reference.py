"""A third-party A2A server built from the a2a-sdk's own server components (the
reference implementation): ``DefaultRequestHandler`` with an echo executor, its JSON-RPC
and agent-card routes under ``/echo``, served by uvicorn on 127.0.0.1::

    python -m tests.fakes.a2a_reference PORT

It answers every message with ``reference echo: <text>`` in an artifact."""

from __future__ import annotations

import sys

import uvicorn
from a2a.helpers import new_task
from a2a.server.agent_execution.agent_executor import AgentExecutor
from a2a.server.agent_execution.context import RequestContext
from a2a.server.events.event_queue_v2 import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes.agent_card_routes import create_agent_card_routes
from a2a.server.routes.jsonrpc_routes import create_jsonrpc_routes
from a2a.server.tasks.inmemory_task_store import InMemoryTaskStore
from a2a.server.tasks.task_updater import TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
    TaskState,
)
from starlette.applications import Starlette


class Echo(AgentExecutor):
    """Echoes the user's text as the task's artifact."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = new_task(
            context.task_id or "", context.context_id or "", TaskState.TASK_STATE_WORKING
        )
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        text = f"reference echo: {context.get_user_input()}"
        await updater.add_artifact([Part(text=text)], name="reply")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()


def app(port: int) -> Starlette:
    url = f"http://127.0.0.1:{port}/echo"
    card = AgentCard(
        name="reference-echo",
        description="The a2a-sdk reference server, echoing.",
        version="1.0",
        capabilities=AgentCapabilities(streaming=True),
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        skills=[AgentSkill(id="echo", name="Echo", description="Says it back.", tags=["echo"])],
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
    )
    handler = DefaultRequestHandler(Echo(), InMemoryTaskStore(), card)
    routes = create_jsonrpc_routes(handler, "/echo")
    routes += create_agent_card_routes(card, card_url="/echo/.well-known/agent-card.json")
    return Starlette(routes=routes)


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(app(port), host="127.0.0.1", port=port, log_level="warning")
