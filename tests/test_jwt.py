"""Bearer JWTs verified against a JWKS URL (``server.auth.jwt``), through the real server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import Server, v03_message

ISSUER, AUDIENCE = "https://issuer.test", "hector"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return _key()


@pytest.fixture
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """A JWKS document for ``signing_key`` (kid k1) on 127.0.0.1."""
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    thread.join(5)


def token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def test_jwt_bearer_tokens(
    serve: Any, tmp_path: Path, jwks_url: str, signing_key: rsa.RSAPrivateKey
) -> None:
    config = tmp_path / "jwt.yaml"
    config.write_text(
        "server:\n  auth:\n    api_keys: [static-key-123]\n    jwt:\n"
        f"      jwks_url: {jwks_url}\n      issuer: {ISSUER}\n      audience: {AUDIENCE}\n"
        "      tenant_claim: org\n      leeway: 0\n"
        "observability:\n  metrics: {enabled: true}\nlogging:\n  format: json\n"
    )
    server: Server = serve("-c", str(config))
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")}

    def post(bearer: str) -> int:
        return httpx.post(
            server.url + "/", json=body, headers={"Authorization": f"Bearer {bearer}"}
        ).status_code

    assert post(token(signing_key, org="acme")) == 200
    assert post("static-key-123") == 200  # API keys keep working beside JWTs
    refused = {
        "expired": token(signing_key, exp=int(time.time()) - 60),
        "wrong audience": token(signing_key, aud="someone-else"),
        "wrong issuer": token(signing_key, iss="https://evil.test"),
        "other key": token(_key()),
        "garbage": "a.b.c",
    }
    for why, bad in refused.items():
        assert post(bad) == 401, why
    scrape = httpx.get(server.url + "/metrics").text
    assert f'hector_auth_failures_total{{reason="invalid"}} {float(len(refused))}' in scrape
    assert server.stop() == 0
    records = [json.loads(line) for line in server.log_lines()]
    assert any(r.get("tenant") == "acme" for r in records)


def _jwt_config(tmp_path: Path, jwks_url: str) -> Path:
    config = tmp_path / "jwt.yaml"
    config.write_text(
        "server:\n  auth:\n    api_keys: [static-key-123]\n    jwt:\n"
        f"      jwks_url: {jwks_url}\n      issuer: {ISSUER}\n      audience: {AUDIENCE}\n"
        "observability:\n  metrics: {enabled: true}\n"
    )
    return config


def _native_libraries(server: Server) -> set[str]:
    """Which of numpy's and cryptography's compiled modules the server process has loaded."""
    maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    return {name for name in ("numpy", "cryptography") if f"/site-packages/{name}/" in maps}


def test_pyjwt_and_numpy_load_only_when_used(serve: Any, tmp_path: Path, jwks_url: str) -> None:
    """PyJWT with cryptography (~9 MiB) and numpy (~12 MiB, a store's vectors) are not in
    a server that does not use them: an idle ``--observe`` server stays under 100 MB."""
    assert _native_libraries(serve("--observe")) == set()
    with_jwt: Server = serve("-c", str(_jwt_config(tmp_path, jwks_url)))
    assert _native_libraries(with_jwt) == {"cryptography"}


def test_malformed_tokens_are_401_never_500(
    serve: Any, tmp_path: Path, jwks_url: str, signing_key: rsa.RSAPrivateKey
) -> None:
    """The kids are public: a token naming k1 (RSA) but signed ES256 or HS256 (with the
    public key as the secret), or with a broken header, is refused, not a crash."""
    server: Server = serve("-c", str(_jwt_config(tmp_path, jwks_url)))
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300}
    ec = ec_key()
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = {
        "ES256 on an RSA kid": jwt.encode(claims, ec, "ES256", headers={"kid": "k1"}),
        "HS256 with the public key": _forge({"alg": "HS256", "kid": "k1"}, claims, public_pem),
        "none": jwt.encode(claims, None, "none", headers={"kid": "k1"}),
        "kid not a string": _forge({"alg": "RS256", "kid": 7}, claims, b"x"),
        "alg not a string": _forge({"alg": ["RS256"], "kid": "k1"}, claims, b"x"),
        "header not JSON": "eyJub3QganNvbg.e30.c2ln",
    }
    for why, bad in forged.items():
        response = httpx.post(
            server.url + "/", json={}, headers={"Authorization": f"Bearer {bad}"}, timeout=10
        )
        assert response.status_code == 401, (why, response.text)
    assert not any("Traceback" in line for line in server.log_lines())


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _forge(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """A token with any header, HMAC-SHA256 signed with ``secret`` (PyJWT refuses to
    make most of these)."""

    def part(value: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signing_input = part(header) + b"." + part(claims)
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


@pytest.fixture
def dead_jwks() -> Iterator[str]:
    """A JWKS URL whose server accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/jwks.json"
    listener.close()


async def _many(url: str, bearers: list[str]) -> list[int]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(bearer: str) -> int:
            headers = {"Authorization": f"Bearer {bearer}"}
            async with session.get(url + "/agents", headers=headers) as response:
                return response.status

        return await asyncio.gather(*(one(b) for b in bearers))


def test_dead_jwks_gives_fast_503_and_api_keys_keep_working(
    serve: Any, tmp_path: Path, dead_jwks: str, signing_key: rsa.RSAPrivateKey
) -> None:
    config = _jwt_config(tmp_path, dead_jwks)
    config.write_text(
        config.read_text().replace("    api_keys:", "    public_card: false\n    api_keys:")
    )
    server: Server = serve("-c", str(config))
    forged = [token(signing_key) for _ in range(200)]
    statuses = asyncio.run(_many(server.url, [*forged, *["static-key-123"] * 20]))
    assert statuses[:200] == [503] * 200  # no keys known: refused at once, no thread held
    assert statuses[200:] == [200] * 20
    scrape = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'hector_auth_failures_total{reason="unavailable"} 200.0' in scrape
