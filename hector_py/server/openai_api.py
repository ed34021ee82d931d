"""OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``; ``model`` names an agent.

Stateless like OpenAI's API: the conversation is the request's ``messages``; the agent
adds its own instruction and tools.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress
from typing import Any

import orjson
from aiohttp import web

from hector_py.agent.approval import ApprovalRequired
from hector_py.agent.budgets import BudgetExceeded
from hector_py.agent.calls import AgentError, UsageMeter
from hector_py.agent.ratelimit import Limiter, RateLimited, estimate
from hector_py.agent.runner import Agent, FinalReply, RunEvent, TextDelta
from hector_py.agent.stores import new_id
from hector_py.llm.base import LLMError, Message, OutputSchema, Usage, accepted_types
from hector_py.llm.http import stream_started
from hector_py.server.auth import request_tenant
from hector_py.server.openai_messages import ApiError, conversation, guarded, output_format
from hector_py.server.sse import open_sse, send_events
from hector_py.server.state import STATE

log = logging.getLogger("hector.openai")
STREAM_FAILED = web.RequestKey("hector_stream_failed", bool)


def _agent(request: web.Request, body: dict[str, Any]) -> Agent:
    agents = request.app[STATE].agents
    model = body.get("model")
    if not isinstance(model, str):
        raise ApiError(
            400,
            f"model: required, the name of an agent (one of: {', '.join(agents)})",
            param="model",
            code="missing_required_parameter" if model is None else "invalid_type",
        )
    if model not in agents:
        raise ApiError(
            404,
            f"model '{model}' not found; models are agents: {', '.join(agents)}",
            param="model",
            code="model_not_found",
        )
    return agents[model]


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``, streamed (SSE, ends with ``[DONE]``) or not."""
    agent_name, response = await _complete(request)
    if agent_name is not None:
        ok = response.status == 200 and not request.get(STREAM_FAILED, False)
        request.app[STATE].telemetry.agent_request(agent_name, ok)
    return response


async def _complete(request: web.Request) -> tuple[str | None, web.StreamResponse]:
    """The agent addressed (if valid) and the response."""
    agent: Agent | None = None
    try:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise ApiError(400, "body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object")
        agent = _agent(request, body)
        config = request.app[STATE].config.server
        history, prompt = await conversation(
            body,
            config.openai_api.allow_system_messages,
            request.app[STATE].config.a2a.files,
            accepted_types(agent.llm),
        )
        output = output_format(body)
        stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        del body, options  # not kept while the answer streams
        limit = config.max_message_chars
        if len(prompt.content) > limit:
            raise ApiError(
                400,
                f"messages: the last message is over the limit of {limit} "
                "characters (server.max_message_chars)",
                param="messages",
            )
        if agent.guardrails is not None:
            history, prompt = guarded(agent.guardrails, history, prompt)
        tenant = request_tenant(request)
        limiter = await _admit(request, tenant, prompt.content)
        budgets = request.app[STATE].budgets
        try:
            reservation = await budgets.reserve(tenant)
        except BudgetExceeded as exc:
            raise ApiError(
                429, str(exc), code="budget_exceeded", kind="insufficient_quota"
            ) from None
        meter = UsageMeter()  # what the run used, whatever its outcome, is charged
        try:
            slot = await request.app[STATE].tasks.admission.acquire(agent.name)
            try:
                if stream:
                    response = await _stream(
                        request, agent, history, prompt, include_usage, meter, output
                    )
                    return agent.name, response
                return agent.name, await _reply(request, agent, history, prompt, meter, output)
            finally:
                slot.release()
        finally:
            if limiter is not None:
                correction = limiter.correct(estimate(prompt.content), meter.total)
                await asyncio.shield(correction)
            await asyncio.shield(budgets.settle(reservation, meter.total))
            request.app[STATE].telemetry.tenant_usage(
                request_tenant(request),
                meter.prompt_tokens,
                meter.completion_tokens,
                meter.cost_usd,
            )
    except ApiError as exc:
        return (agent.name if agent else None), exc.response()


async def _admit(request: web.Request, tenant: str, text: str) -> Limiter | None:
    """Take the tenant's rate limit for this request, or a 429 with ``Retry-After`` and
    OpenAI's ``x-ratelimit-*`` headers."""
    state = request.app[STATE]
    try:
        return await state.limits.admit(tenant, text)
    except RateLimited as exc:
        state.telemetry.rate_limited(exc.kind)
        headers = {"Retry-After": str(math.ceil(exc.retry_after))}
        limiter = state.limits.limiter(tenant)
        for kind, (limit, remaining, reset) in (
            await limiter.headroom() if limiter else {}
        ).items():
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            headers[f"x-ratelimit-reset-{kind}"] = f"{math.ceil(reset)}s"
        raise ApiError(
            429, str(exc), code="rate_limit_exceeded", kind=exc.kind, headers=headers
        ) from None


async def _reply(
    request: web.Request,
    agent: Agent,
    history: list[Message],
    prompt: Message,
    meter: UsageMeter,
    output: OutputSchema | None,
) -> web.Response:
    """Run ``agent`` and answer in one piece, in OpenAI's shape."""
    final = None
    try:
        async with aclosing(_run(request, agent, history, prompt, meter, output)) as events:
            async for event in events:
                if isinstance(event, FinalReply):
                    final = event
                elif isinstance(event, ApprovalRequired):
                    return _approval_needed(agent, event).response()
    except (LLMError, AgentError, RateLimited) as exc:
        log.warning("chat completion failed: %s", exc)
        return _failure(exc).response()
    assert final is not None
    return web.json_response(
        {
            "id": f"chatcmpl-{new_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": agent.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": final.text},
                    "finish_reason": final.finish_reason,
                }
            ],
            "usage": _usage(final.usage),
        },
        headers={"X-Hector-Model": final.model} if final.model else None,
        dumps=lambda data: orjson.dumps(data).decode(),
    )


def _approval_needed(agent: Agent, event: ApprovalRequired) -> ApiError:
    """A 409: this endpoint cannot wait for a person; A2A can (``input-required``)."""
    names = ", ".join(sorted({c.name for c in event.calls if c.id in event.ask}))
    wants = f"wants to run {names}, which needs a person's approval"
    if event.forward is not None:  # a sub-agent asks
        wants = f"asks for a person's input ({event.forward['question']})"
    return ApiError(
        409,
        f"the agent {wants}: send the message over A2A (POST /agents/{agent.name}),"
        " where the task waits in input-required",
        code="approval_required",
    )


class _Chunks:
    """The chunks of one streamed completion, held until the response has started."""

    __slots__ = ("_head", "_pending", "_request", "response")

    def __init__(self, request: web.Request, model: str) -> None:
        self._request = request
        self._head = {
            "id": f"chatcmpl-{new_id()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self._pending: list[bytes] = []
        self.response: web.StreamResponse | None = None
        self.add({"role": "assistant", "content": ""})

    def add(self, delta: dict[str, Any], finish: str | None = None) -> None:
        """Queue a chunk carrying ``delta``."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        self._pending.append(orjson.dumps({**self._head, "choices": [choice]}))

    def end(self, usage: Usage | None, finish: str = "stop") -> None:
        """Queue the last chunk (ending for ``finish``), the usage chunk if ``usage``, and
        ``[DONE]``."""
        self.add({}, finish)
        if usage is not None:
            self._pending.append(
                orjson.dumps({**self._head, "choices": [], "usage": _usage(usage)})
            )
        self._pending.append(b"[DONE]")

    async def flush(self) -> None:
        """Start the response if need be, and send what is queued."""
        if self.response is None:
            self.response = await open_sse(self._request)
        if self._pending:
            await send_events(self.response, *self._pending)
            self._pending.clear()

    async def start(self) -> None:
        """The model's answer has started: so does the response (``stream_started``)."""
        with suppress(ConnectionError):  # a client gone is for the relay to notice, not the model
            await self.flush()


async def _stream(
    request: web.Request,
    agent: Agent,
    history: list[Message],
    prompt: Message,
    include_usage: bool,
    meter: UsageMeter,
    output: OutputSchema | None,
) -> web.StreamResponse:
    """Run ``agent`` and answer as chunks. The 200 goes out once the model's answer has
    started (so the model request leaves first), or with the first text of a model that
    does not say: a failure before then is an HTTP error, as for a blocking call."""
    chunks = _Chunks(request, agent.name)
    token = stream_started.set(chunks.start)
    try:
        async with aclosing(
            _run(request, agent, history, prompt, meter, output, stream=True)
        ) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    chunks.add({"content": event.text})
                elif isinstance(event, FinalReply):
                    chunks.end(event.usage if include_usage else None, event.finish_reason)
                elif isinstance(event, ApprovalRequired):
                    raise _approval_needed(agent, event)
                else:
                    continue
                await chunks.flush()
    except (LLMError, AgentError, ApiError, RateLimited) as exc:
        log.warning("chat completion stream failed: %s", exc)
        error = exc if isinstance(exc, ApiError) else _failure(exc)
        if chunks.response is None:
            return error.response()
        await _end_with(request, chunks.response, error)
    except ConnectionError:
        log.info("client left a chat completion stream")
    except Exception:
        if chunks.response is None:
            raise  # nothing sent yet: the server's 500
        # the 200 went out: a second status line would corrupt the stream
        log.exception("chat completion stream crashed")
        error = ApiError(500, "internal error while running the agent", kind="server_error")
        await _end_with(request, chunks.response, error)
    finally:
        stream_started.reset(token)
    assert chunks.response is not None  # a run ends with FinalReply or raises
    return chunks.response


def _run(
    request: web.Request,
    agent: Agent,
    history: list[Message],
    prompt: Message,
    meter: UsageMeter,
    output: OutputSchema | None,
    *,
    stream: bool = False,
) -> AsyncGenerator[RunEvent, None]:
    """The caller's run of ``agent`` on ``prompt``, as its tenant."""
    return agent.run(
        history,
        prompt.content,
        files=prompt.attachments,
        stream=stream,
        meter=meter,
        output=output,
        tenant=request_tenant(request),
    )


def _failure(exc: LLMError | AgentError | RateLimited) -> ApiError:
    """The error a failed run answers with: 429 when its model is over its rate limit
    (``llms.<name>.rate_limit``, no other model left), else 502."""
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(math.ceil(exc.retry_after))}
        return ApiError(429, str(exc), code="rate_limit_exceeded", kind=exc.kind, headers=headers)
    return ApiError(502, str(exc), kind="upstream_error")


async def _end_with(request: web.Request, response: web.StreamResponse, error: ApiError) -> None:
    """End a started stream with ``error`` as its last event."""
    request[STREAM_FAILED] = True
    with suppress(ConnectionError):
        await send_events(response, orjson.dumps(error.body()))


async def list_models(request: web.Request) -> web.Response:
    """``GET /v1/models``: one model per agent."""
    state = request.app[STATE]
    created = int(time.time() - (time.monotonic() - state.started_at))
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "hector"}
                for name in state.agents
            ],
        }
    )


def add_routes(app: web.Application) -> None:
    """Mount the OpenAI-compatible endpoints."""
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
