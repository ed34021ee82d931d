"""``hector top``: a live terminal view of a running server, from its ``/metrics`` and the
run console's ``/console/api/runs``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from hector_py.cli.base import app, fail, out

if TYPE_CHECKING:
    import aiohttp
    from rich.console import Group

    from hector_py.observability.top_stats import Snapshot

MAX_RUNS_SHOWN = 15


@app.command()
def top(
    url: Annotated[str, typer.Option(envvar="HECTOR_URL", help="Server URL.")] = (
        "http://127.0.0.1:8080"
    ),
    api_key: Annotated[
        str | None,
        typer.Option(envvar="HECTOR_SERVER_KEY", help="An API key of the server (X-API-Key)."),
    ] = None,
    metrics_url: Annotated[
        str | None,
        typer.Option(help="The metrics URL when not URL/metrics (observability.metrics.port)."),
    ] = None,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between updates.")] = 2.0,
    once: Annotated[bool, typer.Option(help="Print one view (over INTERVAL) and exit.")] = False,
    namespace: Annotated[str, typer.Option(help="The metrics' namespace.")] = "hector",
) -> None:
    """Live req/s, error ratio, latency by agent, tokens/s and cost/h by model, and the
    runs in flight of a running server."""
    import asyncio
    import contextlib

    headers = {"X-API-Key": api_key} if api_key else {}
    target = metrics_url or url.rstrip("/") + "/metrics"
    with contextlib.suppress(KeyboardInterrupt):  # ctrl-c ends the view
        asyncio.run(_watch(url.rstrip("/"), target, headers, interval, once, f"{namespace}_"))


async def _get(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, str]:
    import aiohttp

    try:
        async with http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as got:
            return got.status, await got.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        fail(f"cannot reach {url}: {type(exc).__name__} {exc}".strip())


async def _scrape(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> str:
    status, text = await _get(http, url, headers)
    hints = {
        401: " (pass --api-key)",
        404: " (are the metrics off? start the server with --observe or --metrics, or pass"
        " --metrics-url)",
    }
    if status != 200:
        fail(f"{url} answered HTTP {status}{hints.get(status, '')}")
    return text


async def _runs(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Any:
    """The runs in flight, or why they cannot be read."""
    import json

    status, text = await _get(http, url + "/console/api/runs", headers)
    if status == 200:
        return json.loads(text)["runs"]
    if status == 401:
        return "runs in flight: the server wants an API key (--api-key)"
    return "runs in flight: the console is off (start the server with --observe)"


async def _watch(
    url: str, metrics: str, headers: dict[str, str], interval: float, once: bool, prefix: str
) -> None:
    import asyncio
    import time

    import aiohttp
    from rich.live import Live

    from hector_py.observability.top_stats import snapshot

    async with aiohttp.ClientSession() as http:
        before, at = await _scrape(http, metrics, headers), time.monotonic()
        with Live(console=out, auto_refresh=False, transient=once) as live:
            while True:
                await asyncio.sleep(interval)
                after, now = await _scrape(http, metrics, headers), time.monotonic()
                view = snapshot(before, after, now - at, prefix)
                screen = _render(url, view, await _runs(http, url, headers))
                if once:
                    break
                live.update(screen, refresh=True)
                before, at = after, now
    out.print(screen)


def _render(url: str, view: Snapshot, runs: list[dict[str, Any]] | str) -> Group:
    from rich.console import Group
    from rich.table import Table

    head = Table.grid(padding=(0, 3))
    active = sum(view.active.values())
    head.add_row(
        f"[b]{url}[/b]",
        f"req/s [b]{view.requests_per_s:.1f}[/b]",
        f"errors [b]{view.error_ratio:.1%}[/b]",
        f"active runs [b]{active:.0f}[/b]",
    )
    agents = Table("agent", "p50", "p95", "active", title="latency by agent", title_justify="left")
    for agent in sorted(set(view.latency) | set(view.active)):
        p50, p95 = view.latency.get(agent, (float("nan"), float("nan")))
        agents.add_row(agent, _ms(p50), _ms(p95), f"{view.active.get(agent, 0):.0f}")
    models = Table("model", "tokens/s", "cost/h", title="by model", title_justify="left")
    for model in sorted(set(view.tokens_per_s) | set(view.cost_per_h)):
        cost = view.cost_per_h.get(model, 0.0)
        models.add_row(model, f"{view.tokens_per_s.get(model, 0.0):.1f}", f"${cost:.4f}")
    parts: list[Any] = [head, agents, models]
    if isinstance(runs, str):
        parts.append(f"[dim]{runs}")
    else:
        table = Table("agent", "tenant", "step", "elapsed", "tokens", title="runs in flight")
        table.title_justify = "left"
        for run in runs[:MAX_RUNS_SHOWN]:
            tokens = run["prompt_tokens"] + run["completion_tokens"]
            table.add_row(
                run["agent"], run["tenant"], run["step"], f"{run['elapsed_s']:.1f} s", str(tokens)
            )
        parts.append(table)
    return Group(*parts)


def _ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:.0f} ms"
