"""``--workers N``: N processes sharing the supervisor's sockets; metrics add up across them.

The supervisor binds the sockets, points prometheus_client at a shared directory
(multiprocess mode, set before it is imported), forks the workers, restarts one that
crashes, and on SIGINT/SIGTERM stops them all and waits for their graceful drain.
The worker in slot 0 alone runs the cron schedules, so each time fires once; its
replacement starts only after it died, so none fires twice (a time due meanwhile is missed).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from multiprocessing.process import BaseProcess

from hector_py.config.model import Config
from hector_py.observability import MULTIPROC_ENV
from hector_py.server.listeners import Listeners, bind_listeners

log = logging.getLogger("hector.workers")

MAX_RESTARTS_PER_WORKER = 5
STOP_GRACE_S = 10.0


def _work(config: Config, listeners: Listeners, schedules: bool) -> None:
    """A worker's life: serve on the inherited sockets until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor sends SIGTERM
    # Forked with the supervisor's SIGTERM handler (which only sets a flag there): until
    # serving installs its own, SIGTERM must end a worker, not be ignored.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from hector_py.server.lifecycle import serve

    asyncio.run(serve(config, listeners, schedules=schedules))


def run_workers(config: Config) -> int:
    """Supervise ``server.workers`` processes; returns the exit code."""
    metrics_dir = tempfile.mkdtemp(prefix="hector-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    from hector_py.agent.stores import prepare_store
    from hector_py.server.app import check_buildable
    from hector_py.server.lifecycle import StartupFailed, announce, starting

    try:
        asyncio.run(starting(check_buildable(config)))  # fail here, not in N crashing workers
        asyncio.run(starting(prepare_store(config.storage)))  # migrate once, not N at once
        listeners = bind_listeners(config)
    except StartupFailed as exc:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        log.error("start-up failed: %s", exc)
        return 1
    except BaseException:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        raise

    context = multiprocessing.get_context("fork")
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def spawn(slot: int) -> BaseProcess:
        args = (config, listeners, slot == 0)
        process = context.Process(target=_work, args=args, daemon=False)
        process.start()
        return process

    workers = [spawn(slot) for slot in range(config.server.workers)]
    restarts = 0
    announce(config, listeners)
    try:
        while not stopping:
            for index, process in enumerate(workers):
                if process.is_alive() or stopping:
                    continue
                _mark_dead(process)
                restarts += 1
                if restarts > MAX_RESTARTS_PER_WORKER * len(workers):
                    log.error("workers keep crashing; giving up")
                    return 1
                log.warning(
                    "worker %s exited with %s; starting another", process.pid, process.exitcode
                )
                workers[index] = spawn(index)
            time.sleep(0.1)
        return _stop_all(workers, config.server.shutdown_timeout + STOP_GRACE_S)
    finally:
        listeners.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _stop_all(workers: list[BaseProcess], timeout: float) -> int:
    for process in workers:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.warning("worker %s did not stop in time; killing it", process.pid)
            process.kill()
            process.join(5)
    log.info("all workers stopped")
    return 0 if all(p.exitcode == 0 for p in workers) else 1


def _mark_dead(process: BaseProcess) -> None:
    from prometheus_client import multiprocess

    if process.pid is not None:
        multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
