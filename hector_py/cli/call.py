"""``hector call``: talk to an agent on a running server."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from hector_py.cli.base import app, err, fail, out


@app.command()
def call(
    words: Annotated[list[str], typer.Argument(help="[AGENT] MESSAGE", metavar="[AGENT] MESSAGE")],
    url: Annotated[str, typer.Option(envvar="HECTOR_URL", help="Server URL.")] = (
        "http://127.0.0.1:8080"
    ),
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Stream the reply.")] = True,
    session: Annotated[str | None, typer.Option(help="Session (contextId) to continue.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the whole reply.")] = 300,
) -> None:
    """Send a message to an agent on a running server and print the reply as it arrives."""
    import asyncio

    from hector_py.client import CallError, Printer, call_agent

    if len(words) > 2:
        fail("expected [AGENT] MESSAGE (quote a message that has spaces)", code=2)
    agent, text = (None, words[0]) if len(words) == 1 else (words[0], words[1])

    def show_tool(event: dict[str, Any]) -> None:
        if event.get("type") == "tool_call":
            arguments = json.dumps(event.get("arguments", {}))
            err.print(f"\n[cyan]→ {event['tool']}[/cyan] {arguments}", markup=True)
        else:
            colour = "green" if event.get("ok") else "red"
            err.print(
                f"[{colour}]← {event['tool']}[/{colour}] {event.get('output', '')}",
                markup=True,
                highlight=False,
            )

    printer = Printer(text=lambda piece: out.print(piece, end="", markup=False), tool=show_tool)
    task_id = None
    while True:
        try:
            result = asyncio.run(
                call_agent(
                    url,
                    agent,
                    text,
                    stream=stream,
                    session=session,
                    printer=printer,
                    timeout=timeout,
                    task_id=task_id,
                )
            )
        except CallError as exc:
            fail(str(exc))
        if result.state != "input_required":
            break
        # the agent waits for a person (tool approval): ask on the terminal, answer the task
        err.print(result.question, markup=False, soft_wrap=True)
        text = "yes" if typer.confirm("Approve?", default=False, err=True) else "no"
        task_id, session = result.task_id, result.context_id
    out.print()
    if result.error:
        err.print(f"error: {result.error}", markup=False, soft_wrap=True)
    err.print(f"[dim]session {result.context_id} · {result.state}[/dim]")
    if result.state != "completed":
        raise typer.Exit(1)
