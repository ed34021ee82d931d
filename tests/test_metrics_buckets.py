"""Duration histograms reach the longest run the server allows: a model call may take
``llms.*.timeout.total`` (600 s by default), so HTTP, LLM and run buckets go past it."""

from __future__ import annotations

import re
from typing import Any

import httpx

from hector_py.config.llm import LLMTimeout
from tests.conftest import Server, rpc, v03_message


def test_duration_buckets_reach_past_the_longest_model_call(serve: Any) -> None:
    server: Server = serve("--metrics")
    rpc(server.url + "/", "message/send", v03_message("hi"))
    text = httpx.get(server.url + "/metrics", timeout=10).text
    longest = LLMTimeout().total  # the default ceiling of one model call
    for family in (
        "hector_request_duration_seconds",
        "hector_agent_request_duration_seconds",
        "hector_llm_request_duration_seconds",
    ):
        bounds = [float(le) for le in re.findall(rf'^{family}_bucket{{.*?le="([^"]+)"', text, re.M)]
        finite = [b for b in bounds if b != float("inf")]
        assert finite and max(finite) >= longest, (family, max(finite, default=None))
