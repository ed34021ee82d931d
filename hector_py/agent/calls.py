"""One model call of a run, through the agent's fallback chain. Each attempt is its own
``chat`` span and metrics; a retryable failure (connection, timeout, 429, 5xx, after the
model's own retries) moves on to the next model whose circuit allows a call, never after
text has reached the caller and never on a refusal of the request itself (400, 401, 403).
A model over its own rate limit (``llms.<name>.rate_limit``) is skipped the same way; the
last one raises ``RateLimited``."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from hector_py.agent.ratelimit import Limiter, RateLimited, estimate
from hector_py.llm.base import (
    LLM,
    LLMChunk,
    LLMError,
    LLMRequest,
    LLMResponse,
    Message,
    ToolCall,
    Usage,
)
from hector_py.llm.breaker import Model
from hector_py.observability.telemetry import LLMScope, Telemetry

log = logging.getLogger("hector.agent")


class AgentError(Exception):
    """A run ended without an answer for a reason of the agent's own (not the model's)."""


@dataclass
class UsageMeter:
    """The tokens a run has used so far, counted as each model call ends, whether the run
    then succeeds, fails or is canceled: what its tenant is charged."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    """Estimated from ``llms.*.pricing`` (0 for models without prices)."""

    def add(self, prompt: int, completion: int, cost: float = 0.0) -> None:
        """Count one model call's tokens and estimated cost."""
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cost_usd += cost

    @property
    def total(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Step:
    """What one model call produced, and the run's reply length so far (``chars``)."""

    chars: int = 0
    text: list[str] = field(default_factory=list)
    calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    answered_by: str | None = None
    """``provider/model`` of the model that answered."""


class ModelCaller:
    """Calls an agent's models in chain order (``llms.<name>.fallbacks``)."""

    def __init__(
        self, agent: str, models: Sequence[Model], telemetry: Telemetry, max_chars: int
    ) -> None:
        self.agent = agent
        self.models = models
        self.telemetry = telemetry
        self.max_chars = max_chars
        self.limiters: dict[str, Limiter] = {}
        """Rate limits of the models that have one (set by the server)."""

    async def call(
        self, request: LLMRequest, step: Step, *, stream: bool, hold: bool, meter: UsageMeter
    ) -> AsyncGenerator[str, None]:
        """Fill ``step``; yield the text as it comes (not when ``hold``)."""
        # which models may answer; each claims its half-open trial only when it is tried
        ready = [m for m in self.models if m.breaker is None or m.breaker.open_to_calls()]
        forced = not ready  # every circuit open: the last model still tries
        ready = ready or [self.models[-1]]
        chars = step.chars
        guess = estimate("".join(m.content for m in request.messages)) if self.limiters else 0
        for index, model in enumerate(ready):
            sent = False
            limiter = self.limiters.get(model.name)
            used, admitted = meter.total, False
            if not forced and model.breaker is not None and not model.breaker.allow():
                if index == len(ready) - 1:  # another call took its trial meanwhile
                    raise LLMError(f"{model.name}: its circuit is open", retryable=True)
                continue
            try:
                if limiter is not None:
                    await limiter.admit(guess, f"model '{model.name}'")
                    admitted = True
                async for text in self._attempt(model, request, step, stream, meter):
                    if not hold:
                        sent = True
                        yield text
            except RateLimited as exc:
                self.telemetry.rate_limited(exc.kind)
                if model.breaker is not None:
                    model.breaker.untried()
                if index == len(ready) - 1:
                    raise
                log.warning("model %s: %s; trying %s", model.name, exc, ready[index + 1].name)
                continue
            except LLMError as exc:
                if model.breaker is not None and exc.retryable:
                    model.breaker.failure(exc.error_type)
                if sent or not exc.retryable or index == len(ready) - 1:
                    raise
                log.warning(
                    "model %s failed (%s): trying %s",
                    model.name,
                    exc.error_type,
                    ready[index + 1].name,
                    extra={"llm": model.name},
                )
                step.text, step.calls, step.chars = [], (), chars
                continue
            finally:
                if limiter is not None and admitted:  # the real usage replaces the guess
                    await limiter.correct(guess, meter.total - used)
            if model.breaker is not None:
                model.breaker.success()
            step.answered_by = f"{model.llm.provider}/{model.llm.model}"
            return

    async def _attempt(
        self, model: Model, request: LLMRequest, step: Step, stream: bool, meter: UsageMeter
    ) -> AsyncGenerator[str, None]:
        llm = model.llm
        settings = getattr(llm, "config", None)  # the HTTP providers' llms.<name>
        key = model.cache.key(request, settings) if model.cache is not None else None
        with self.telemetry.llm_call(
            self.agent,
            llm.provider,
            llm.model,
            stream=stream,
            server=getattr(llm, "base_url", None),
            temperature=getattr(settings, "temperature", None),
            max_tokens=getattr(settings, "max_tokens", None),
        ) as scope:
            try:
                scope.prompt(request.messages)
                hit = model.cache.get(key) if model.cache is not None and key else None
                if key is not None:
                    scope.cache(hit is not None)
                    self.telemetry.cache_lookup(llm.provider, llm.model, hit is not None)
                if hit is not None:  # no upstream call, no tokens
                    step.calls = hit.message.tool_calls
                    scope.answer(hit.model, hit.id, hit.finish_reason)
                    if hit.message.content:
                        self._grow(step, hit.message.content)
                        yield hit.message.content
                elif stream:
                    async for chunk in _stream(llm, request, scope):
                        if chunk.text:
                            self._grow(step, chunk.text)
                            yield chunk.text
                        step.calls += chunk.tool_calls
                    if not scope.finish_reasons:  # an LLM that names none
                        scope.finish_reasons = ("tool_calls" if step.calls else "stop",)
                else:
                    response = await _complete(llm, request, scope)
                    step.calls = response.message.tool_calls
                    scope.finish_reasons = (response.finish_reason,)
                    if response.message.content:
                        self._grow(step, response.message.content)
                        yield response.message.content
                scope.completion("".join(step.text), step.calls)
                step.finish_reason = (*scope.finish_reasons, "stop")[0]
                if hit is None and key is not None and model.cache is not None:
                    answer = Message("assistant", "".join(step.text), tool_calls=step.calls)
                    response = LLMResponse(
                        answer, Usage(), step.finish_reason, model=scope.response_model
                    )
                    model.cache.put(key, response)
            finally:
                tokens = (scope.prompt_tokens, scope.completion_tokens)
                meter.add(*tokens, self.telemetry.cost(llm.provider, llm.model, *tokens))

    def _grow(self, step: Step, text: str) -> None:
        """Add ``text`` to the step; ``AgentError`` when the reply grows over the limit."""
        step.chars += len(text)
        if step.chars > self.max_chars:
            raise AgentError(
                f"the reply is over {self.max_chars} characters (the agent's max_reply_chars)"
            )
        step.text.append(text)


def _usage(llm: LLM, scope: LLMScope, usage: Usage) -> None:
    usage = usage.checked(llm.provider)
    scope.usage(
        usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens
    )


async def _complete(llm: LLM, request: LLMRequest, scope: LLMScope) -> LLMResponse:
    response = await llm.complete(request)
    _usage(llm, scope, response.usage)
    scope.answer(response.model, response.id, response.finish_reason)
    return response


async def _stream(llm: LLM, request: LLMRequest, scope: LLMScope) -> AsyncGenerator[LLMChunk, None]:
    """The model's stream, timing the first chunk and keeping usage even if it breaks."""
    try:
        async for chunk in llm.stream(request):
            scope.first_token()
            if chunk.usage is not None:
                _usage(llm, scope, chunk.usage)
            if chunk.finish_reason is not None:
                scope.answer(chunk.model, chunk.id, chunk.finish_reason)
            yield chunk
    except LLMError as exc:
        if exc.usage is not None:
            _usage(llm, scope, exc.usage)
        raise
