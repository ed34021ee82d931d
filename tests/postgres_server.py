"""A real PostgreSQL for the tests: Debian's server binaries, a throwaway cluster on a free
127.0.0.1 port, started once per test session (as user ``postgres`` when run as root, which
PostgreSQL refuses to run as). Each test gets its own schema, so tests never see each
other's rows."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_S = 30


def _bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql); .ci/run does")
    return Path(versions[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Postgres:
    """A running cluster: ``dsn`` reaches database ``postgres`` as superuser ``hector``."""

    data_dir: Path
    port: int
    bin_dir: Path

    @property
    def dsn(self) -> str:
        """The connection string (no password: trust on loopback)."""
        return f"postgresql://hector@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=START_TIMEOUT_S + 10)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-o", options, "-l",
            str(self.data_dir / "server.log"), "-w", "-t", str(START_TIMEOUT_S), "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash as far as clients can tell)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")


def new_schema() -> str:
    """A fresh schema name for one test."""
    return f"t_{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def cluster() -> Iterator[Postgres]:
    """A fresh cluster, running until the block ends (also used by scripts/bench_stores.py)."""
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="hector-pg-"))
    data_dir = root / "data"
    data_dir.mkdir(mode=0o700)
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (root, data_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
    server = Postgres(data_dir, _free_port(), bin_dir)
    server._run("initdb", "-D", str(data_dir), "-A", "trust", "-U", "hector", "-E", "UTF8",
                "--no-sync")  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop("immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL for the whole test session."""
    with cluster() as server:
        yield server
