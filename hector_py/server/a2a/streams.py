"""Task streams as SSE: a stream's end changes nothing about the task.

Every stream (the originator's or a ``SubscribeToTask`` watcher's) starts with the task as
it is, including the reply streamed so far, and then relays each event. A quiet run gets an
SSE comment every ``a2a.keepalive_seconds``. The reply goes out as the model writes it: each
chunk appends to the artifact and none is empty; a stream cannot know a chunk is the last
until the run ends, so ``lastChunk`` is set only on a reply that came in one piece, and the
terminal status update closes the stream. A client that leaves only closes its own stream
(unless ``a2a.cancel_on_disconnect`` and it started the task); a subscriber that falls
``a2a.subscriber_buffer`` events behind gets an error event and is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web

from hector_py.agent.runner import TextDelta, ToolCallFinished, ToolCallStarted
from hector_py.agent.stores import Task, TaskState
from hector_py.agent.tasks import Execution, Overflowed, StatusChanged, TaskEvent
from hector_py.server.a2a.errors import SUBSCRIBER_TOO_SLOW, RpcError, rest_error
from hector_py.server.a2a.params import Call
from hector_py.server.sse import open_sse, send_comment, send_events

log = logging.getLogger("hector.a2a")

VERSION_HEADER = "A2A-Version"


async def relay(call: Call, execution: Execution, *, started: bool) -> web.StreamResponse:
    """Relay ``execution`` as SSE until it ends or the client leaves.

    For a run just ``started``, the first event (the task) goes out after one more turn of
    the loop: the run's model request, queued by then, leaves first."""
    config = call.state.config.a2a
    subscription = execution.subscribe(config.subscriber_buffer)
    task, partial = subscription.snapshot
    stream = _Stream(call, task, partial)
    stream.pending.append(call.dialect.task_result(task, partial=partial))
    try:
        if started:
            await asyncio.sleep(0)
        await stream.flush()
        while True:
            try:
                event = await subscription.next(config.keepalive_seconds)
            except TimeoutError:
                await send_comment(await stream.open())
                continue
            if event is None:
                break
            if isinstance(event, Overflowed):
                await stream.fail(RpcError(SUBSCRIBER_TOO_SLOW, "stream fell behind; dropped"))
                break
            stream.add(event)
            await stream.flush()
    except (ConnectionError, asyncio.CancelledError) as exc:
        if started and config.cancel_on_disconnect:
            log.info("client left its stream; cancelling the task (a2a.cancel_on_disconnect)")
            await asyncio.shield(call.state.tasks.cancel(task.id))
        else:
            log.info("client left a stream; the task goes on")
        if isinstance(exc, asyncio.CancelledError):
            raise
    finally:
        subscription.close()
    return await stream.open()


class _Stream:
    """One SSE response and the results waiting to go out on it."""

    def __init__(self, call: Call, task: Task, partial: str) -> None:
        self.call, self.task = call, task
        self.pending: list[dict[str, Any]] = []
        self.streamed_text = bool(partial)
        self._response: web.StreamResponse | None = None

    async def open(self) -> web.StreamResponse:
        """The response, its headers sent with the first write."""
        if self._response is None:
            headers = {VERSION_HEADER: self.call.dialect.version}
            self._response = await open_sse(self.call.request, headers)
        return self._response

    def add(self, event: TaskEvent) -> None:
        """Queue the results ``event`` makes."""
        dialect = self.call.dialect
        task = self.task
        if isinstance(event, TextDelta):
            update = dialect.artifact_update(
                task, event.text, append=self.streamed_text, last=False
            )
            self.pending.append(update)
            self.streamed_text = True
        elif isinstance(event, ToolCallStarted | ToolCallFinished):
            self.pending.append(dialect.tool_update(task, event))
        elif isinstance(event, StatusChanged):
            if event.task.state == TaskState.COMPLETED and not self.streamed_text:
                # a reply that came in one piece (no deltas): its one and last chunk
                parts = dialect.reply_parts(task, task.reply or "")
                update = dialect.artifact_update(task, "", append=False, last=True, parts=parts)
                self.pending.append(update)
            elif event.task.state == TaskState.COMPLETED and task.data is not None:
                # the text streamed: the JSON answer of an output schema ends the artifact
                parts = [dialect.data_part(task.data)]
                update = dialect.artifact_update(task, "", append=True, last=True, parts=parts)
                self.pending.append(update)
            self.pending.append(dialect.status_update(task))

    async def flush(self) -> None:
        """Send every pending result in one write."""
        response = await self.open()
        await send_events(response, *(self._payload(result) for result in self.pending))
        self.pending.clear()

    async def fail(self, error: RpcError) -> None:
        """End the stream with ``error`` as its last event."""
        if self.call.rest:
            body = rest_error(error)[1]
        else:
            body = {"jsonrpc": "2.0", "id": self.call.request_id, "error": error.body(details=True)}
        await send_events(await self.open(), orjson.dumps(body))

    def _payload(self, result: dict[str, Any]) -> bytes:
        if self.call.rest:
            return orjson.dumps(result)
        return orjson.dumps({"jsonrpc": "2.0", "id": self.call.request_id, "result": result})
