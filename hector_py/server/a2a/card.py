"""Agent cards: both dialects' fields in one document (as the a2a-sdk reference server
emits them), URLs from ``server.public_url`` or the (validated) Host, and the security
schemes the server really enforces."""

from __future__ import annotations

import hashlib
from email.utils import formatdate
from typing import Any

import orjson
from aiohttp import web

from hector_py import __version__
from hector_py.agent.runner import Agent
from hector_py.config.model import AuthConfig
from hector_py.llm.base import accepted_types
from hector_py.server.state import STATE

SUPPORTED_VERSIONS = ("1.0", "0.3")
CARD_MAX_AGE_S = 300


def base_url(request: web.Request) -> str:
    """``server.public_url``, else the scheme and Host the caller used (the host middleware
    has refused a Host outside ``server.allowed_hosts``)."""
    public = request.app[STATE].config.server.public_url
    return (public or f"{request.scheme}://{request.host}").rstrip("/")


def security(auth: AuthConfig) -> dict[str, Any]:
    """``securitySchemes`` and requirements (1.0 and 0.3 shapes) for the configured auth:
    any one of the schemes is enough."""
    schemes: dict[str, Any] = {}
    if auth.api_keys:
        key = {"location": "header", "name": "X-API-Key"}
        schemes["apiKey"] = {"apiKeySecurityScheme": key, "type": "apiKey", "in": "header"}
        schemes["apiKey"].update(name="X-API-Key")
    if auth.api_keys or auth.jwt:
        bearer = {"scheme": "bearer", **({"bearerFormat": "JWT"} if auth.jwt else {})}
        schemes["bearer"] = {"httpAuthSecurityScheme": bearer, "type": "http", **bearer}
    if not schemes:
        return {}
    return {
        "securitySchemes": schemes,
        "securityRequirements": [{"schemes": {name: {"list": []}}} for name in schemes],
        "security": [{name: []} for name in schemes],
    }


def agent_card(request: web.Request, agent: Agent) -> dict[str, Any]:
    """The agent card."""
    state = request.app[STATE]
    url = f"{base_url(request)}/agents/{agent.name}"
    name = agent.config.name or agent.name
    return {
        "name": name,
        "description": agent.config.description,
        "version": __version__,
        "supportedInterfaces": [
            *(
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": version}
                for version in SUPPORTED_VERSIONS
            ),
            {"url": url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
        ],
        "url": url,
        "protocolVersion": "0.3.0",
        "preferredTransport": "JSONRPC",
        "capabilities": {
            "streaming": True,
            "pushNotifications": state.config.a2a.push_notifications.enabled,
            "extendedAgentCard": auth_enabled(state.config.server.auth),
        },
        "supportsAuthenticatedExtendedCard": auth_enabled(state.config.server.auth),
        "defaultInputModes": ["text/plain", "application/json", *input_files(agent)],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {**skill.model_dump(), "description": skill.description or agent.config.description}
            for skill in agent.config.skills
        ]
        or [
            {
                "id": agent.name,
                "name": name,
                "description": agent.config.description,
                "tags": ["chat", *agent.tools],
            }
        ],
        **security(state.config.server.auth),
    }


def auth_enabled(auth: AuthConfig) -> bool:
    """Whether callers must present credentials (so an extended card can be shown)."""
    return bool(auth.api_keys or auth.jwt)


def extended_agent_card(request: web.Request, agent: Agent) -> dict[str, Any]:
    """The card an authenticated caller may see: also a skill per tool the agent has."""
    card = agent_card(request, agent)
    card["skills"] = [
        *card["skills"],
        *(
            {
                "id": f"tool:{name}",
                "name": name,
                "description": tool.spec.description,
                "tags": ["tool"],
            }
            for name, tool in agent.tools.items()
        ),
    ]
    return card


def input_files(agent: Agent) -> list[str]:
    """The file types the agent's model takes, as the card lists them."""
    return sorted(accepted_types(agent.llm))


def card_response(request: web.Request, agent: Agent) -> web.Response:
    """The card with ``ETag``/``Cache-Control``/``Last-Modified``; 304 when the caller's
    copy is current."""
    body = orjson.dumps(agent_card(request, agent))
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={CARD_MAX_AGE_S}",
        "Last-Modified": formatdate(request.app[STATE].started_wall, usegmt=True),
    }
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)
