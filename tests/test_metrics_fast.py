"""The metrics' fast paths (in one process a series' values are updated under their lock
directly) count what prometheus_client's own methods count, exactly, also from several
threads during scrapes; in ``--workers`` mode, whose values live in files, they step aside."""

from __future__ import annotations

import math
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Counter, Gauge, Histogram, values
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from hector_py.config.model import MetricsConfig
from hector_py.observability.exposition import CachedCounter, CachedGauge, CachedHistogram
from hector_py.observability.metrics import Metrics

# bucket bounds exactly, just either side, beyond the last, below the first, odd floats
EDGES = [0, 0.005, 0.0049, 0.0050001, 1, 1200, 1200.5, 2**60, 1e-300, -1, -math.inf, math.inf]
TRACE = {"trace_id": "0af7651916cd43dd8448eb211c80319c"}
EXEMPLAR_TIME = re.compile(r"(# \{[^}]*\} \S+) \S+$", re.MULTILINE)
PROCESS = re.compile(r"^process_.*\n", re.MULTILINE)  # changes by itself


@pytest.fixture
def prometheus_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """prometheus_client's own ``inc``/``observe``/``dec``/``set`` in hector's classes."""
    for ours, theirs, names in (
        (CachedCounter, Counter, ("inc",)),
        (CachedHistogram, Histogram, ("observe",)),
        (CachedGauge, Gauge, ("inc", "dec", "set")),
    ):
        for name in names:
            monkeypatch.setattr(ours, name, getattr(theirs, name))
    yield


def exercise(metrics: Metrics) -> None:
    """Every kind of update, edge values among them, exemplars on some."""
    for index, value in enumerate(EDGES):
        metrics.request_duration.labels("GET", "/").observe(value)
        exemplar = TRACE if index % 2 else None
        metrics.genai_tokens.labels("chat", "p", "m", "", "input").observe(value, exemplar)
        metrics.active_requests.inc(value)
        metrics.active_agent_runs.labels("a").dec(index)
        metrics.budget_limit.labels("t", "daily").set(value)
        metrics.budget_remaining.labels("t", "daily").set(value)  # mostrecent
        if value >= 0:
            metrics.llm_cost.labels("a", "p", "m").inc(value)
    metrics.llm_ttft.labels("a", "p", "m").observe(math.nan)
    metrics.llm_tokens.labels("a", "p", "m", "prompt").inc(3, TRACE)
    metrics.traces_dropped.inc()
    metrics.active_agent_runs.labels("b").inc(0.5)
    metrics.active_agent_runs.labels("b").inc()
    metrics.budget_limit.labels("t", "monthly").set(7)
    errors: list[str] = []
    for fail in (
        lambda: metrics.requests.inc(),  # a parent
        lambda: metrics.request_duration.observe(1),
        lambda: metrics.llm_cost.labels("a", "p", "m").inc(-1),
        lambda: metrics.budget_remaining.labels("t", "daily").inc(),  # mostrecent
    ):
        with pytest.raises((ValueError, RuntimeError)) as raised:
            fail()
        errors.append(f"{type(raised.value).__name__}: {raised.value}")
    metrics.errors.labels("test", "\n".join(errors)).inc()


def expositions(metrics: Metrics) -> tuple[str, str]:
    """Both formats, without process metrics or exemplar timestamps."""
    text = generate_latest(metrics.registry).decode()
    openmetrics = generate_openmetrics(metrics.registry).decode()  # type: ignore[no-untyped-call]
    return PROCESS.sub("", text), PROCESS.sub("", EXEMPLAR_TIME.sub(r"\1 <time>", openmetrics))


def test_fast_paths_count_what_prometheus_client_counts(request: pytest.FixtureRequest) -> None:
    fast = Metrics(MetricsConfig(enabled=True))
    exercise(fast)
    request.getfixturevalue("prometheus_clients")
    plain = Metrics(MetricsConfig(enabled=True))
    exercise(plain)
    text, openmetrics = expositions(fast)
    assert (text, openmetrics) == expositions(plain)
    assert openmetrics.count(" # {trace_id=") == 4  # 3 buckets', the counter's
    assert fast.request_duration.labels("GET", "/")._fast is not None  # it was the fast path


def test_concurrent_updates_are_exact() -> None:
    """Threads counting the same series while another scrapes lose no count (dyadic
    amounts: the sums are exact in any order). CPython 3.11 with its GIL passes this even
    without the locks; a free-threaded build would not."""
    metrics = Metrics(MetricsConfig(enabled=True))
    counter = metrics.requests.labels("GET", "/", "200", "success")
    histogram = metrics.request_duration.labels("GET", "/")
    gauge = metrics.active_requests
    rounds, threads = 20_000, 4
    done = threading.Event()

    def count() -> None:
        for index in range(rounds):
            counter.inc()
            histogram.observe(0.25 * (index % 4))
            gauge.inc()
            gauge.dec(0.5)

    def scrape() -> None:
        while not done.is_set():
            generate_latest(metrics.registry)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        scraper = threading.Thread(target=scrape)
        scraper.start()
        workers = [threading.Thread(target=count) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        done.set()
        scraper.join()
    finally:
        sys.setswitchinterval(interval)
    total = rounds * threads
    assert counter._value.get() == total
    assert [b.get() for b in histogram._buckets if b.get()] == [total / 4] * 4  # 0 .25 .5 .75
    assert histogram._sum.get() == total * 0.375
    assert gauge._value.get() == total * 0.5


def test_workers_mode_keeps_prometheus_clients_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--workers``: values in files (no fast path), and a scrape of the files shows the
    counts a single process shows."""
    plain = Metrics(MetricsConfig(enabled=True))
    exercise(plain)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    metrics = Metrics(MetricsConfig(enabled=True), str(tmp_path))
    exercise(metrics)
    assert metrics.request_duration.labels("GET", "/")._fast is None
    assert metrics.llm_cost.labels("a", "p", "m")._fast is None
    assert metrics.active_requests._fast is None
    collected = MultiProcessCollector(None, str(tmp_path))  # type: ignore[no-untyped-call]
    files = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples(collected)}
    for sample in samples(plain.registry):
        key = (sample.name, tuple(sorted(sample.labels.items())))
        if sample.name.startswith(("hector_request_duration", "gen_ai_client", "hector_llm")):
            assert files[key] == sample.value or math.isnan(sample.value), key


def samples(collector: Any) -> Iterator[Any]:
    for family in collector.collect():
        yield from family.samples
