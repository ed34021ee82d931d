"""The span of a call to a remote A2A agent: ``invoke_agent {agent}``, kind CLIENT, with
the agent's name and ``server.address``/``server.port``. It is current while the request
goes out, so the ``traceparent`` it carries makes the remote run its child."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from opentelemetry.trace import Span, SpanKind

from hector_py.observability.telemetry import Telemetry

DEFAULT_PORTS = {"http": 80, "https": 443}


@contextmanager
def remote_agent_span(telemetry: Telemetry, agent: str, url: str) -> Iterator[Span | None]:
    """One call to the remote ``agent`` at ``url`` (an error inside marks the span)."""
    parts = urlsplit(url)
    attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent,
        "server.address": parts.hostname or "",
        "server.port": parts.port or DEFAULT_PORTS.get(parts.scheme, 0),
    }
    with telemetry._span(f"invoke_agent {agent}", SpanKind.CLIENT, attributes) as span:
        yield span
