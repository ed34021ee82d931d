"""``hector validate --check-connections`` against a real PostgreSQL (the storage and the
document stores' index databases), and ``serve`` when the database is not there."""

from __future__ import annotations

import json
import socket
import subprocess
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


def test_check_connections_checks_the_index_databases(postgres: Postgres, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    storage, own = new_schema(), new_schema()
    path = tmp_path / "hector.yaml"

    def check(storage_dsn: str, manual_dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
        path.write_text(
            f"storage: {{type: postgres, dsn: '{storage_dsn}', schema: {storage}}}\n"
            "document_stores:\n"  # handbook's index is on the storage database
            f"  handbook: {{source: {{path: '{tmp_path / 'docs'}'}}, index: {{type: postgres}}}}\n"
            f"  manual:\n    source: {{path: '{tmp_path / 'docs'}'}}\n"
            f"    index: {{type: postgres, dsn: '{manual_dsn}', schema: {own}}}\n"
        )
        return hector("validate", str(path), "--check-connections", *args)

    closed = f"postgresql://hector:s3cret-pw@127.0.0.1:{closed_port()}/hector"
    down = check(postgres.dsn, closed)
    assert down.returncode == 1
    [line] = down.stdout.splitlines()
    assert line.startswith("document_stores.manual.index.dsn: cannot connect to PostgreSQL: ")
    assert line.endswith(f"({path})") and "s3cret-pw" not in down.stdout + down.stderr
    storage_down = check(closed, postgres.dsn)  # handbook's index fails with it: said once
    assert storage_down.returncode == 1
    [line] = storage_down.stdout.splitlines()
    assert line.startswith("storage.dsn: cannot connect to PostgreSQL: ")

    fresh = check(postgres.dsn, postgres.dsn)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    note = f"at version 0 of {LATEST} (serve migrates it at start-up)"
    assert fresh.stdout.splitlines() == [
        f"{path}: valid",
        f"storage: PostgreSQL reachable; schema '{storage}' {note}",
        f"document_stores.handbook.index: PostgreSQL reachable; schema '{storage}' {note}",
        f"document_stores.manual.index: PostgreSQL reachable; schema '{own}' {note}",
    ]
    assert hector("index", "-c", str(path)).returncode == 0  # migrates the index schemas
    report = json.loads(check(postgres.dsn, postgres.dsn, "--format", "json").stdout)
    at = f"PostgreSQL reachable; schema '{own}' at version {LATEST} of {LATEST}"
    assert report["valid"] is True and report["indexes"]["manual"] == at
    assert report["indexes"]["handbook"] == report["store"]
