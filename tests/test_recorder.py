"""The flight recorder (``observability.tracing.keep``) at ``sampling_rate: 0``: every
failed, slow, costly or flagged run is exported with its spans, ordinary runs are not,
and ``hector_traces_kept_total{reason}`` / ``hector_traces_dropped_total`` count it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import FakeLLM, Server, configured_server
from tests.fakes.trace_receivers import OTLPHttpReceiver
from tests.metrics_helpers import OPENMETRICS, scrape

CONFIG = """\
llms:
  default:
    {{provider: openai, model: gpt-fake, base_url: "{url}", max_retries: 0{pricing}}}
observability:
  metrics: {{enabled: true}}
  tracing:
    enabled: true
    protocol: http
    endpoint: "127.0.0.1:{port}"
    sampling_rate: 0.0
    keep: {{enabled: true, {keep}}}
"""


def config_for(fake: FakeLLM, receiver: OTLPHttpReceiver, keep: str, pricing: str = "") -> str:
    """The recorder's config with these ``keep`` settings (and model ``pricing``)."""
    return CONFIG.format(url=fake.base_url, port=receiver.port, keep=keep, pricing=pricing)


ROOT = "POST /v1/chat/completions"


def chat(url: str, text: str, **headers: str) -> int:
    body = {"model": "assistant", "messages": [{"role": "user", "content": text}]}
    return httpx.post(
        f"{url}/v1/chat/completions", json=body, headers=headers, timeout=15
    ).status_code


def exemplar_traces(server: Server) -> set[str]:
    """The trace ids the server's metric exemplars name (OpenMetrics)."""
    metrics = scrape(f"{server.url}/metrics", accept=OPENMETRICS)
    return {s.exemplar.labels["trace_id"] for _, s in metrics.samples if s.exemplar is not None}


def test_failed_slow_costly_and_flagged_runs_are_kept(
    openai_fake: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with OTLPHttpReceiver() as receiver:
        config = config_for(openai_fake, receiver, "slower_than: 0.5, costlier_than: 1000")
        with configured_server(tmp_path_factory, "recorder", config) as server:
            assert all(chat(server.url, f"ordinary {i}") == 200 for i in range(20))
            assert exemplar_traces(server) == set()  # dropped: no metric links to them
            openai_fake.script({"status": 400, "error": "refused"})
            assert chat(server.url, "fails") == 502
            openai_fake.script({"text": "slowly", "delay": 0.8})
            assert chat(server.url, "slow") == 200
            openai_fake.script({"text": "big", "usage": [2000, 10]})
            assert chat(server.url, "costly") == 200
            assert chat(server.url, "flagged", **{"X-Hector-Trace": "keep"}) == 200
            spans = receiver.wait_for(
                lambda got: sum(s.name == ROOT for s in got) >= 4, what="the kept traces"
            )
            time.sleep(1.0)  # anything else would have arrived by now
            spans = receiver.spans
            roots = [s for s in spans if s.name == ROOT]
            assert len(roots) == 4, [s.name for s in spans]
            kept = {s.trace_id for s in roots}
            assert {s.trace_id for s in spans} == kept  # whole traces, nothing of the others
            chats = [s for s in spans if s.name == "chat gpt-fake"]
            assert len(chats) == 4  # each kept trace keeps its model call span
            metrics = scrape(f"{server.url}/metrics")
            for reason in ("error", "slow", "costly", "flagged"):
                assert metrics.value("hector_traces_kept_total", reason=reason) == 1, reason
            assert metrics.value("hector_traces_dropped_total") >= 20
            # each kept trace's root says why it was kept
            assert sorted(r.attributes["hector.trace.kept"] for r in roots) == [
                "costly",
                "error",
                "flagged",
                "slow",
            ]
            # exemplars name kept traces only: a link from a metric never leads nowhere
            exemplars = exemplar_traces(server)
            assert exemplars and exemplars <= kept, (exemplars, kept)


def test_slower_than_the_recent_p99_is_kept(
    openai_fake: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The default ``slower_than: p99``: after 100 ordinary runs, one much slower is kept."""
    with OTLPHttpReceiver() as receiver:
        config = config_for(openai_fake, receiver, "costlier_than: null")
        with configured_server(tmp_path_factory, "recorder-p99", config) as server:
            assert all(chat(server.url, f"ordinary {i}") == 200 for i in range(120))
            openai_fake.script({"text": "slowly", "delay": 1.0})
            assert chat(server.url, "slow") == 200
            spans = receiver.wait_for(
                lambda got: any(s.name == ROOT for s in got), what="the slow trace"
            )
            (root,) = [s for s in spans if s.name == ROOT]
            assert root.attributes["hector.trace.kept"] == "slow"
            metrics = scrape(f"{server.url}/metrics")
            assert metrics.value("hector_traces_kept_total", reason="slow") >= 1
            assert metrics.value("hector_traces_dropped_total") >= 100


def test_observe_turns_the_recorder_on(serve: Any) -> None:
    """--observe: the recorder keeps what matters and up to 10 other traces a second
    (``sampling_rate`` unset), none by ratio."""
    server: Server = serve("--observe")
    body = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    for _ in range(40):
        assert httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10).is_success
    seconds = time.monotonic() - started
    flagged = {"X-Hector-Trace": "keep"}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=flagged)
    assert answer.is_success
    metrics = scrape(f"{server.url}/metrics")
    assert metrics.value("hector_traces_kept_total", reason="flagged") == 1
    assert metrics.value("hector_traces_kept_total", reason="sampled") == 0
    rate = metrics.value("hector_traces_kept_total", reason="rate")
    assert rate + metrics.value("hector_traces_dropped_total") == 40
    assert 10 <= rate <= 10 * (int(seconds) + 1)  # the first ten of each second


def test_ordinary_per_second_bounds_the_ordinary_traces_kept(
    openai_fake: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``ordinary_per_second: 2`` beside ``sampling_rate: 0``: the first two ordinary traces
    of each second are exported whole, with the reason ``rate``; the rest are dropped."""
    with OTLPHttpReceiver() as receiver:
        config = config_for(openai_fake, receiver, "ordinary_per_second: 2")
        with configured_server(tmp_path_factory, "recorder-rate", config) as server:
            started = time.monotonic()
            assert all(chat(server.url, f"ordinary {i}") == 200 for i in range(30))
            seconds = time.monotonic() - started
            receiver.wait_for(lambda got: sum(s.name == ROOT for s in got) >= 2, what="2 traces")
            time.sleep(1.0)  # anything else would have arrived by now
            roots = [s for s in receiver.spans if s.name == ROOT]
            assert 2 <= len(roots) <= 2 * (int(seconds) + 1), (len(roots), seconds)
            assert {r.attributes["hector.trace.kept"] for r in roots} == {"rate"}
            chats = [s for s in receiver.spans if s.name == "chat gpt-fake"]
            assert len(chats) == len(roots)
            metrics = scrape(f"{server.url}/metrics")
            assert metrics.value("hector_traces_kept_total", reason="rate") == len(roots)
            assert metrics.value("hector_traces_dropped_total") == 30 - len(roots)


def test_costlier_than_dollars_is_kept(
    openai_fake: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """At $10,000 per million tokens, a 60-token call costs $0.60: over $0.50, kept."""
    with OTLPHttpReceiver() as receiver:
        keep = "slower_than: null, costlier_than: null, costlier_than_usd: 0.5"
        pricing = ", pricing: {input_per_million: 10000, output_per_million: 10000}"
        config = config_for(openai_fake, receiver, keep, pricing)
        with configured_server(tmp_path_factory, "recorder-usd", config) as server:
            openai_fake.script({"text": "cheap", "usage": [10, 10]})  # $0.20: dropped
            assert chat(server.url, "cheap") == 200
            openai_fake.script({"text": "dear", "usage": [50, 10]})
            assert chat(server.url, "dear") == 200
            spans = receiver.wait_for(
                lambda got: any(s.name == ROOT for s in got), what="the costly trace"
            )
            time.sleep(0.5)
            roots = [s for s in receiver.spans if s.name == ROOT]
            assert [r.attributes["hector.trace.kept"] for r in roots] == ["costly"], spans
            metrics = scrape(f"{server.url}/metrics")
            assert metrics.value("hector_traces_dropped_total") == 1


def test_the_recorder_stays_bounded_over_10000_runs() -> None:
    """10,000 runs whose roots never end (a crash mid-run, say) and 10,000 that do: the
    recorder holds at most ``max_traces`` traces and ``max_spans_per_trace`` spans each."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    from hector_py.config.observability import KeepConfig
    from hector_py.observability.light import LightTracer
    from hector_py.observability.recorder import KeepProcessor

    class Null:
        def on_end(self, span: object) -> None: ...

    config = KeepConfig(enabled=True, max_traces=100, max_spans_per_trace=10)
    keeper = KeepProcessor(Null(), config, 0.0)  # type: ignore[arg-type]
    decisions: list[str | None] = []
    keeper.on_decision = decisions.append
    tracer = LightTracer(keeper)
    for run in range(10_000):
        root = tracer.start_span("root")
        token = otel_context.attach(trace.set_span_in_context(root))
        for _ in range(20):
            tracer.start_span("child").end()
        otel_context.detach(token)
        if run % 2:
            root.end()
    assert len(keeper._traces) <= 100
    assert all(len(spans) <= 10 for spans in keeper._traces.values())
    assert len(decisions) >= 10_000 - 100  # ended ones decided, the rest evicted as dropped


def test_a_decided_trace_is_freed_at_once() -> None:
    """A trace's spans share a list of the ended ones; once the recorder has decided, none
    is left for the cyclic GC to find (at c=32 that search cost a tenth of a request)."""
    import gc

    from opentelemetry import context as otel_context
    from opentelemetry import trace

    from hector_py.config.observability import KeepConfig
    from hector_py.observability.light import LightSpan, LightTracer
    from hector_py.observability.recorder import KeepProcessor

    class Null:
        def on_end(self, span: object) -> None: ...

    keeper = KeepProcessor(Null(), KeepConfig(enabled=True), 0.5)  # type: ignore[arg-type]
    tracer = LightTracer(keeper)
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):  # half of them kept (sampled), half dropped
            root = tracer.start_span("root")
            assert root is not None
            token = otel_context.attach(trace.set_span_in_context(root))
            for _ in range(3):
                child = tracer.start_span("child")
                assert child is not None
                child.end()
            otel_context.detach(token)
            root.end()
        del root, child
        left = sum(1 for o in gc.get_objects() if type(o) is LightSpan)
    finally:
        gc.enable()
    assert left == 0
