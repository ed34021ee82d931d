"""Histogram bucket boundaries of the metrics, and exemplars set after the fact."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from prometheus_client.samples import Exemplar

# Bucket boundaries (seconds). LLM calls follow the OpenTelemetry GenAI semantic conventions
# (gen_ai.client.operation.duration, gen_ai.server.time_to_first_token); HTTP follows
# http.server.request.duration; agent runs span several LLM calls, tools are usually quick.
# HTTP, LLM and run buckets reach past the longest call a model may take (llms.*.timeout.total,
# 600 s by default), so a slow run lands in a bucket instead of +Inf.
HTTP_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60),
    *(120, 300, 600, 1200),
)
LLM_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
    163.84,
    327.68,
    655.36,
)
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
AGENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640, 1280)
TOOL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# gen_ai.client.token.usage's advised boundaries (OpenTelemetry GenAI conventions).
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
SEARCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
RESULT_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50)


def mark_exemplar(histogram: Any, value: float, trace_id: str, at: float) -> None:
    """Give the bucket of a histogram series that ``value`` was counted in the exemplar
    ``trace_id`` at ``at`` (what ``observe(value, exemplar)`` sets, decided later: the
    flight recorder knows a trace is kept only when it ends)."""
    bounds, buckets = histogram._upper_bounds, histogram._buckets
    index = bisect_left(bounds, value)
    if index < len(buckets):
        buckets[index].set_exemplar(Exemplar({"trace_id": trace_id}, value, at))
