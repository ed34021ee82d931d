"""Hostile clients over real sockets: slowloris, connection floods, slow bodies, malformed
requests, bad gzip, running out of file descriptors."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hector_py.config.model import Config
from hector_py.server.listeners import open_to_network
from tests.conftest import Server
from tests.reliability_helpers import metric, scrape, wait_until

SLOW_PEER = "127.0.0.2"  # the attacker; probes come from 127.0.0.1 (a distinct client)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hostile.yaml"
    path.write_text(text + "observability:\n  metrics: {enabled: true}\n")
    return path


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def open_slow(server: Server, count: int, source: str = SLOW_PEER) -> list[socket.socket]:
    """``count`` connections from ``source``, each with a request head that never ends."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(
            ("127.0.0.1", port_of(server)), timeout=10, source_address=(source, 0)
        )
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sockets.append(sock)
    return sockets


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (reading its refusal, if any); dribbles a byte."""
    sock.setblocking(False)
    try:
        sock.send(b"a")
        while chunk := sock.recv(4096):  # noqa: F841 - drain a refusal's 503
            pass
        return True  # recv returned b"": end of stream
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


@contextlib.contextmanager
def closing_all(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def live(server: Server) -> int:
    return httpx.get(server.url + "/health/live", timeout=10).status_code


def test_slowloris_is_capped_per_client_and_timed_out(serve: Any, tmp_path: Path) -> None:
    # idle_timeout: long enough that none of the first 20 is cut while the 120 open
    config = write(tmp_path, "server:\n  idle_timeout: 5\n  max_connections_per_client: 20\n")
    server: Server = serve("-c", str(config))
    with closing_all(open_slow(server, 120)) as slow:
        assert live(server) == 200  # another client still gets through
        text = scrape(server)
        assert metric(text, "hector_connections_refused_total", reason="client_limit") == 100
        # The 20 admitted heads never complete: the server closes them, dribbling or not.
        wait_until(lambda: all(closed_by_server(s) for s in slow), 30, "slow heads closed")
    with closing_all(open_slow(server, 20)):  # the closed ones' slots are free again
        assert metric(scrape(server), "hector_connections_refused_total") == 100
    refusals = [line for line in server.log_lines() if "refusing connections" in line]
    assert len(refusals) == 1, refusals  # one warning per client per interval
    assert not any("Traceback" in line for line in server.log_lines())


def test_total_connection_cap_refuses_gracefully(serve: Any, tmp_path: Path) -> None:
    config = write(tmp_path, "server:\n  max_connections: 8\n")
    server: Server = serve("-c", str(config))
    with closing_all(open_slow(server, 8)):
        wait_until(lambda: _refused_with_503(server), 10, "a 503 refusal")
    wait_until(lambda: live(server) == 200, 10, "connections accepted again")
    text = scrape(server)
    assert metric(text, "hector_connections_refused_total", reason="server_limit") >= 1


def _refused_with_503(server: Server) -> bool:
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(4096):
                reply += chunk
        head = reply.split(b"\r\n\r\n", 1)[0]
        return head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head


def _exchange(server: Server, raw: bytes) -> bytes:
    """Send ``raw`` and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=20) as sock:
        sock.sendall(raw)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


def test_slow_body_gets_408(serve: Any, tmp_path: Path) -> None:
    config = write(tmp_path, "server:\n  body_timeout: 1\n")
    server: Server = serve("-c", str(config))
    head = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    reply = _exchange(server, head + b"Content-Length: 100\r\n\r\n{")
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    text = scrape(server)
    assert metric(text, "hector_errors_total", component="server", error_type="body_timeout") == 1


def test_malformed_requests_get_a_quiet_400_without_echo(serve: Any, tmp_path: Path) -> None:
    server: Server = serve("-c", str(write(tmp_path, "")))
    planted = b"SECRET-HEADER-VALUE-4242"
    raws = [
        b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header" + planted + b"\r\n\r\n",
        b"GET / HTTP/9.9" + planted + b"\r\n\r\n",
    ] * 20
    for raw in raws:
        reply = _exchange(server, raw)
        assert reply.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), reply[:200]
        assert planted not in reply and b"\x01" not in reply
    text = scrape(server)
    assert metric(
        text, "hector_errors_total", component="server", error_type="malformed_request"
    ) == len(raws)
    lines = server.log_lines()
    assert not any("Traceback" in line or "Error handling request" in line for line in lines)
    assert len([line for line in lines if "malformed request from" in line]) == 1
    assert live(server) == 200


def test_invalid_gzip_body_is_400(serve: Any, tmp_path: Path) -> None:
    server: Server = serve("-c", str(write(tmp_path, "")))
    for path in ("/", "/v1/chat/completions"):
        response = httpx.post(
            server.url + path,
            content=b"this is not gzip",
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert "invalid request body" in response.json()["error"]["message"]


LIMITED = """\
import resource

resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
from hector_py.cli import main

main()
"""


def test_out_of_file_descriptors_logs_once_and_recovers(serve: Any, tmp_path: Path) -> None:
    (tmp_path / "limited_hector.py").write_text(LIMITED)
    config = write(tmp_path, "server:\n  max_connections: 1000\n")  # above the fd limit
    server: Server = serve("-c", str(config), module="limited_hector")
    with closing_all(open_slow(server, 80)):
        wait_until(
            lambda: any("cannot accept connections" in line for line in server.log_lines()),
            15,
            "the accept error",
        )
    wait_until(lambda: live(server) == 200, 15, "accepting again")
    lines = server.log_lines()
    assert len([line for line in lines if "cannot accept connections" in line]) == 1
    assert not any("out of system resource" in line for line in lines)
    labels = {"component": "server", "error_type": "accept_out_of_resources"}
    assert metric(scrape(server), "hector_errors_total", **labels) >= 1


@pytest.mark.parametrize(
    ("server", "warns"),
    [
        ({"host": "0.0.0.0"}, True),
        ({"host": "::"}, True),
        ({"host": "192.168.1.10"}, True),
        ({"host": "0.0.0.0", "auth": {"api_keys": ["a-key-123"]}}, False),
        ({"host": "127.0.0.1"}, False),
        ({"host": "::1"}, False),
        ({"host": "localhost"}, False),
    ],
)
def test_open_to_the_network_warning(server: dict[str, Any], warns: bool) -> None:
    """The start-up warning's rule (tests bind only 127.0.0.1, so it is checked here)."""
    warning = open_to_network(Config.model_validate({"server": server}))
    assert (warning is not None) == warns
    if warning:
        assert "server.auth is off" in warning and server["host"] in warning


def test_loopback_start_has_no_network_warning(serve: Any, tmp_path: Path) -> None:
    server: Server = serve("-c", str(write(tmp_path, "")))
    assert not any("server.auth is off" in line for line in server.log_lines())
