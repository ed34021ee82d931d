"""Bearer JWTs verified against a JWKS URL (``server.auth.jwt``), through the real server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

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
