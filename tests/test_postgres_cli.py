"""``hector validate --check-connections`` against a real PostgreSQL, and ``serve`` when the
database is not there."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from hector_py.agent.stores.pg_schema import LATEST
from tests.conftest import hector, start_server
from tests.postgres_server import Postgres, new_schema


def config(tmp_path: Path, dsn: str, schema: str) -> Path:
    path = tmp_path / "hector.yaml"
    path.write_text(f"storage: {{type: postgres, dsn: '{dsn}', schema: {schema}}}\n")
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once closed


def test_check_connections_reports_the_schema_version(postgres: Postgres, tmp_path: Path) -> None:
    schema = new_schema()
    path = config(tmp_path, postgres.dsn, schema)
    fresh = hector("validate", str(path), "--check-connections")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    wanted = f"schema '{schema}' at version 0 of {LATEST} (serve migrates it at start-up)"
    assert wanted in fresh.stdout
    start_server(tmp_path, "-c", str(path)).stop()  # serve migrates
    migrated = hector("validate", str(path), "--check-connections", "--format", "json")
    report = json.loads(migrated.stdout)
    assert report["valid"] is True
    at = f"at version {LATEST} of {LATEST}"
    assert report["store"] == f"PostgreSQL reachable; schema '{schema}' {at}"


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    dsn = f"postgresql://hector:s3cret-pw@127.0.0.1:{closed_port()}/hector"
    path = config(tmp_path, dsn, "hector")
    checked = hector("validate", str(path), "--check-connections")
    assert checked.returncode == 1
    [line] = checked.stdout.splitlines()
    assert line.startswith("storage.dsn: cannot connect to PostgreSQL: ") and str(path) in line
    served = hector("serve", "-c", str(path), "--port", "0")
    assert served.returncode == 1 and "Traceback" not in served.stderr
    assert "store unavailable: ConnectionRefusedError" in served.stderr
    for output in (checked.stdout, served.stdout, served.stderr):
        assert "s3cret-pw" not in output
    assert hector("validate", str(path)).returncode == 0  # no connection unless asked
