"""The log shipper configs in ``configs/logging`` read what ``hector serve --log-format json
--log-file`` really writes: every line is a JSON object whose ``time`` parses with the
format each config declares (Fluent Bit's strptime, Vector's ``%+``, Alloy's
``RFC3339Nano``) and whose ``level`` is one of a few values (Loki label)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import Server

KIT = Path(__file__).resolve().parent.parent / "configs" / "logging"
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


def _lines(serve: Any, tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "hector.log"
    server: Server = serve("--log-format", "json", "--log-file", str(log), log_file=log)
    httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "assistant", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    ).raise_for_status()
    httpx.get(f"{server.url}/nope", timeout=5)  # a 404: another access line
    server.stop()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert len(records) >= 4 and all(isinstance(r, dict) for r in records)
    return records


def test_every_line_parses_with_each_shipper_config(serve: Any, tmp_path: Path) -> None:
    records = _lines(serve, tmp_path)
    fluent = yaml.safe_load((KIT / "fluent-bit.yaml").read_text())["parsers"][0]
    assert fluent["format"] == "json" and fluent["time_key"] == "time"
    strptime = fluent["time_format"].replace("%L", "%f")  # Fluent Bit's %L: fractional seconds
    vector = yaml.safe_load((KIT / "vector.yaml").read_text())["transforms"]["hector_parsed"]
    assert 'parse_timestamp!(.time, format: "%+")' in vector["source"]
    alloy = (KIT / "alloy.river").read_text()
    assert re.search(r'stage\.timestamp \{\s*source = "time"\s*format = "RFC3339Nano"', alloy)
    now = datetime.now(UTC)
    for record in records:
        stamp = record["time"]
        fluent_time = datetime.strptime(stamp, strptime).replace(tzinfo=UTC)
        assert RFC3339.match(stamp), stamp  # chrono's %+ and Go's RFC3339Nano
        assert datetime.fromisoformat(stamp) == fluent_time
        assert abs((now - fluent_time).total_seconds()) < 300
        assert record["level"] in LEVELS and record["msg"]
    assert {"hector.access", "hector.server"} <= {r["logger"] for r in records}
