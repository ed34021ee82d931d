"""The built-in tools without network: ``current_time``, ``calculator``, ``random_number``."""

from __future__ import annotations

import ast
import math
import operator
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hector_py.agent.tools.registry import ToolError
from hector_py.config.tools import ToolConfig
from hector_py.llm.base import ToolSpec

ToolFunction = Callable[[dict[str, Any]], Awaitable[str]]


@dataclass
class FunctionTool:
    """A tool backed by an async function of its arguments."""

    spec: ToolSpec
    timeout: float
    function: ToolFunction
    kind: ClassVar[str] = "function"

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the function."""
        return await self.function(arguments)


async def current_time(arguments: dict[str, Any]) -> str:
    """The current time in ``timezone`` (default UTC), ISO 8601."""
    name = arguments.get("timezone", "UTC")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown timezone '{name}' (use an IANA name such as Europe/Paris)"
        ) from None
    return datetime.now(zone).isoformat(timespec="seconds")


Number = int | float
MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 4096

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
CALCULATOR_HELP = (
    "numbers, + - * / // % **, parentheses, "
    + ", ".join(sorted(_CONSTANTS))
    + " and "
    + ", ".join(sorted(_FUNCTIONS))
)


def calculate(expression: str) -> Number:
    """Evaluate arithmetic safely: the expression is parsed with ``ast``, never ``eval``-ed."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError):
        raise ToolError(f"invalid expression; allowed: {CALCULATOR_HELP}") from None
    try:
        return _evaluate(tree.body)
    except OverflowError:
        raise ToolError("result too large") from None
    except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:
        raise ToolError(f"cannot evaluate: {exc}") from None


def _evaluate(node: ast.expr) -> Number:
    match node:
        case ast.Constant(value=int() | float() as value) if not isinstance(value, bool):
            return value
        case ast.Name(id=name) if name in _CONSTANTS:
            return _CONSTANTS[name]
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _UNARY[type(op)](_evaluate(operand))
        case ast.BinOp(left=left, op=ast.Pow(), right=right):
            return _checked(_power(_evaluate(left), _evaluate(right)))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            return _checked(_BINARY[type(op)](_evaluate(left), _evaluate(right)))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
            return _checked(_FUNCTIONS[name](*map(_evaluate, args)))
    raise ToolError(f"{ast.unparse(node)!r} is not allowed; allowed: {CALCULATOR_HELP}")


def _power(base: Number, exponent: Number) -> Any:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and abs(base) > 1
        and (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS
    ):
        raise ToolError("result too large")
    return base**exponent


def _checked(value: Any) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError("result too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("result too large")
    return value


async def calculator(arguments: dict[str, Any]) -> str:
    """The value of ``expression``."""
    return str(calculate(arguments["expression"]))


async def random_number(arguments: dict[str, Any]) -> str:
    """A random integer between ``min`` and ``max`` inclusive (default 1 and 100)."""
    low, high = arguments.get("min", 1), arguments.get("max", 100)
    if low > high:
        raise ToolError("min must not be greater than max")
    return str(random.randint(low, high))


def object_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A closed JSON Schema object with ``properties``, of which ``required`` are required."""
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


BUILTINS: dict[str, tuple[str, dict[str, Any], ToolFunction]] = {
    "current_time": (
        "The current date and time (ISO 8601) in a time zone.",
        object_schema(
            {"timezone": {"type": "string", "description": "IANA name, default UTC"}}, []
        ),
        current_time,
    ),
    "calculator": (
        f"Evaluate an arithmetic expression: {CALCULATOR_HELP}.",
        object_schema(
            {"expression": {"type": "string", "description": "e.g. (2 + 3) * 4"}}, ["expression"]
        ),
        calculator,
    ),
    "random_number": (
        "A random integer between min and max inclusive (default 1 and 100).",
        object_schema({"min": {"type": "integer"}, "max": {"type": "integer"}}, []),
        random_number,
    ),
}


def builtin(name: str, config: ToolConfig) -> FunctionTool:
    """The built-in ``name`` with the settings of ``config``."""
    description, parameters, function = BUILTINS[name]
    spec = ToolSpec(name, config.description or description, parameters)
    return FunctionTool(spec, config.timeout, function)
