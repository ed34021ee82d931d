"""Processes sharing one store (replicas, ``--workers``): leases, cross-process cancel and
subscribe.

Each process renews its lease every third of ``lease_seconds``; one whose lease ran out (or,
on this host, whose pid is gone) is dead, and the first survivor to notice marks its
unfinished tasks failed. A ``CancelTask`` for another process's task is a row that process
polls for; a ``SubscribeToTask`` there relays the task's stored state changes (and, at the
end, its reply) by polling the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, runtime_checkable

from hector_py.agent.runner import TextDelta
from hector_py.agent.stores.availability import StoreUnavailable
from hector_py.agent.stores.base import Store, Task
from hector_py.agent.stores.owner import gone_from_this_host
from hector_py.agent.stores.traced import TracedStore
from hector_py.agent.tasks import Execution, StatusChanged, TaskManager

log = logging.getLogger("hector.fleet")

POLL_S = 0.25
REMOTE_CANCEL_WAIT_S = 5.0
LEASE_LOST = "interrupted: the process running it stopped (its lease expired)"
NOT_RUNNING = "interrupted: its run ended while the store was unreachable"


@runtime_checkable
class SharedStore(Protocol):
    """A store several processes share, with the lease primitives."""

    owner: str

    async def find_task(self, task_id: str) -> Task | None:
        """The task ``task_id``, whoever's it is."""
        ...

    async def renew_lease(self, seconds: float) -> None:
        """This process is alive for ``seconds`` more."""
        ...

    async def unfinished_owners(self) -> dict[str, bool]:
        """Other owners of unfinished tasks, and whether each lease is current."""
        ...

    async def fail_owned(self, owners: Sequence[str], error: str) -> list[str]:
        """Fail every unfinished task of ``owners``; their ids."""
        ...

    async def own_unfinished(self, before: float) -> list[str]:
        """This process's tasks the store has as unfinished since ``before``."""
        ...

    async def fail_tasks(self, task_ids: Sequence[str], error: str) -> list[str]:
        """Fail the unfinished ones of ``task_ids``; their ids."""
        ...

    async def request_cancel(self, task_id: str) -> bool:
        """Ask the owner of ``task_id`` to cancel it; False if it is finished."""
        ...

    async def take_cancel_requests(self) -> list[str]:
        """This process's tasks others asked to cancel, each once."""
        ...


class Fleet:
    """This process's part in a shared store: its lease, the reaper, remote requests."""

    def __init__(self, shared: SharedStore, tasks: TaskManager, lease_seconds: float) -> None:
        self._shared = shared
        self._tasks = tasks
        self._lease = lease_seconds
        self._background: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take a lease, fail what dead processes left running, and start listening."""
        with contextlib.suppress(StoreUnavailable):
            await self._beat()
        self._tasks.remote = self
        self._loop = asyncio.create_task(self._run())

    async def _run(self) -> None:
        next_beat = time.monotonic() + self._lease / 3
        while True:
            await asyncio.sleep(POLL_S)
            try:
                for task_id in await self._shared.take_cancel_requests():
                    if self._tasks.get(task_id) is not None:  # never back to the store
                        self._spawn(self._tasks.cancel(task_id))
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self._lease / 3
                    await self._beat()
            except StoreUnavailable:
                continue  # readiness reports it; try again next round
            except Exception:
                log.exception("fleet round failed")

    async def _beat(self) -> None:
        await self._shared.renew_lease(self._lease)
        # runs that ended while the store was away could not save their end: fail them
        saved_before = time.time() - self._lease  # not one being started right now
        stale = await self._shared.own_unfinished(saved_before)
        stale = [task_id for task_id in stale if self._tasks.get(task_id) is None]
        if stale:
            await self._shared.fail_tasks(stale, NOT_RUNNING)
        owners = await self._shared.unfinished_owners()
        dead = [owner for owner, live in owners.items() if not live or gone_from_this_host(owner)]
        if dead:
            failed = await self._shared.fail_owned(dead, LEASE_LOST)
            if failed:
                log.warning(
                    "%d task(s) of %d stopped process(es) marked failed",
                    len(failed),
                    len(dead),
                    extra={"task_ids": failed[:20]},
                )

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def cancel(self, task_id: str) -> Task | None:
        """Have the process running ``task_id`` cancel it; the task once it has ended (or as
        it is after a few seconds); ``None`` if it was already finished."""
        if not await self._shared.request_cancel(task_id):
            return None
        deadline = time.monotonic() + REMOTE_CANCEL_WAIT_S
        task = await self._shared.find_task(task_id)
        while task is not None and not task.state.terminal and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S / 2)
            task = await self._shared.find_task(task_id)
        return task

    def follow(self, task: Task) -> Execution:
        """An execution relaying another process's run of ``task`` until it ends."""
        execution = Execution(task)
        self._spawn(self._relay(execution))
        return execution

    async def _relay(self, execution: Execution) -> None:
        task = execution.task
        try:
            while not task.state.terminal:
                await asyncio.sleep(POLL_S)
                try:
                    fresh = await self._shared.find_task(task.id)
                except StoreUnavailable:
                    continue
                if fresh is None:
                    return
                if (fresh.state, fresh.updated_at) == (task.state, task.updated_at):
                    continue
                vars(task).update(vars(fresh))
                if task.state.terminal and task.reply:
                    execution.publish(TextDelta(task.reply))
                execution.publish(StatusChanged(task))
        finally:
            execution.publish(None)

    async def close(self) -> None:
        """Stop listening (the store's close gives up the lease)."""
        self._tasks.remote = None
        for task in [self._loop, *self._background]:
            if task is not None:
                task.cancel()
        pending = [t for t in [self._loop, *self._background] if t is not None]
        if pending:
            await asyncio.wait(pending, timeout=5)


def join_fleet(store: Store, tasks: TaskManager, lease_seconds: float) -> Fleet | None:
    """The fleet membership of a store other processes may share (``None`` for memory)."""
    inner = store.inner if isinstance(store, TracedStore) else store
    return Fleet(inner, tasks, lease_seconds) if isinstance(inner, SharedStore) else None
