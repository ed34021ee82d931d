"""``hector doctor``: check a config against the real world, one line per part: each model
answers a free request (its model listing; a paid completion only with ``live``), the
tools and MCP servers list, the trace exporter accepts a span, the store opens (and
migrates), each remote agent's card can be read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial

import aiohttp

from hector_py.agent.stores import StoreHealth, open_store
from hector_py.agent.tools.build import build_registry
from hector_py.client import CallError, Peer
from hector_py.config.loader import ConfigError
from hector_py.config.model import Config, ObservabilityConfig
from hector_py.llm.base import LLMError, LLMRequest, Message
from hector_py.llm.factory import build_llm
from hector_py.llm.remote import RemoteLLM
from hector_py.observability.recorder import FLAG
from hector_py.observability.telemetry import Telemetry
from hector_py.observability.tracing import build_tracing

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Check:
    """The outcome of one check, and what to do when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, object]:
        """For ``--format json``."""
        return asdict(self)


async def run_checks(config: Config, *, live: bool = False) -> list[Check]:
    """Every check of ``config``, in a fixed order."""
    checks: list[Check] = []
    async with aiohttp.ClientSession() as http:
        for name in config.llms:
            checks.append(await _guard(f"llm {name}", partial(_model, config, name, http, live)))
        checks.append(await _guard("tools", partial(_tools, config, http)))
        for name, remote in config.remote_agents.items():
            headers = {k: v.get_secret_value() for k, v in remote.headers.items()}
            card = partial(_card, http, remote.url, headers)
            checks.append(await _guard(f"remote agent {name}", card))
    if config.observability.tracing.enabled:
        checks.append(await _guard("tracing", partial(_tracing, config)))
    checks.append(await _guard("store", partial(_store, config)))
    return checks


async def _guard(name: str, check: Callable[[], Awaitable[Check]]) -> Check:
    """Run ``check`` within the time limit; any surprise is a failed check, not a crash."""
    try:
        async with asyncio.timeout(TIMEOUT_S * 2):
            return await check()
    except TimeoutError:
        return Check(name, False, f"no answer within {TIMEOUT_S * 2:g} s", "check the address")
    except Exception as exc:  # a failed check is a line, never a traceback
        return Check(name, False, f"{type(exc).__name__}: {exc}")


async def _model(config: Config, name: str, http: aiohttp.ClientSession, live: bool) -> Check:
    where = f"llm {name}"
    settings = config.llms[name]
    llm = build_llm(name, settings, http)
    label = f"{settings.provider}/{settings.model}"
    if live:
        try:
            await llm.complete(LLMRequest((Message("user", "Say OK."),)))
        except LLMError as exc:
            return Check(where, False, f"{label}: {exc}", f"check llms.{name}")
        return Check(where, True, f"{label} answered a completion")
    if not isinstance(llm, RemoteLLM):
        return Check(where, True, f"{label} needs no network")
    try:
        url, headers = llm.probe()
    except LLMError as exc:
        return Check(where, False, str(exc), f"set llms.{name}.api_key or the provider's env")
    try:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with http.get(url, headers=headers, timeout=timeout) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        why = f"cannot reach {llm.base_url} ({type(exc).__name__})"
        return Check(where, False, why, f"check llms.{name}.base_url")
    if status in (401, 403):
        return Check(where, False, f"{label}: the key was refused (HTTP {status})", "check the key")
    if status >= 400:
        return Check(where, False, f"{label}: GET {url} answered HTTP {status}")
    return Check(where, True, f"{label} reachable, key accepted (GET {llm.models_path})")


async def _tools(config: Config, http: aiohttp.ClientSession) -> Check:
    try:
        registry = build_registry(config, http)
        await registry.start()
    except ConfigError as exc:
        first = exc.problems[0]
        return Check("tools", False, f"{first.path}: {first.message}", "fix that tools: entry")
    try:
        count = len(registry.tools) + sum(len(s.tools()) for s in registry.toolsets.values())
        return Check("tools", True, f"{count} tools ({len(registry.toolsets)} MCP servers listed)")
    finally:
        await registry.close()


async def _card(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Check:
    try:
        card = await Peer(http, url, headers, TIMEOUT_S).card(TIMEOUT_S)
    except CallError as exc:
        return Check(f"remote agent {url}", False, str(exc), "check remote_agents url")
    return Check(f"remote agent {url}", True, f"card of {card.get('name', '?')} read")


async def _tracing(config: Config) -> Check:
    tracing = build_tracing(config.observability.tracing)
    try:
        tracer = tracing.provider.get_tracer("hector.doctor")
        tracer.start_span("hector doctor", attributes={FLAG: True}).end()  # the recorder keeps it
        await asyncio.to_thread(tracing.provider.force_flush, int(TIMEOUT_S * 1000))
        health = tracing.health()
    finally:
        await tracing.shutdown(2.0)
    if health.get("status") != "ok":
        why = health.get("last_error") or health.get("reason") or "the span was not accepted"
        return Check("tracing", False, f"{why}", "check observability.tracing.endpoint")
    return Check("tracing", True, "the exporter accepted a test span")


async def _store(config: Config) -> Check:
    try:
        store = await open_store(config.storage, Telemetry(ObservabilityConfig()), StoreHealth())
    except Exception as exc:
        fix = "check storage (path, dsn) and that the database is up"
        return Check("store", False, f"{type(exc).__name__}: {exc}", fix)
    await store.close()
    return Check("store", True, f"{config.storage.type} store opened and migrated")
