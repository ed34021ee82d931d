"""Tools agents may call.

- ``registry``: the ``Tool`` / ``Toolset`` protocols, ``ToolRegistry`` and argument validation
- ``builtins``: ``current_time``, ``calculator``, ``random_number``
- ``http``: the ``http_request`` built-in and ``type: http`` tools
- ``build``: ``build_registry``, the tools of a config (one line per kind)
"""

from hector_py.agent.tools.build import build_registry
from hector_py.agent.tools.builtins import FunctionTool, calculate
from hector_py.agent.tools.registry import (
    Tool,
    ToolDefinitionError,
    ToolError,
    ToolOutcome,
    ToolRegistry,
    Toolset,
)

__all__ = [
    "FunctionTool",
    "Tool",
    "ToolDefinitionError",
    "ToolError",
    "ToolOutcome",
    "ToolRegistry",
    "Toolset",
    "build_registry",
    "calculate",
]
