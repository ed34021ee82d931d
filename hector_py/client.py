"""Our A2A client: ``hector call`` (streams a reply from a running server) and the
remote-agent tools (``a2a:NAME``), which send over the server's own HTTP session."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from hector_py.agent.stores import new_id

VERSION_HEADERS = {"A2A-Version": "1.0"}


class CallError(Exception):
    """The call failed; the message is one readable line."""


@dataclass(frozen=True)
class CallResult:
    """The end of a call: final state, reply text, the session to continue, and the
    reason the server gave when the task failed."""

    state: str
    text: str
    context_id: str
    error: str = ""
    usage: tuple[int, int] = (0, 0)
    """Prompt and completion tokens, when the task reports them (``metadata.usage``)."""
    task_id: str = ""
    question: str = ""
    """What the agent asks when the task waits for input (``input_required``)."""


@dataclass
class Printer:
    """Where a streaming call reports text and tool activity as it happens."""

    text: Callable[[str], None]
    tool: Callable[[dict[str, Any]], None]


def _endpoint(url: str, agent: str | None) -> str:
    base = url.rstrip("/")
    return f"{base}/agents/{agent}" if agent else f"{base}/"


V03_METHODS = {
    "SendMessage": "message/send",
    "SendStreamingMessage": "message/stream",
    "GetTask": "tasks/get",
    "CancelTask": "tasks/cancel",
}


def _request(
    method: str, text: str, session: str | None, task_id: str | None = None, *, v03: bool = False
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "messageId": new_id(),
        "role": "ROLE_USER",
        "parts": [{"text": text}],
    }
    if v03:  # the v0.3 shapes: kinds and lower-case roles
        method = V03_METHODS[method]
        message.update(kind="message", role="user", parts=[{"kind": "text", "text": text}])
    if session:
        message["contextId"] = session
    if task_id:
        message["taskId"] = task_id
    return {"jsonrpc": "2.0", "id": new_id(), "method": method, "params": {"message": message}}


def _result(body: dict[str, Any]) -> dict[str, Any]:
    if "error" in body:
        error = body["error"]
        raise CallError(f"JSON-RPC error {error.get('code')}: {error.get('message')}")
    result = body.get("result")
    if not isinstance(result, dict):
        raise CallError("the server sent a JSON-RPC response without a result")
    return result


def _texts(parts: list[dict[str, Any]]) -> str:
    return "".join(part.get("text", "") for part in parts)


def _state(status: dict[str, Any]) -> str:
    """A task state in either dialect as one name (``input_required``, ``completed``...)."""
    return str(status.get("state", "")).removeprefix("TASK_STATE_").lower().replace("-", "_")


def _outcome(task: dict[str, Any]) -> CallResult:
    status = task.get("status", {})
    state = _state(status)
    text = "".join(_texts(a.get("parts", [])) for a in task.get("artifacts", []))
    message = _texts(status.get("message", {}).get("parts", []))
    usage = (task.get("metadata") or {}).get("usage") or {}
    tokens = (int(usage.get("promptTokens") or 0), int(usage.get("completionTokens") or 0))
    context, task_id = task.get("contextId", ""), task.get("id", "")
    if state == "failed":
        return CallResult(state, text, context, message, tokens, task_id)
    if state == "input_required":
        return CallResult(state, text, context, usage=tokens, task_id=task_id, question=message)
    return CallResult(state, text or message, context, usage=tokens, task_id=task_id)


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """JSON bodies of an SSE stream's ``data:`` lines."""
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("data:"):
            yield json.loads(line[5:].strip())


async def call_agent(
    url: str,
    agent: str | None,
    text: str,
    *,
    stream: bool,
    session: str | None,
    printer: Printer,
    timeout: float,
    task_id: str | None = None,
) -> CallResult:
    """Send ``text`` to the agent (``task_id``: to the task waiting for it); with
    ``stream``, report text and tool calls as they come."""
    endpoint = _endpoint(url, agent)
    method = "SendStreamingMessage" if stream else "SendMessage"
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as http,
            http.post(
                endpoint, json=_request(method, text, session, task_id), headers=VERSION_HEADERS
            ) as response,
        ):
            if response.status != 200:
                raise CallError(
                    f"{endpoint} answered HTTP {response.status}: {(await response.text())[:200]}"
                )
            if not response.content_type.startswith("text/event-stream"):
                task = _result(await response.json())["task"]
                outcome = _outcome(task)
                printer.text(outcome.text)
                return outcome
            return await _follow(response, printer)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CallError(f"cannot reach {endpoint}: {exc or type(exc).__name__}") from None


async def _follow(response: aiohttp.ClientResponse, printer: Printer) -> CallResult:
    state, text, context_id, error, question, task_id = "", [], "", "", "", ""
    async for body in _events(response):
        result = _result(body)
        task_id = task_id or _task_id(result)
        if "task" in result:
            context_id = result["task"].get("contextId", context_id)
            state = _state(result["task"].get("status", {}))
        elif "artifactUpdate" in result:
            piece = _texts(result["artifactUpdate"]["artifact"].get("parts", []))
            text.append(piece)
            printer.text(piece)
        elif "statusUpdate" in result:
            status = result["statusUpdate"]["status"]
            state = _state(status)
            parts = status.get("message", {}).get("parts", [])
            for part in parts:
                if isinstance(part.get("data"), dict) and "tool" in part["data"]:
                    printer.tool(part["data"])
            if state == "failed":
                error = _texts(parts)
            elif state == "input_required":
                question = _texts(parts)
    return CallResult(state, "".join(text), context_id, error, task_id=task_id, question=question)


@dataclass(frozen=True)
class Peer:
    """An A2A agent we call (the remote-agent tools), over a shared HTTP session, in
    ``protocol`` 1.0 or 0.3."""

    http: aiohttp.ClientSession
    endpoint: str
    headers: dict[str, str]
    timeout: float
    protocol: str = "1.0"

    @property
    def v03(self) -> bool:
        """Whether the agent speaks A2A 0.3."""
        return self.protocol == "0.3"

    def _post(self, body: dict[str, Any], timeout: float | None = None) -> Any:
        version = {"A2A-Version": self.protocol}
        return self.http.post(
            self.endpoint,
            json=body,
            headers={**version, **self.headers},
            timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
        )

    def _method(self, method: str, task_id: str) -> dict[str, Any]:
        name = V03_METHODS[method] if self.v03 else method
        return {"jsonrpc": "2.0", "id": new_id(), "method": name, "params": {"id": task_id}}

    def _failed(self, exc: Exception) -> CallError:
        return CallError(f"{self.endpoint}: {type(exc).__name__} {exc}".strip())

    async def send(
        self, text: str, context_id: str | None, task_id: str | None = None
    ) -> CallResult:
        """One blocking ``SendMessage`` (``task_id``: to the task waiting for input);
        ``CallError`` when the agent cannot be reached or answers with something that is
        not a task."""
        try:
            body = _request("SendMessage", text, context_id, task_id, v03=self.v03)
            async with self._post(body) as response:
                if response.status != 200:
                    raise CallError(f"HTTP {response.status} from {self.endpoint}")
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._failed(exc) from None
        result = _result(data if isinstance(data, dict) else {})
        task = result if self.v03 and result.get("kind") == "task" else result.get("task")
        if not isinstance(task, dict):
            raise CallError(f"{self.endpoint} answered without a task")
        return _outcome(task)

    async def stream(
        self,
        text: str,
        context_id: str | None,
        on_task: Callable[[str], None],
        task_id: str | None = None,
    ) -> CallResult:
        """``SendStreamingMessage``, telling ``on_task`` the remote task's id as soon as it
        is known (so a caller can cancel it); the end state and usage come from a
        ``GetTask`` once the stream closes."""
        body = _request("SendStreamingMessage", text, context_id, task_id, v03=self.v03)
        task_id = ""
        try:
            async with self._post(body) as response:
                if response.status != 200:
                    raise CallError(f"HTTP {response.status} from {self.endpoint}")
                async for event in _events(response):
                    found = _task_id(_result(event))
                    if found and not task_id:
                        task_id = found
                        on_task(task_id)
            if not task_id:
                raise CallError(f"{self.endpoint} streamed no task")
            async with self._post(self._method("GetTask", task_id)) as response:
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._failed(exc) from None
        return _outcome(_result(data if isinstance(data, dict) else {}))

    async def cancel(self, task_id: str) -> None:
        """``CancelTask``, best effort (the caller logs a failure)."""
        async with self._post(self._method("CancelTask", task_id), timeout=10) as response:
            await response.read()

    async def card(self, timeout: float) -> dict[str, Any]:
        """The agent card under the endpoint (``/.well-known/agent-card.json``)."""
        found = await self.revalidate_card(timeout)
        assert found.card is not None  # no validator sent: never 304
        return found.card

    async def revalidate_card(self, timeout: float, etag: str | None = None) -> CardAnswer:
        """The card, or ``card=None`` when the copy tagged ``etag`` is still current (304),
        with its validator and how long it may be cached (``Cache-Control: max-age``)."""
        url = self.endpoint.rstrip("/") + "/.well-known/agent-card.json"
        headers = {**self.headers, **({"If-None-Match": etag} if etag else {})}
        try:
            async with self.http.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                max_age = _max_age(response.headers.get("Cache-Control", ""))
                if response.status == 304 and etag:
                    return CardAnswer(None, etag, max_age)
                if response.status != 200:
                    raise CallError(f"HTTP {response.status} from {url}")
                card = await response.json(content_type=None)
                tag = response.headers.get("ETag")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._failed(exc) from None
        if not isinstance(card, dict):
            raise CallError(f"{url} is not an agent card")
        return CardAnswer(card, tag, max_age)


@dataclass(frozen=True)
class CardAnswer:
    """A card fetch: the card (``None``: unchanged), its ``ETag``, its max age (s)."""

    card: dict[str, Any] | None
    etag: str | None
    max_age: float | None


def _max_age(cache_control: str) -> float | None:
    """``max-age`` of a ``Cache-Control`` header (``None`` without one or with ``no-store``)."""
    directives = [d.strip().lower() for d in cache_control.split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return None
    for directive in directives:
        name, _, value = directive.partition("=")
        if name == "max-age" and value.strip().isdigit():
            return float(value)
    return None


def _task_id(result: dict[str, Any]) -> str:
    """The task a stream event is about (``""`` if none), in either dialect."""
    if result.get("kind") == "task":
        return str(result.get("id") or "")
    if result.get("kind") in ("status-update", "artifact-update"):
        return str(result.get("taskId") or "")
    if isinstance(result.get("task"), dict):
        return str(result["task"].get("id") or "")
    for key in ("statusUpdate", "artifactUpdate"):
        if isinstance(result.get(key), dict):
            return str(result[key].get("taskId") or "")
    return ""
