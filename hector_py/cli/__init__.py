"""The ``hector`` command. Each command lives in its own module and registers on ``app``.

Only what ``hector --help`` needs is imported up front; the config models (pydantic),
asyncio, YAML and the server load inside the commands, so the help comes back fast.
"""

from hector_py.cli import call, configs, doctor, ops, serve, top
from hector_py.cli.base import app

__all__ = ["app", "call", "configs", "doctor", "main", "ops", "serve", "top"]


def main() -> None:
    """Entry point for ``python -m hector_py``."""
    app(prog_name="hector")
