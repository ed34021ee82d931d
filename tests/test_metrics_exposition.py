"""The ``/metrics`` exposition writes, byte for byte, what prometheus_client's own encoders
write for the same samples (with ``const_labels`` added to each), in every format and name
escaping a scrape can negotiate, in one process and in ``--workers`` mode; and it renders
off the event loop, once for scrapes that arrive together."""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import Collector
from prometheus_client.samples import Timestamp

from hector_py.config.model import MetricsConfig
from hector_py.observability.metrics import Metrics
from tests.conftest import SHARED_STORE, FakeLLM, Server, clean_env, start_fake_llm, v03_message

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
ACCEPTS = [
    "",
    "text/plain",
    *(f"text/plain; version=1.0.0; escaping={e}" for e in ("underscores", "allow-utf-8")),
    *(f"text/plain; version=1.0.0; escaping={e}" for e in ("dots", "values")),
    "application/openmetrics-text",
    OPENMETRICS,
    "application/openmetrics-text; version=2.0.0",
    *(f"{OPENMETRICS}; escaping={e}" for e in ("allow-utf-8", "dots", "values")),
]
CONST = {"environment": 'prod "eu"', "region": "us\\east\n1"}
# label values that need escaping, or that a careless line splitter would break on
TRICKY = ['a"b', "c\\d", "e\nf", "ü ✓", "line\u2028sep", "", "{x=1} 2 # 3", "\\n"]
# process metrics change by themselves between two renders
VOLATILE = re.compile(r"^((?:U__)?process_\w+(?:\{.*\})?) \S+$", re.MULTILINE)


class Relabelled(Collector):
    """What hector's scrape is meant to show: ``inner``'s samples with ``labels`` added."""

    def __init__(self, inner: Collector, labels: dict[str, str]) -> None:
        self._inner, self._labels = inner, labels

    def collect(self) -> Iterator[Metric]:
        """The inner families, every sample relabelled."""
        for family in self._inner.collect():
            relabelled = Metric(family.name, family.documentation, family.type, family.unit)
            relabelled.samples = [
                s._replace(labels={**self._labels, **s.labels}) for s in family.samples
            ]
            yield relabelled


def reference(collector: Collector, accept: str) -> bytes:
    """prometheus_client's exposition of ``collector`` for a scrape with ``accept``."""
    encoder, _ = choose_encoder(accept)
    return encoder(collector)


def scrape(metrics: Metrics, accept: str) -> tuple[bytes, str]:
    return asyncio.run(metrics.scrape(accept))


def stable(body: bytes) -> str:
    return VOLATILE.sub(r"\1 <value>", body.decode())


def populate(metrics: Metrics, round_: int) -> None:
    """Series with tricky labels and values, exemplars among them; each round changes
    values, adds series and (from round 1) removes one."""
    for index, value in enumerate(TRICKY):
        exemplar = {"trace_id": f"{index:032x}", "note": value} if index % 2 else None
        metrics.llm_duration.labels(value, "openai", "m").observe(0.05 * index, exemplar)
        metrics.llm_tokens.labels(value, "openai", "m", "prompt").inc(index + round_)
        metrics.tool_calls.labels(value, f"tool{round_}", "success").inc()
        metrics.active_agent_runs.labels(value).set(index - 3.5)
    metrics.llm_duration.labels("inf", "openai", "m").observe(math.inf, {"trace_id": "f" * 32})
    metrics.llm_duration.labels("nan", "openai", "m").observe(math.nan)
    metrics.llm_ttft.labels("big", "openai", "m").observe(1.5e7 * (round_ + 1))
    metrics.requests.labels("GET", "/x", "200", "success").inc(1e21 + round_)
    metrics.errors.labels("llm", "timeout").inc(0.1 + 0.2)
    for tenant, number in (("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)):
        metrics.budget_remaining.labels(tenant, "daily").set(number)
    metrics.budget_limit.labels("zero", "daily").set(-0.0 if round_ % 2 else 0.0)
    metrics.active_requests.inc()
    if round_:
        metrics.tool_calls.remove(TRICKY[0], f"tool{round_ - 1}", "success")


@pytest.mark.parametrize("accept", ACCEPTS)
def test_scrape_is_prometheus_clients_exposition(accept: str) -> None:
    config = MetricsConfig(enabled=True, namespace="acme", subsystem="agents", const_labels=CONST)
    metrics = Metrics(config)
    expected = Relabelled(metrics.registry, CONST)
    _, content_type = choose_encoder(accept)
    for round_ in range(3):  # the later scrapes reuse the series text of the earlier ones
        populate(metrics, round_)
        body, served_type = scrape(metrics, accept)
        assert served_type == content_type
        assert stable(body) == stable(reference(expected, accept))
    if content_type.startswith("application/openmetrics-text"):  # exemplars were there
        assert f' # {{note="c\\\\d",trace_id="{1:032x}"}} 0.05 ' in body.decode()


def test_scrape_without_const_labels_or_series() -> None:
    metrics = Metrics(MetricsConfig(enabled=True))
    for accept in ("text/plain", OPENMETRICS):
        body, _ = scrape(metrics, accept)
        assert stable(body) == stable(reference(metrics.registry, accept))


def test_scrapes_render_off_the_loop_and_share_a_render(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = Metrics(MetricsConfig(enabled=True))
    metrics.requests.labels("GET", "/", "200", "success").inc()
    render, renders = metrics._render, []
    release = threading.Event()

    def slow_render(exposition: Any) -> bytes:
        renders.append(exposition)
        assert release.wait(10), "the event loop stood still while a render ran"
        return render(exposition)

    monkeypatch.setattr(metrics, "_render", slow_render)

    async def main() -> list[tuple[bytes, str]]:
        scrapes = [metrics.scrape(a) for a in ("text/plain", "", "text/plain", OPENMETRICS)]
        tasks = [asyncio.create_task(s) for s in scrapes]
        await asyncio.sleep(0.05)  # runs only if the renders leave the loop free
        release.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    assert len(renders) == 2  # one per format
    assert results[0] == results[1] == results[2]
    assert results[3][0].endswith(b"# EOF\n")
    scrape(metrics, "text/plain")
    scrape(metrics, "text/plain")
    assert len(renders) == 4  # later scrapes render anew


# --- through the real server ---------------------------------------------------------------

MODEL = 'gpt "4" \\ x\nü\u2028'  # becomes the ``model`` label value
SERVER_CONFIG = """\
llms:
  default: {{provider: openai, model: {model}, base_url: "{url}", max_retries: 0}}
agents:
  x: {{}}
observability:
  metrics:
    enabled: true
    port: 0
    namespace: acme
    subsystem: agents
    const_labels: {const}
{tracing}"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLM]:
    fake = start_fake_llm("openai", "--usage", "11,7")
    yield fake
    fake.stop()


def start(
    serve: Any, upstream: FakeLLM, tmp_path: Path, *args: str, tracing: str = ""
) -> tuple[Server, str]:
    """A server with tricky label values (model, const labels) after three requests, and
    its metrics URL (a listener of its own: scrapes there change no metric)."""
    config = tmp_path / "hector.yaml"
    model, const = json.dumps(MODEL), json.dumps(CONST)  # YAML flow scalars
    config.write_text(
        SERVER_CONFIG.format(model=model, url=upstream.base_url, const=const, tracing=tracing)
    )
    server: Server = serve(
        "-c",
        str(config),
        "--log-format",
        "json",
        *args,
        env=clean_env(TMPDIR=str(tmp_path), **(SHARED_STORE if "--workers" in args else {})),
    )
    for _ in range(3):
        reply = httpx.post(
            server.url + "/",
            json={"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": v03_message("hi")},
            timeout=10,
        )
        assert reply.json()["result"]["status"]["state"] == "completed", reply.text
    lines = server.log_path.read_text(encoding="utf-8").split("\n")  # not at U+2028
    banner = next(json.loads(line) for line in lines if "listening on" in line)
    return server, str(banner["metrics"])


def escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def get(url: str, accept: str) -> tuple[bytes, str]:
    response = httpx.get(url, headers={"Accept": accept}, timeout=10)
    assert response.status_code == 200
    return response.content, response.headers["content-type"]


def reparsed(body: bytes, openmetrics: bool) -> bytes:
    """prometheus_client's own exposition of the samples it parses out of ``body``."""
    parse = parse_om if openmetrics else parse_text
    families = list(parse(body.decode()))
    for family in families:  # the parser reads exemplar timestamps as Timestamp objects
        family.samples = [
            s._replace(exemplar=s.exemplar._replace(timestamp=float(str(s.exemplar.timestamp))))
            if s.exemplar is not None and isinstance(s.exemplar.timestamp, Timestamp)
            else s
            for s in family.samples
        ]
    return reference(Families(families), OPENMETRICS if openmetrics else "text/plain")


class Families(Collector):
    """Parsed metric families, as a collector."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> list[Metric]:
        """The families."""
        return self._families


def test_server_scrape_is_prometheus_clients_exposition(
    serve: Any, upstream: FakeLLM, tmp_path: Path
) -> None:
    """One process, traces sampled (exemplars): each format's body is what
    prometheus_client writes for the samples it reads back from it."""
    with socket.socket() as probe:  # a collector nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    tracing = f"  tracing: {{enabled: true, endpoint: '127.0.0.1:{closed}', sampling_rate: 1}}\n"
    server, url = start(serve, upstream, tmp_path, tracing=tracing)
    text, _ = get(url, "text/plain")
    assert text == reparsed(text, openmetrics=False)
    om, content_type = get(url, OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text")
    assert om == reparsed(om, openmetrics=True)
    families = parse_om(om.decode())  # type: ignore[no-untyped-call]
    samples = [s for family in families for s in family.samples]
    llm = [s for s in samples if s.name == "acme_agents_llm_request_duration_seconds_bucket"]
    assert llm and all(s.labels["model"] == MODEL for s in llm)
    assert any(s.exemplar for s in llm)
    assert all(s.labels["environment"] == CONST["environment"] for s in samples)
    assert all(s.labels["region"] == CONST["region"] for s in samples)
    server.proc.kill()  # rather than wait for its spans' flush to the dead collector
    server.proc.wait(5)


def test_workers_scrape_is_prometheus_clients_exposition(
    serve: Any, upstream: FakeLLM, tmp_path: Path
) -> None:
    """``--workers 2``: byte for byte prometheus_client's exposition of its own
    aggregation of the workers' files."""
    _, url = start(serve, upstream, tmp_path, "--workers", "2")
    [files] = tmp_path.glob("hector-metrics-*")
    aggregated = MultiProcessCollector(None, str(files))  # type: ignore[no-untyped-call]
    expected = Relabelled(aggregated, CONST)
    for accept in ("text/plain", OPENMETRICS, f"{OPENMETRICS}; escaping=allow-utf-8"):
        body, _ = get(url, accept)
        assert body == reference(expected, accept)
        assert f'model="{escaped(MODEL)}"' in body.decode()
