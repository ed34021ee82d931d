"""Listening sockets and the URLs people use to reach them (no heavy imports here)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from hector_py.config.model import Config


@dataclass
class Listeners:
    """The bound sockets: the API, and metrics when they have a port of their own."""

    api: socket.socket
    metrics: socket.socket | None = None

    def close(self) -> None:
        """Close every socket."""
        for sock in (self.api, self.metrics):
            if sock is not None:
                sock.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one); ``OSError`` when it cannot."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def bind_listeners(config: Config) -> Listeners:
    """Bind the API port, and the metrics port when configured and metrics are on."""
    api = bind(config.server.host, config.server.port)
    metrics = config.observability.metrics
    if not (metrics.enabled and metrics.port is not None):
        return Listeners(api)
    try:
        return Listeners(api, bind(config.server.host, metrics.port))
    except OSError:
        api.close()
        raise


def display_host(host: str) -> str:
    """A host a person can connect to: wildcard binds become the loopback address."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def base_url(host: str, sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket."""
    return f"http://{display_host(host)}:{sock.getsockname()[1]}"


def banner(config: Config, listeners: Listeners) -> tuple[str, dict[str, object]]:
    """The API base URL, and the agents (URL, provider/model) and URLs worth knowing."""
    base = base_url(config.server.host, listeners.api)
    urls: dict[str, object] = {
        "agents": {
            name: {
                "url": f"{base}/agents/{name}",
                "model": f"{config.llms[agent.llm].provider}/{config.llms[agent.llm].model}",
            }
            for name, agent in config.agents.items()
        },
        "agent_card": f"{base}/.well-known/agent-card.json",
        "health": f"{base}/health",
    }
    metrics = config.observability.metrics
    if metrics.enabled:
        metrics_base = (
            base_url(config.server.host, listeners.metrics) if listeners.metrics else base
        )
        urls["metrics"] = f"{metrics_base}{metrics.endpoint}"
    if config.server.workers > 1:
        urls["workers"] = config.server.workers
    return base, urls


def open_to_network(config: Config) -> str | None:
    """A warning when the server listens beyond loopback with auth off; else ``None``."""
    auth = config.server.auth
    host = config.server.host.strip("[]")
    if auth.api_keys or auth.jwt or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a name: it may resolve to anything
    return (
        f"server.auth is off and the server listens on {host or '*'}: anyone who can reach "
        "it can run the agents (set server.auth.api_keys, or --host 127.0.0.1)"
    )
