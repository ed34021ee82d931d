"""Which Host headers and request bodies the server trusts.

A request whose ``Host`` is not one of ours is refused (421) before its handler runs: agent
cards build URLs from it, and a browser tricked by DNS rebinding sends a foreign Host. Ours
are ``server.public_url``'s host, ``server.allowed_hosts`` (``*``: any), the bind address and
the loopback names. Probes and the metrics scrape, which load balancers and Prometheus send
to a pod address, are exempt. A JSON-RPC POST must say ``Content-Type: application/json``
(else HTTP 415 with a JSON-RPC -32005 body), which a cross-site form or ``text/plain``
fetch cannot send without a CORS preflight.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from hector_py.config.model import Config
from hector_py.server.a2a.errors import CONTENT_TYPE_NOT_SUPPORTED, RpcError
from hector_py.server.middleware import json_error

LOOPBACK = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
PROBE_PATHS = frozenset({"/health", "/health/live", "/health/ready"})
RPC_ROUTES = frozenset({"/", "/agents/{name}", "/agents/{name}/"})


def host_name(header: str) -> str:
    """The host of a ``Host`` header value, lower-case, without port or brackets."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def allowed_hosts(config: Config) -> frozenset[str] | None:
    """The host names ``config`` trusts; ``None`` when any is (``*``)."""
    server = config.server
    if "*" in server.allowed_hosts:
        return None
    hosts = set(LOOPBACK) | {host_name(h) for h in server.allowed_hosts}
    if server.host not in WILDCARD_BINDS:
        hosts.add(host_name(server.host))
    if server.public_url:
        hosts.add(host_name(urlsplit(server.public_url).netloc.rpartition("@")[2]))
    return frozenset(hosts)


def host_guard(config: Config) -> Middleware:
    """The middleware that refuses foreign Hosts (421) and non-JSON JSON-RPC bodies (415)."""
    trusted = allowed_hosts(config)
    exempt = PROBE_PATHS | {config.observability.metrics.endpoint}

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Host")
        foreign = header is not None and trusted is not None and host_name(header) not in trusted
        if foreign and request.path not in exempt:
            return json_error(
                421, "unknown Host; add it to server.allowed_hosts or set server.public_url"
            )
        resource = request.match_info.route.resource
        if (
            request.method == "POST"
            and resource is not None
            and resource.canonical in RPC_ROUTES
            and request.content_type != "application/json"
        ):
            error = RpcError(
                CONTENT_TYPE_NOT_SUPPORTED, "JSON-RPC needs Content-Type: application/json"
            )
            body = {"jsonrpc": "2.0", "id": None, "error": error.body(details=True)}
            return web.json_response(body, status=415)
        return await handler(request)

    return guard
