"""Request middleware: request id, log context, one access-log line, JSON errors."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from hector_py.agent.admission import Overloaded
from hector_py.agent.stores import StoreUnavailable
from hector_py.observability.logs import bind
from hector_py.server.state import STATE, TENANT

access_log = logging.getLogger("hector.access")
log = logging.getLogger("hector.server")

REQUEST_ID_HEADER = "X-Request-ID"
CLIENT_CLOSED = 499  # nginx's "client closed request"; counted, but not as a 5xx
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def route_of(request: web.Request) -> str:
    """The matched route pattern (bounded), never the raw path."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


def json_error(status: int, message: str) -> web.Response:
    """A JSON error body for plain HTTP errors."""
    return web.json_response({"error": {"code": status, "message": message}}, status=status)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id, bind it to logs, log one access line, hide tracebacks."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    started = time.perf_counter()
    route = route_of(request)
    telemetry = request.app[STATE].telemetry
    with (
        bind(request_id=request_id),
        telemetry.http_request(
            request.method,
            route,
            request.path,
            request.headers,
            scheme=request.scheme,
            client=request.remote,
        ) as scope,
    ):
        try:
            await _read_body(request)
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.empty_body or exc.status < 400:
                response = exc
            else:
                response = json_error(exc.status, exc.reason)
                response.headers.update(
                    {
                        k: v
                        for k, v in exc.headers.items()
                        if k.lower() not in ("content-type", "content-length")
                    }
                )
        except Overloaded as exc:
            telemetry.error("server", "overloaded")
            response = json_error(503, str(exc))
            response.headers["Retry-After"] = str(exc.retry_after)
        except StoreUnavailable:  # the database went away: retry later, no traceback
            telemetry.error("store", "unavailable")
            response = json_error(503, "store unavailable")
            response.headers["Retry-After"] = "1"
        except asyncio.CancelledError:  # the client hung up: not a server error
            scope.code = CLIENT_CLOSED
            _log_access(request, route, CLIENT_CLOSED, started)
            raise
        except Exception:
            log.exception("unhandled error in %s %s", request.method, route)
            response = json_error(500, "internal server error")
        response.headers[REQUEST_ID_HEADER] = request_id
        scope.code = response.status
        _log_access(request, route, response.status, started)
        return response


async def _read_body(request: web.Request) -> None:
    """Read (and so cache) the whole body within ``server.body_timeout``: 408 for a body
    that dribbles in, 400 for one that cannot be decoded (bad gzip, cut short)."""
    if not request.body_exists:
        return
    timeout = request.app[STATE].config.server.body_timeout
    try:
        async with asyncio.timeout(timeout):
            await request.read()
    except TimeoutError:
        request.app[STATE].telemetry.error("server", "body_timeout")
        raise web.HTTPRequestTimeout(
            reason=f"the request body did not arrive within {timeout:g} s",
            headers={"Connection": "close"},
        ) from None
    except web.RequestPayloadError as exc:
        raise web.HTTPBadRequest(reason=f"invalid request body: {_cause(exc)}") from None


def _cause(exc: web.RequestPayloadError) -> str:
    """aiohttp's reason without its ``400, message:`` prefix."""
    return str(exc).rpartition("message:")[2].strip() or "unreadable"


def _log_access(request: web.Request, route: str, status: int, started: float) -> None:
    fields = {
        "method": request.method,
        "path": request.path,
        "route": route,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "remote": request.remote,
    }
    tenant = request.get(TENANT)
    if tenant:
        fields["tenant"] = tenant
    access_log.info("request completed", extra=fields)
