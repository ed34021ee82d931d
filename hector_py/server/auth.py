"""Authentication: API keys (``server.auth.api_keys``, compared in constant time) and
bearer JWTs verified against a JWKS URL (``server.auth.jwt``, with PyJWT)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler

from hector_py.config.model import ApiKey, AuthConfig, JwtConfig
from hector_py.observability.logs import bind
from hector_py.server.middleware import json_error
from hector_py.server.state import STATE, TENANT

if TYPE_CHECKING:
    from hector_py.server.jwks import Jwks

OPEN_PATHS = frozenset({"/health", "/health/live", "/health/ready"})
CARD_ROUTES = frozenset(
    {
        "/.well-known/agent-card.json",
        "/.well-known/agent.json",
        "/agents/{name}/.well-known/agent-card.json",
        "/agents",
        "/agents/{name}",
    }
)
log = logging.getLogger("hector.auth")


class Authenticator:
    """Knows the accepted keys (as digests) and which routes stay open."""

    def __init__(
        self, config: AuthConfig, metrics_endpoint: str, signed_routes: Iterable[str] = ()
    ) -> None:
        """``signed_routes``: POST routes that check a signature of their own (webhooks)."""
        self._signed_routes = frozenset(signed_routes)
        self._keys: list[tuple[bytes, str]] = []
        for entry in config.api_keys:
            key, tenant = (entry.key, entry.tenant) if isinstance(entry, ApiKey) else (entry, "")
            self._keys.append((_digest(key.get_secret_value()), tenant))
        self._jwt = config.jwt
        self.jwks: Jwks | None = None
        if config.jwt:  # PyJWT and cryptography (~9 MiB) load only for JWT auth
            from hector_py.server.jwks import Jwks

            self.jwks = Jwks(config.jwt.jwks_url)
        self._open_routes = set(OPEN_PATHS)
        if config.public_card:
            self._open_routes |= CARD_ROUTES
        if not config.protect_metrics:
            self._open_routes.add(metrics_endpoint)

    def is_open(self, request: web.Request) -> bool:
        """Whether ``request`` needs no key: probes, webhooks, cards/metrics when configured."""
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else ""
        if request.method == "POST" and route in self._signed_routes:
            return True
        return route in self._open_routes and request.method in ("GET", "HEAD")

    async def start(self, _: web.Application) -> None:
        """Fetch the JWKS (when JWTs are accepted) and keep it fresh."""
        if self.jwks is not None:
            await self.jwks.start()

    async def close(self, _: web.Application) -> None:
        """Stop refreshing the JWKS."""
        if self.jwks is not None:
            await self.jwks.close()

    def tenant_of(self, presented: str) -> str | None:
        """The tenant of a valid key or JWT ('' when it names none); ``None`` when invalid.

        Raises ``KeysUnavailable`` for a JWT while no signing key is known."""
        digest = _digest(presented)
        found: str | None = None
        for known, tenant in self._keys:  # check every key: timing says nothing
            if hmac.compare_digest(known, digest):
                found = tenant
        if found is None and self._jwt is not None and presented.count(".") == 2:
            found = self._verify_jwt(presented, self._jwt)
        return found

    def _verify_jwt(self, token: str, config: JwtConfig) -> str | None:
        """The token's tenant, or ``None``: verified on the loop (a signature check takes
        tens of microseconds; the keys are already in memory)."""
        import jwt

        assert self.jwks is not None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.jwks.key(kid) if isinstance(kid, str) else None
            if key is None:
                if not self.jwks.ready:
                    raise KeysUnavailable
                return None
            # The PyJWK itself, not its key: PyJWT then refuses a token whose alg is not
            # the key's (with a bare key, an RS/ES mismatch raised TypeError: a 500).
            claims = jwt.decode(
                token,
                key,
                algorithms=config.algorithms,
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway,
                options={"require": ["exp"], "verify_aud": config.audience is not None},
            )
        except (jwt.PyJWTError, TypeError, ValueError) as exc:  # any malformed token: 401
            log.debug("JWT refused: %s", type(exc).__name__)
            return None
        tenant = claims.get(config.tenant_claim, "") if config.tenant_claim else ""
        return tenant if isinstance(tenant, str) else ""


class KeysUnavailable(Exception):
    """A JWT arrived while no JWKS key is known (the JWKS was never fetched)."""


AUTH = web.AppKey("hector_auth", Authenticator)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def presented_key(request: web.Request) -> str | None:
    """The key from ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-API-Key") or None


def request_tenant(request: web.Request) -> str:
    """The caller's tenant: its API key's, else the ``server.auth.tenant_header`` value
    when that is configured ('' for none)."""
    tenant: str = request.get(TENANT) or ""
    header = request.app[STATE].config.server.auth.tenant_header
    if not tenant and header:
        tenant = request.headers.get(header, "").strip()
    return tenant


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 without a valid key, except on open routes; binds the tenant to the logs."""
    authenticator = request.app.get(AUTH)
    if authenticator is None or authenticator.is_open(request):
        return await handler(request)
    key = presented_key(request)
    try:
        tenant = authenticator.tenant_of(key) if key else None
    except KeysUnavailable:
        request.app[STATE].telemetry.auth_failure("unavailable")
        response = json_error(503, "cannot verify tokens yet: the JWKS is unavailable")
        from hector_py.server.jwks import RETRY_S  # loaded: JWT auth is on

        response.headers["Retry-After"] = str(int(RETRY_S))
        return response
    if tenant is None:
        request.app[STATE].telemetry.auth_failure("missing" if key is None else "invalid")
        response = json_error(401, "missing or invalid API key")
        response.headers["WWW-Authenticate"] = 'Bearer realm="hector"'
        return response
    request[TENANT] = tenant
    with bind(**({"tenant": tenant} if tenant else {})):
        return await handler(request)
