"""What ``hector top`` shows, computed from two scrapes of ``/metrics`` (parsed by
prometheus_client's own text parser) taken ``seconds`` apart: rates from counter deltas,
latency quantiles from histogram bucket deltas (linear within a bucket, as PromQL's
``histogram_quantile`` does)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, tuple[tuple[str, str], ...]]
"""A sample: its name and its sorted labels."""
UNWATCHED_ROUTES = ("/health", "/health/live", "/health/ready", "/metrics", "/console")


def parse(text: str) -> dict[Key, float]:
    """Every sample of a scrape."""
    samples: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@dataclass
class Snapshot:
    """The view between two scrapes."""

    seconds: float
    requests_per_s: float = 0.0
    error_ratio: float = 0.0
    latency: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Agent -> (p50, p95) seconds of its runs in the interval."""
    tokens_per_s: dict[str, float] = field(default_factory=dict)
    """``provider/model`` -> tokens per second."""
    cost_per_h: dict[str, float] = field(default_factory=dict)
    active: dict[str, float] = field(default_factory=dict)
    """Agent -> runs in progress now."""


def _delta(before: dict[Key, float], after: dict[Key, float], name: str) -> dict[Key, float]:
    return {
        key: max(value - before.get(key, 0.0), 0.0)
        for key, value in after.items()
        if key[0] == name
    }


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """The ``q`` quantile of cumulative ``(le, count)`` buckets (``nan`` when empty)."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * (
                (rank - lower_count) / width if width else 1
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def snapshot(before: str, after: str, seconds: float, prefix: str = "hector_") -> Snapshot:
    """The view from two scrapes ``seconds`` apart."""
    old, new = parse(before), parse(after)
    view = Snapshot(seconds)
    requests = _delta(old, new, f"{prefix}requests_total")
    watched = {
        key: count
        for key, count in requests.items()
        if not dict(key[1]).get("route", "").startswith(UNWATCHED_ROUTES)
    }
    total = sum(watched.values())
    view.requests_per_s = total / seconds
    failed = sum(n for key, n in watched.items() if dict(key[1]).get("code", "").startswith("5"))
    view.error_ratio = failed / total if total else 0.0
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key, count in _delta(old, new, f"{prefix}agent_request_duration_seconds_bucket").items():
        labels = dict(key[1])
        buckets[labels["agent"]].append((float(labels["le"]), count))
    for agent, counts in buckets.items():
        if counts and max(c for _, c in counts) > 0:
            view.latency[agent] = (quantile(0.5, counts), quantile(0.95, counts))
    for name, into, scale in (
        ("llm_tokens_total", view.tokens_per_s, 1.0),
        ("llm_cost_usd_total", view.cost_per_h, 3600.0),
    ):
        for key, count in _delta(old, new, prefix + name).items():
            labels = dict(key[1])
            model = f"{labels.get('provider', '')}/{labels.get('model', '')}"
            into[model] = into.get(model, 0.0) + count * scale / seconds
    for key, value in new.items():
        if key[0] == f"{prefix}active_agent_runs":
            agent = dict(key[1]).get("agent", "")
            view.active[agent] = view.active.get(agent, 0.0) + value
    return view
