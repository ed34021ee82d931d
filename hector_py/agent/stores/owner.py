"""Which process owns a task: ``host/pid/nonce``, unique per process and run."""

from __future__ import annotations

import os
import secrets
import socket


def process_owner() -> str:
    """A fresh owner id for this process."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def gone_from_this_host(owner: str) -> bool:
    """True when ``owner`` ran on this host and its process no longer exists (no need to
    wait for its lease); legacy rows without an owner count as gone."""
    if not owner:
        return True
    host, _, rest = owner.partition("/")
    pid = rest.partition("/")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
