"""Tools: built-ins, http_request, declared HTTP tools, and the registry's failure handling.

Configs go through the public loader; HTTP tools call a real aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from hector_py.agent.tools import (
    FunctionTool,
    ToolError,
    ToolOutcome,
    ToolRegistry,
    build_registry,
    calculate,
)
from hector_py.config.loader import ConfigError, load_config
from hector_py.config.model import Config
from hector_py.llm.base import ToolSpec

SECRET = "s3cret-weather-key"


def config_of(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "hector.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={"WEATHER_KEY": SECRET})


@asynccontextmanager
async def registry_of(config: Config) -> AsyncIterator[ToolRegistry]:
    async with aiohttp.ClientSession() as session:
        yield build_registry(config, session)


async def call(registry: ToolRegistry, name: str, /, **arguments: Any) -> ToolOutcome:
    [tool] = registry.for_agent([name])
    return await registry.execute(tool, arguments)


def registry_problems(config: Config) -> list[str]:
    """The one-line problems ``build_registry`` reports for ``config``."""

    async def build() -> None:
        async with registry_of(config):
            pass

    with pytest.raises(ConfigError) as caught:
        asyncio.run(build())
    return [str(problem) for problem in caught.value.problems]


def run_with(config: Config, body: Callable[[ToolRegistry], Awaitable[None]]) -> None:
    """Run ``body`` with the registry of ``config``."""

    async def main() -> None:
        async with registry_of(config) as registry:
            await body(registry)

    asyncio.run(main())


# --- built-ins -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("6*7", 42),
        ("(1 + 2) * 3 / 4", 2.25),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(2.567, 2)", 2.57),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("2 * pi", 6.283185307179586),
    ],
)
def test_calculator_computes(expression: str, value: float) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('true')", "not allowed"),
        ("(1).real", "not allowed"),
        ("open('/etc/passwd')", "not allowed"),
        ("'a' * 3", "not allowed"),
        ("[1, 2]", "not allowed"),
        ("True + 1", "not allowed"),
        ("9**9**9", "too large"),
        ("2.0 ** 10000", "too large"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 / 0", "division by zero"),
        ("1 +", "invalid expression"),
        ("1" * 501, "longer than"),
    ],
)
def test_calculator_refuses_unsafe_or_bad_input(expression: str, reason: str) -> None:
    async def body(registry: ToolRegistry) -> None:
        outcome = await call(registry, "calculator", expression=expression)
        assert not outcome.ok and outcome.error_type == "ToolError"
        assert outcome.output.startswith("error: ") and reason in outcome.output

    run_with(Config(), body)


def test_calculator_through_the_registry() -> None:
    async def body(registry: ToolRegistry) -> None:
        assert await call(registry, "calculator", expression="6*7") == ToolOutcome(True, "42")

    run_with(Config(), body)


def test_current_time_in_a_timezone_and_a_bad_one() -> None:
    async def body(registry: ToolRegistry) -> None:
        outcome = await call(registry, "current_time", timezone="Asia/Tokyo")
        assert outcome.ok, outcome
        stamp = datetime.fromisoformat(outcome.output)
        assert stamp.utcoffset() == datetime.now(ZoneInfo("Asia/Tokyo")).utcoffset()
        assert abs(stamp.timestamp() - time.time()) < 60
        utc = await call(registry, "current_time")
        assert utc.ok and utc.output.endswith("+00:00")
        for bad in ("Mars/Olympus_Mons", "../../etc/passwd", ""):
            outcome = await call(registry, "current_time", timezone=bad)
            assert not outcome.ok and "unknown timezone" in outcome.output, outcome

    run_with(Config(), body)


def test_random_number_stays_in_range() -> None:
    async def body(registry: ToolRegistry) -> None:
        values = {
            int((await call(registry, "random_number", min=3, max=5)).output) for _ in range(50)
        }
        assert values <= {3, 4, 5}
        outcome = await call(registry, "random_number", min=5, max=3)
        assert not outcome.ok and "min must not be greater" in outcome.output

    run_with(Config(), body)


# --- config and registry ---------------------------------------------------------------------


def test_unknown_and_disabled_tools_are_config_errors_naming_the_agent(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        "tools:\n  current_time:\n    enabled: false\n"
        "agents:\n  helper:\n    tools: [calculator, nope, current_time, http_request]\n",
    )
    assert registry_problems(config) == [
        "agents.helper.tools[1]: unknown tool 'nope' (known: calculator, random_number) (config)",
        "agents.helper.tools[2]: tool 'current_time' is disabled "
        "(tools.current_time.enabled) (config)",
        "agents.helper.tools[3]: http_request is off; enable it under tools.http_request "
        "with allowed_hosts (config)",
    ]


def test_builtin_settings_apply(tmp_path: Path) -> None:
    text = "tools:\n  calculator:\n    description: Does sums.\n    timeout: 2.5\n"

    async def body(registry: ToolRegistry) -> None:
        [tool] = registry.for_agent(["calculator"])
        assert (tool.spec.description, tool.timeout) == ("Does sums.", 2.5)

    run_with(config_of(tmp_path, text), body)


def test_disabled_tools_are_left_out(tmp_path: Path) -> None:
    text = "tools:\n  http_request: {enabled: false}\n  calculator: {enabled: false}\n"

    async def body(registry: ToolRegistry) -> None:
        assert sorted(registry.tools) == ["current_time", "random_number"]

    run_with(config_of(tmp_path, text), body)


@pytest.mark.parametrize(
    ("tool_yaml", "problem"),
    [
        ("foo: {}", "tools.foo.type: 'foo' is not a built-in"),
        ("calculator: {allowed_hosts: [a.example]}", "tools.calculator.allowed_hosts: only for"),
        ("calculator: {max_response_bytes: 9}", "tools.calculator.max_response_bytes: only for"),
        ("http_request: {timeout: 3}", "tools.http_request.allowed_hosts: required"),
        (
            "http_request: {allowed_hosts: ['http://a.example/x']}",
            "tools.http_request.allowed_hosts[0]: 'http://a.example/x' is not a host",
        ),
        ("w: {type: http, url: 'http://{host}/x'}", "tools.w.url: placeholders are allowed only"),
        ("w: {type: http, url: 'ftp://h.example/{x}'}", "tools.w.url: must be an absolute http"),
        ("w: {type: http, url: 'http://h.example/{x!r}'}", "tools.w.url: placeholder '{x}' must"),
        ("w: {type: http, url: 'http://h.example/{x'}", "tools.w.url: invalid template"),
        (
            "w: {type: http, url: 'http://h.example/{x}', parameters: {type: object}}",
            "tools.w.parameters.required: must list the URL placeholders ['x']",
        ),
    ],
)
def test_bad_tool_definitions_are_config_errors(
    tmp_path: Path, tool_yaml: str, problem: str
) -> None:
    [line] = registry_problems(config_of(tmp_path, f"tools:\n  {tool_yaml}\n"))
    assert line.startswith(problem), line


@pytest.mark.parametrize(
    ("tool_yaml", "problem"),
    [
        ("w: {type: http}", "tools.w: url is required for type: http"),
        ("calculator: {url: 'http://x'}", "tools.calculator: url: only for type: http"),
        (
            "w: {type: http, url: 'http://x', allowed_hosts: [x]}",
            "tools.w: allowed_hosts: only for the http_request built-in",
        ),
        ("w: {type: http, url: 'http://x', method: TRACE}", "tools.w.method: "),
    ],
)
def test_tool_config_shape_is_checked_by_the_loader(
    tmp_path: Path, tool_yaml: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_of(tmp_path, f"tools:\n  {tool_yaml}\n")
    [line] = [str(p) for p in caught.value.problems]
    assert line.startswith(problem), line


# --- failures become outcomes ----------------------------------------------------------------


def function_tool(
    function: Callable[[dict[str, Any]], Awaitable[str]], timeout: float = 5
) -> FunctionTool:
    spec = ToolSpec("probe", "A test tool.", {"type": "object", "properties": {}})
    return FunctionTool(spec, timeout, function)


def test_a_hanging_tool_times_out_quickly() -> None:
    async def hang(_: dict[str, Any]) -> str:
        await asyncio.Event().wait()
        return "never"

    started = time.perf_counter()
    outcome = asyncio.run(ToolRegistry({}).execute(function_tool(hang, timeout=0.05), {}))
    assert outcome == ToolOutcome(False, "error: probe timed out after 0.05s", "timeout")
    assert time.perf_counter() - started < 2


def test_a_raising_tool_becomes_a_failed_outcome() -> None:
    async def crash(_: dict[str, Any]) -> str:
        raise RuntimeError("internal detail")

    async def refuse(_: dict[str, Any]) -> str:
        raise ToolError("no such city")

    registry = ToolRegistry({})
    crashed = asyncio.run(registry.execute(function_tool(crash), {}))
    assert crashed == ToolOutcome(False, "error: probe failed: RuntimeError", "exception")
    refused = asyncio.run(registry.execute(function_tool(refuse), {}))
    assert refused == ToolOutcome(False, "error: no such city", "ToolError")


def test_cancelling_a_run_cancels_the_tool() -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def hang(_: dict[str, Any]) -> str:
            started.set()
            await asyncio.Event().wait()
            return "never"

        task = asyncio.create_task(ToolRegistry({}).execute(function_tool(hang), {}))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


# --- HTTP tools against a real server --------------------------------------------------------


@asynccontextmanager
async def upstream() -> AsyncIterator[str]:
    """A small HTTP server on 127.0.0.1; yields its base URL."""
    release = asyncio.Event()

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hello from upstream")

    async def big(_: web.Request) -> web.Response:
        return web.Response(text="x" * 1000)

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://192.0.2.1/elsewhere")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"{request.method} {await request.text()}")

    async def weather(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "city": request.match_info["city"],
                "raw_path": request.raw_path,
                "query": dict(request.query),
                "auth": request.headers.get("Authorization"),
            }
        )

    async def items(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"], "body": await request.json()})

    async def fail(_: web.Request) -> web.Response:
        return web.Response(status=500, text="boom\n  upstream broke")

    async def slow(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/big", big)
    app.router.add_get("/redirect", redirect)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/weather/{city}", weather)
    app.router.add_post("/items/{id}", items)
    app.router.add_get("/fail", fail)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        release.set()
        await runner.cleanup()


def run_against_upstream(
    tmp_path: Path,
    tools_yaml: Callable[[str], str],
    body: Callable[[ToolRegistry, str], Awaitable[None]],
) -> None:
    """Start ``upstream``, load ``tools:`` from ``tools_yaml(base_url)``, run ``body``."""

    async def main() -> None:
        async with upstream() as base:
            config = config_of(tmp_path, "tools:\n" + tools_yaml(base))
            async with registry_of(config) as registry:
                await body(registry, base)

    asyncio.run(main())


def test_http_request_calls_only_allowed_hosts(tmp_path: Path) -> None:
    def tools(base: str) -> str:
        return (
            "  http_request:\n"
            f"    allowed_hosts: ['{base.removeprefix('http://')}']\n"
            "    max_response_bytes: 100\n"
        )

    async def body(registry: ToolRegistry, base: str) -> None:
        port = base.rsplit(":", 1)[1]
        [tool] = registry.for_agent(["http_request"])
        assert f"127.0.0.1:{port}" in tool.spec.description
        ok = await call(registry, "http_request", url=base + "/hello")
        assert ok == ToolOutcome(True, "HTTP 200\n\nhello from upstream")
        posted = await call(registry, "http_request", url=base + "/echo", method="POST", body="hi")
        assert posted.output == "HTTP 200\n\nPOST hi"
        big = await call(registry, "http_request", url=base + "/big")
        assert big.output == "HTTP 200\n\n" + "x" * 100 + "\n[truncated to 100 bytes]"
        moved = await call(registry, "http_request", url=base + "/redirect")
        assert moved.ok
        assert moved.output.startswith("HTTP 302\nLocation: http://192.0.2.1/elsewhere\n")

        for url in (
            f"http://localhost:{port}/hello",
            "http://127.0.0.1:1/hello",
            "http://192.0.2.1/",
            f"http://user@127.0.0.1.example:{port}/",
        ):
            refused = await call(registry, "http_request", url=url)
            assert not refused.ok and "is not allowed" in refused.output, url
        for url in (f"ftp://127.0.0.1:{port}/", "/hello", "http://127.0.0.1:99999/"):
            refused = await call(registry, "http_request", url=url)
            assert not refused.ok and refused.error_type == "ToolError", url
        for header in ("Host", "host ", "Connection", "Transfer-Encoding", "Proxy-Authorization"):
            smuggled = await call(
                registry, "http_request", url=base + "/hello", headers={header: "internal.example"}
            )
            assert smuggled == ToolOutcome(
                False, f"error: header {header} may not be set", "ToolError"
            ), header
        plain = await call(registry, "http_request", url=base + "/hello", headers={"Accept": "*/*"})
        assert plain.ok
        wrong = await call(registry, "http_request", url=base + "/echo", method="DELETE")
        assert wrong.error_type == "invalid_arguments"
        assert "method: 'DELETE' is not one of" in wrong.output

    run_against_upstream(tmp_path, tools, body)


def test_http_request_host_without_port_allows_any_port(tmp_path: Path) -> None:
    async def body(registry: ToolRegistry, base: str) -> None:
        outcome = await call(registry, "http_request", url=base + "/hello")
        assert outcome.ok, outcome

    run_against_upstream(
        tmp_path, lambda _: "  http_request:\n    allowed_hosts: [127.0.0.1]\n", body
    )


def test_declared_get_tool_fills_the_url_template_and_sends_secret_headers(
    tmp_path: Path,
) -> None:
    def tools(base: str) -> str:
        return (
            "  weather:\n"
            "    type: http\n"
            "    description: Current weather for a city\n"
            f"    url: '{base}/weather/{{city}}?units={{units}}'\n"
            "    parameters:\n"
            "      type: object\n"
            "      properties:\n"
            "        city: {type: string}\n"
            "        units: {type: string, enum: [metric, imperial]}\n"
            "        days: {type: integer}\n"
            "      required: [city, units]\n"
            "    headers: {Authorization: 'Bearer ${WEATHER_KEY}'}\n"
        )

    async def body(registry: ToolRegistry, base: str) -> None:
        [tool] = registry.for_agent(["weather"])
        assert SECRET not in repr(tool)
        outcome = await call(
            registry, "weather", city="São Paulo/../x & co", units="metric", days=3
        )
        assert outcome.ok, outcome
        seen = json.loads(outcome.output)
        assert seen["city"] == "São Paulo/../x & co"
        assert seen["raw_path"].startswith("/weather/S%C3%A3o%20Paulo%2F..%2Fx%20")
        assert seen["query"] == {"units": "metric", "days": "3"}
        # the header was sent (the upstream echoes it) and masked before the model sees it
        assert seen["auth"] == "[REDACTED]"
        assert SECRET not in outcome.output

        invalid = await call(registry, "weather", city=5, units="kelvin")
        assert invalid == ToolOutcome(
            False,
            "error: invalid arguments: city: expected string; "
            "units: 'kelvin' is not one of ['metric', 'imperial']",
            "invalid_arguments",
        )
        missing = await call(registry, "weather")
        assert missing.output == "error: invalid arguments: city: required; units: required"

    run_against_upstream(tmp_path, tools, body)


def test_declared_tool_without_parameters_takes_exactly_its_placeholders(
    tmp_path: Path,
) -> None:
    async def body(registry: ToolRegistry, base: str) -> None:
        [tool] = registry.for_agent(["city"])
        assert tool.spec.parameters["required"] == ["city"]
        outcome = await call(registry, "city", city="Oslo")
        assert json.loads(outcome.output)["city"] == "Oslo"
        extra = await call(registry, "city", city="Oslo", units="metric")
        assert extra.output == "error: invalid arguments: units: unknown argument"
        dots = await call(registry, "city", city="..")
        assert dots == ToolOutcome(False, "error: argument 'city' must not be '..'", "ToolError")

    run_against_upstream(
        tmp_path,
        lambda base: f"  city:\n    type: http\n    url: '{base}/weather/{{city}}'\n",
        body,
    )


def test_declared_post_tool_sends_other_arguments_as_json(tmp_path: Path) -> None:
    def tools(base: str) -> str:
        return (
            "  add_item:\n"
            "    type: http\n"
            "    method: POST\n"
            f"    url: '{base}/items/{{id}}'\n"
            "    parameters:\n"
            "      type: object\n"
            "      properties: {id: {type: string}, name: {type: string}, tags: {type: array}}\n"
            "      required: [id]\n"
        )

    async def body(registry: ToolRegistry, base: str) -> None:
        added = await call(registry, "add_item", id="7", name="pen", tags=["a"])
        assert added.ok, added
        assert json.loads(added.output) == {"id": "7", "body": {"name": "pen", "tags": ["a"]}}

    run_against_upstream(tmp_path, tools, body)


def test_declared_tool_failures_become_outcomes(tmp_path: Path) -> None:
    def tools(base: str) -> str:
        return (
            f"  broken:\n    type: http\n    url: '{base}/fail'\n"
            f"  slow:\n    type: http\n    url: '{base}/slow'\n    timeout: 0.2\n"
            "  gone:\n    type: http\n    url: http://127.0.0.1:1/x\n"
        )

    async def body(registry: ToolRegistry, base: str) -> None:
        broken = await call(registry, "broken")
        assert broken == ToolOutcome(False, "error: HTTP 500: boom upstream broke", "ToolError")
        started = time.perf_counter()
        slow = await call(registry, "slow")
        assert slow == ToolOutcome(False, "error: slow timed out after 0.2s", "timeout")
        assert time.perf_counter() - started < 2
        gone = await call(registry, "gone")
        assert gone.error_type == "ToolError"
        assert gone.output.startswith("error: request failed: ")

    run_against_upstream(tmp_path, tools, body)


def test_arguments_are_checked_against_full_json_schema() -> None:
    async def echo(arguments: dict[str, Any]) -> str:
        return json.dumps(arguments, sort_keys=True)

    schema = {
        "type": "object",
        "$defs": {"when": {"type": "string", "format": "date"}},
        "properties": {
            "day": {"$ref": "#/$defs/when"},
            "target": {"oneOf": [{"type": "integer"}, {"type": "string", "minLength": 3}]},
        },
        "required": ["day"],
    }
    tool = FunctionTool(ToolSpec("echo", "Echo.", schema), 5.0, echo)
    registry = ToolRegistry({"echo": tool})

    async def run(**arguments: Any) -> ToolOutcome:
        return await registry.execute(tool, arguments)

    assert asyncio.run(run(day="2026-12-03", target=7)).ok
    bad_date = asyncio.run(run(day="tomorrow"))
    assert bad_date.output == "error: invalid arguments: day: 'tomorrow' is not a 'date'"
    bad_choice = asyncio.run(run(day="2026-12-03", target="ab"))
    assert bad_choice.error_type == "invalid_arguments" and "target:" in bad_choice.output

    broken = FunctionTool(ToolSpec("broken", "Bad.", {"type": "objekt"}), 5.0, echo)
    outcome = asyncio.run(ToolRegistry({}).execute(broken, {}))
    assert outcome.error_type == "invalid_schema"
    assert outcome.output.startswith("error: broken has an invalid input schema: ")
