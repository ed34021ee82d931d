"""PostgreSQL goes away under load and comes back: readiness 503 with the reason, requests
a clean 503 ``store unavailable``, never a traceback; then 200 again without a restart."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import start_server, v03_message
from tests.postgres_server import Postgres, new_schema
from tests.reliability_helpers import rpc_body, wait_until


def ready(url: str) -> httpx.Response:
    return httpx.get(url + "/health/ready", timeout=10)


def send(url: str) -> httpx.Response:
    body = rpc_body("message/send", v03_message("are you there"))
    return httpx.post(url + "/", json=body, timeout=30)


def test_losing_the_database_is_a_503_until_it_is_back(postgres: Postgres, tmp_path: Path) -> None:
    config = tmp_path / "hector.yaml"
    config.write_text(
        f"storage: {{type: postgres, dsn: '{postgres.dsn}', schema: {new_schema()}}}\n"
        "llms: {default: {provider: demo, stream_delay: 0.01}}\n"
    )
    server = start_server(tmp_path, "-c", str(config))
    try:
        assert ready(server.url).status_code == 200
        with ThreadPoolExecutor(max_workers=8) as pool:
            load = [pool.submit(send, server.url) for _ in range(40)]
            postgres.stop("fast")
            try:
                answers = [future.result() for future in load]
                wait_until(lambda: ready(server.url).status_code == 503, 15, "readiness to fail")
                probe = ready(server.url).json()
                assert probe["failing"] == ["store"]
                assert probe["reason"].startswith("store unavailable: ")
                health = httpx.get(server.url + "/health", timeout=10).json()
                assert health["components"]["store"]["status"] == "unavailable"
                refused = send(server.url)
                assert refused.status_code == 503
                assert refused.json()["error"]["message"] == "store unavailable"
                assert refused.headers["Retry-After"] == "1"
                assert httpx.get(server.url + "/health/live", timeout=10).status_code == 200
            finally:
                postgres.start()
        for answer in answers:  # before the stop: answered; after: 503, nothing else
            assert answer.status_code in (200, 503), answer.text
            assert "Traceback" not in answer.text
        wait_until(lambda: ready(server.url).status_code == 200, 20, "readiness to recover")
        recovered = send(server.url)
        assert recovered.status_code == 200, recovered.text
        assert recovered.json()["result"]["status"]["state"] == "completed"
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 400 : log.index("Traceback") + 2500]
    assert "store unavailable" in log and "store available again" in log
