"""Store operations on PostgreSQL are ``db`` client spans (``db.system.name=postgresql``),
exported for real."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import start_server, v03_message
from tests.fakes.trace_receivers import OTLPHttpReceiver
from tests.postgres_server import Postgres, new_schema
from tests.reliability_helpers import rpc_body


def test_postgres_operations_are_db_spans(postgres: Postgres, tmp_path: Path) -> None:
    with OTLPHttpReceiver() as receiver:
        config = tmp_path / "hector.yaml"
        config.write_text(
            f"storage: {{type: postgres, dsn: '{postgres.dsn}', schema: {new_schema()}}}\n"
            "observability:\n  tracing:\n    enabled: true\n    protocol: http\n"
            f"    endpoint: 127.0.0.1:{receiver.port}\n"
        )
        server = start_server(tmp_path, "-c", str(config))
        try:
            body = rpc_body("message/send", v03_message("trace me"))
            reply = httpx.post(server.url + "/", json=body, timeout=20).json()
            assert reply["result"]["status"]["state"] == "completed"
            spans = receiver.wait_for(
                lambda got: sum("db.system.name" in s.attributes for s in got) >= 4,
                what="the store spans",
            )
        finally:
            server.stop()
    db = [s for s in spans if "db.system.name" in s.attributes]
    assert {"upsert tasks", "select messages", "insert messages"} <= {s.name for s in db}
    for span in db:
        assert span.kind == "CLIENT" and span.attributes["db.system.name"] == "postgresql"
        assert span.attributes["db.operation.name"] in span.name
    assert postgres.dsn not in str([s.attributes for s in spans])
