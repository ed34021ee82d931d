"""The report of ``scripts/bench.py``: tables, the budget (met/missed), commands, machine."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def _f(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


class Figures:
    """Lookups over the raw results."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.r = results
        self.tp: list[Row] = results.get("throughput", [])

    def run(self, group: str, endpoint: str, concurrency: int) -> Row | None:
        for row in self.tp:
            if (row["group"], row["endpoint"], row["concurrency"]) == (
                group,
                endpoint,
                concurrency,
            ):
                return row
        return None

    def rps(self, group: str, endpoint: str, concurrency: int) -> float | None:
        row = self.run(group, endpoint, concurrency)
        return row["rps"] if row else None

    def saturation(self, group: str, endpoint: str) -> tuple[float | None, int | None]:
        """The best req/s over the concurrency levels, and where."""
        rows = [r for r in self.tp if r["group"] == group and r["endpoint"] == endpoint]
        if not rows:
            return None, None
        best = max(rows, key=lambda r: r["rps"])
        return best["rps"], best["concurrency"]

    def added_p50(self, group: str, endpoint: str, concurrency: int = 1) -> float | None:
        row, direct = self.run(group, endpoint, concurrency), self.run("direct", "/v1", concurrency)
        return row["p50_ms"] - direct["p50_ms"] if row and direct else None

    def slow(self, label: str) -> Row | None:
        return next((r for r in self.r.get("slow_upstream", []) if r["target"] == label), None)

    def stream(self, label: str, concurrency: int) -> Row | None:
        return next(
            (
                r
                for r in self.r.get("streaming", [])
                if r["label"] == label and r["concurrency"] == concurrency
            ),
            None,
        )


def budget(results: dict[str, Any]) -> list[list[str]]:
    """One row per budget item: item, target, measured, verdict."""
    f = Figures(results)
    rows: list[list[str]] = []

    def check(item: str, target: str, measured: str, ok: bool | None) -> None:
        verdict = "-" if ok is None else ("met" if ok else "**missed**")
        rows.append([item, target, measured, verdict])

    floor, floor_c = f.saturation("floor", "/v1")
    for endpoint, share, name in (("/v1", 0.5, "/v1/chat/completions"), ("a2a", 0.4, "A2A send")):
        off, off_c = f.saturation("off", endpoint)
        ratio = _ratio(off, floor)
        check(
            f"obs off: {name} vs floor (best req/s over c)",
            f">= {share:.0%}",
            f"{_f(off, 0)} (c={off_c}) / {_f(floor, 0)} (c={floor_c}) = {_pct(ratio)}",
            None if ratio is None else ratio >= share,
        )
    for endpoint in ("/v1", "a2a"):
        off, _ = f.saturation("off", endpoint)
        on, on_c = f.saturation("observe", endpoint)
        ratio = _ratio(on, off)
        check(
            f"--observe keeps req/s at saturation ({endpoint})",
            ">= 90%",
            f"{_f(on, 0)} (c={on_c}) / {_f(off, 0)} = {_pct(ratio)}",
            None if ratio is None else ratio >= 0.9,
        )
        sampled, sampled_c = f.saturation("sampled", endpoint)
        if sampled is not None:
            check(
                f"(not a budget item) --observe with head sampling ({endpoint}; rate in the table)",
                "-",
                f"{_f(sampled, 0)} (c={sampled_c}) / {_f(off, 0)} = {_pct(_ratio(sampled, off))}",
                None,
            )
    for endpoint, label in (("/v1", "/v1"), ("a2a", "A2A")):
        off_row, on_row = f.slow(f"hector {label}"), f.slow(f"hector --observe {label}")
        if off_row and on_row:
            delta = on_row["p99_ms"] - off_row["p99_ms"]
            check(
                f"--observe adds p99 with a 200 ms upstream ({endpoint})",
                "<= 0.5 ms",
                f"{_f(on_row['p99_ms'])} - {_f(off_row['p99_ms'])} = {_f(delta)} ms",
                delta <= 0.5,
            )
    for endpoint in ("/v1", "a2a"):
        dead_rows = [r for r in f.tp if r["group"] == "dead" and r["endpoint"] == endpoint]
        if not dead_rows:
            continue
        errors = sum(r["errors"] for r in dead_rows)
        dead, _ = f.saturation("dead", endpoint)
        live, _ = f.saturation("observe", endpoint)
        off, _ = f.saturation("off", endpoint)
        ratio = _ratio(dead, live)
        check(
            f"dead exporter ({endpoint}): errors, req/s vs a live exporter",
            "0 errors, >= 95%",
            f"{errors} errors, {_f(dead, 0)} / {_f(live, 0)} = {_pct(ratio)} "
            f"(vs obs off: {_pct(_ratio(dead, off))})",
            None if ratio is None else errors == 0 and ratio >= 0.95,
        )
    litellm = f.rps("litellm", "/v1", 32)
    if litellm is not None:
        hector = f.rps("off", "/v1", 32)
        ratio = _ratio(hector, litellm)
        check(
            "vs LiteLLM: req/s at c=32 (/v1)",
            ">= 10x",
            f"{_f(hector, 0)} / {_f(litellm, 0)} = {_f(ratio, 1)}x",
            None if ratio is None else ratio >= 10,
        )
        ours, theirs = f.added_p50("off", "/v1"), f.added_p50("litellm", "/v1")
        check(
            "vs LiteLLM: added p50 at c=1 (/v1)",
            "<= 1/10 of LiteLLM's",
            f"{_f(ours)} ms vs {_f(theirs)} ms",
            None if ours is None or theirs is None else ours <= theirs / 10,
        )
    elif "litellm_error" in results:
        check("vs LiteLLM", ">= 10x req/s, <= 1/10 added p50", "LiteLLM did not run", None)
    direct = f.stream("direct to fake", 1)
    for label in ("hector /v1", "hector --observe /v1", "hector A2A"):
        row = f.stream(label, 1)
        if direct and row:
            added = row["ttft_p50_ms"] - direct["ttft_p50_ms"]
            check(
                f"streaming adds to TTFT p50, c=1 ({label})",
                "<= 1 ms",
                f"{_f(row['ttft_p50_ms'])} - {_f(direct['ttft_p50_ms'])} = {_f(added)} ms",
                added <= 1.0,
            )
    for row in results.get("scrape", []):
        if row["format"] == "prometheus text":
            check(
                f"/metrics scrape, {row['series']:,} series",
                "<= 50 ms",
                f"p50 {_f(row['p50_ms'], 1)} ms, max {_f(row['max_ms'], 1)} ms",
                row["p50_ms"] <= 50 and row["series"] >= 10_000,
            )
    startup = results.get("startup")
    if startup:
        help_s = statistics.median(startup["help_s"])
        check("`hector --help`", "<= 0.3 s", f"median {_f(help_s, 3)} s", help_s <= 0.3)
        for mode, times in startup["ready_s"].items():
            ready = statistics.median(times)
            check(
                f"`serve` to /health/ready 200 ({mode})",
                "<= 1.5 s",
                f"median {_f(ready, 3)} s",
                ready <= 1.5,
            )
    memory = results.get("memory")
    if memory:
        idle = memory["idle_kb"] / 1024
        check("idle RSS, --observe", "<= 100 MB", f"{_f(idle, 1)} MiB", idle <= 100)
        per = memory["per_stream_kb"]
        check(
            f"RSS per open stream ({memory['streams']['open']} streams)",
            "<= 50 KB",
            f"{_f(per, 1)} KiB",
            per <= 50,
        )
    return rows


def render(results: dict[str, Any], commands: dict[str, str], work: Path) -> str:
    """The whole report, as Markdown."""
    f = Figures(results)
    m = results["machine"]
    out: list[str] = []
    out.append("## Machine")
    out.append("")
    out.append(
        f"- {m['date']}; {m['cores']} cores, {m['cpu']}; Python {m['python']}; {m['platform']}"
    )
    out.append(
        f"- hector-py {m['hector_py']}, aiohttp {m['aiohttp']}, uvloop {m['uvloop']}; "
        f"load generator: {results['loadgen']} ({m['wrk']})"
    )
    out.append(
        f"- load average (1/5/15 min): {m['load_average_at_start']} at start, "
        f"{results.get('load_average_at_end', '?')} at the end; wall time "
        f"{results.get('wall_s', 0):.0f} s"
    )
    out.append(f"- command: `python scripts/bench.py {' '.join(sys.argv[1:])}`")
    if results.get("section_s"):
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in results["section_s"].items())
        out.append(f"- time per section: {parts}")
    settings = results["settings"]
    out.append(
        f"- each throughput cell: {settings['warmup']:g} s warm-up + {settings['duration']:g} s"
        f" measured, best of {settings['rounds']} round(s) (targets alternate order per round)"
    )
    command_rows: list[str] = []

    if f.tp:
        out += ["", "## Throughput and latency (zero-latency fake upstream)", ""]
        rows = []
        for index, row in enumerate(
            sorted(f.tp, key=lambda r: (r["concurrency"], _order(r))), start=1
        ):
            key = f"T{index}"
            floor = f.rps("floor", "/v1", row["concurrency"])
            off = f.rps("off", row["endpoint"], row["concurrency"])
            direct = f.run("direct", "/v1", row["concurrency"])
            compared = row["group"] in ("observe", "sampled", "dead")
            vs_off = _pct(_ratio(row["rps"], off)) if compared else ""
            added = (
                row["p50_ms"] - direct["p50_ms"] if direct and row["group"] != "direct" else None
            )
            rows.append(
                [
                    key,
                    str(row["concurrency"]),
                    row["target"],
                    _f(row["rps"], 0),
                    _f(row["p50_ms"]),
                    _f(row["p99_ms"]),
                    _f(added) if added is not None else "",
                    str(row["errors"]),
                    _f(row["extra"].get("cpu_us_per_request"), 0),
                    _pct(_ratio(row["rps"], floor)) if row["group"] != "direct" else "",
                    vs_off,
                    row["load_average"].split()[0],
                ]
            )
            command_rows.append(f"- {key}: `{row['command']}`")
        out += _table(
            [
                "#",
                "c",
                "target",
                "req/s",
                "p50 ms",
                "p99 ms",
                "added p50 ms",
                "errors",
                "server CPU µs/req",
                "vs floor",
                "vs obs off",
                "load",
            ],
            rows,
        )
        out.append("")
        out.append(
            "added p50 = p50 minus the p50 of the same load sent straight to the fake; "
            "server CPU = user+system CPU time of the server process (all its threads) over "
            "the measured run, per request: less sensitive than req/s to what else the "
            "machine runs; 'load' is the 1-minute load average when the run started."
        )
        spans = results.get("spans")
        if spans:
            sent = spans["observe_requests_approx"]
            out.append(
                f"The live OTLP receiver got {spans['spans']:,} spans in "
                f"{spans['requests']:,} export requests for about {sent:,} requests to the "
                f"--observe server ({_f(spans['spans'] / sent if sent else None, 2)} "
                "spans per request)."
            )

    if results.get("streaming"):
        out += ["", "## Streaming (fake: 4 characters per chunk, 5 ms apart)", ""]
        rows = []
        for index, row in enumerate(results["streaming"], start=1):
            key = f"S{index}"
            direct = f.stream("direct to fake", row["concurrency"])
            added = (
                row["ttft_p50_ms"] - direct["ttft_p50_ms"] if direct and row is not direct else None
            )
            rows.append(
                [
                    key,
                    str(row["concurrency"]),
                    row["label"],
                    _f(row["ttft_p50_ms"]),
                    _f(row["ttft_p99_ms"]),
                    _f(added) if added is not None else "",
                    _f(row["chunks_per_s"], 0),
                    _f(row["total_p50_ms"], 1),
                    str(row["errors"]),
                    row["load"].split()[0],
                ]
            )
            command_rows.append(f"- {key}: `{row['command']}`")
        out += _table(
            [
                "#",
                "c",
                "target",
                "TTFT p50 ms",
                "TTFT p99 ms",
                "added TTFT p50 ms",
                "chunks/s",
                "stream p50 ms",
                "errors",
                "load",
            ],
            rows,
        )
        out.append("")
        out.append(
            "TTFT: from sending the request to the first event that carries reply text "
            "(role-only and status events do not count)."
        )

    if results.get("slow_upstream"):
        settings_clients = results["settings"]["slow_clients"]
        out += ["", f"## Added latency: 200 ms upstream, {settings_clients} clients", ""]
        rows = []
        for index, row in enumerate(results["slow_upstream"], start=1):
            key = f"L{index}"
            rows.append(
                [
                    key,
                    row["target"],
                    _f(row["rps"], 0),
                    _f(row["extra"]["added_p50_ms"]),
                    _f(row["extra"]["added_p99_ms"]),
                    str(row["errors"]),
                    _f(row["extra"].get("cpu_us_per_request"), 0),
                    row["load_average"].split()[0],
                ]
            )
            command_rows.append(f"- {key}: `{row['command']}`")
        out += _table(
            [
                "#",
                "target",
                "req/s",
                "added p50 ms",
                "added p99 ms",
                "errors",
                "server CPU µs/req",
                "load",
            ],
            rows,
        )
        out.append("")
        out.append("added = client latency minus the fake's 200 ms.")

    if results.get("scrape"):
        out += ["", "## /metrics scrape", ""]
        rows = []
        for index, row in enumerate(results["scrape"], start=1):
            key = f"M{index}"
            rows.append(
                [
                    key,
                    row["format"],
                    f"{row['series']:,}",
                    f"{row['bytes']:,}",
                    _f(row["p50_ms"], 1),
                    _f(row["max_ms"], 1),
                ]
            )
            command_rows.append(f"- {key}: {row['command']} (`{commands.get('hector-metrics')}`)")
        out += _table(["#", "format", "series", "bytes per scrape", "p50 ms", "max ms"], rows)

    startup = results.get("startup")
    if startup:
        out += ["", "## Start-up", ""]
        rows = [
            [
                "U1",
                "`hector --help`",
                _f(statistics.median(startup["help_s"]), 3),
                _f(min(startup["help_s"]), 3),
                str(len(startup["help_s"])),
            ]
        ]
        command_rows.append(f"- U1: `{startup['help_command']}` (wall time of the process)")
        for index, (mode, times) in enumerate(startup["ready_s"].items(), start=2):
            rows.append(
                [
                    f"U{index}",
                    f"`hector serve` ({mode}) to /health/ready 200",
                    _f(statistics.median(times), 3),
                    _f(min(times), 3),
                    str(len(times)),
                ]
            )
            command_rows.append(
                f"- U{index}: `{commands.get(f'startup {mode}')}`, polling /health/ready every 5 ms"
            )
        if "litellm_ready_s" in startup:
            times = startup["litellm_ready_s"]
            rows.append(
                [
                    f"U{len(rows) + 1}",
                    "LiteLLM proxy to /health/readiness 200",
                    _f(statistics.median(times), 3),
                    _f(min(times), 3),
                    str(len(times)),
                ]
            )
            command_rows.append(f"- U{len(rows)}: `{commands.get('litellm')}`")
        out += _table(["#", "what", "median s", "min s", "runs"], rows)
        out.append(f"\nload average during start-up runs: {startup['load_average']}")

    memory = results.get("memory")
    if memory:
        out += ["", "## Memory (hector --observe, live receiver)", ""]
        rows = [
            ["R1", "RSS idle, just started", _f(memory["idle_kb"] / 1024, 1) + " MiB"],
            ["R2", "RSS after 100 warm-up requests", _f(memory["warm_kb"] / 1024, 1) + " MiB"],
            [
                "R3",
                f"RSS with {memory['streams']['open']} open slow streams",
                _f(memory["with_streams_kb"] / 1024, 1) + " MiB",
            ],
            ["R4", "per open stream, (R3 - R2) / streams", _f(memory["per_stream_kb"], 1) + " KiB"],
        ]
        if "litellm_rss_idle_kb" in results:
            rows.append(
                [
                    "R5",
                    "LiteLLM proxy RSS idle, just started (process tree)",
                    _f(results["litellm_rss_idle_kb"] / 1024, 1) + " MiB",
                ]
            )
        if "litellm_rss_after_kb" in results:
            rows.append(
                [
                    "R6",
                    "LiteLLM proxy RSS after its load runs (process tree)",
                    _f(results["litellm_rss_after_kb"] / 1024, 1) + " MiB",
                ]
            )
        out += _table(["#", "what", "value"], rows)
        command_rows.append(f"- R3: `{memory['command']}`")

    if "litellm_error" in results:
        out += ["", "## LiteLLM", "", "LiteLLM could not be run:", "", "```"]
        out += [results["litellm_error"][-1500:], "```"]

    profiles = results.get("profiles")
    if profiles:
        out += ["", "## Profiles (py-spy, samples holding the GIL, c=32)", ""]
        for label, entry in profiles.items():
            out += [f"### {label}", "", f"`{entry['command']}`", "", entry["summary"], ""]

    out += ["", "## Budget", ""]
    out += _table(["item", "target", "measured", "verdict"], budget(results))

    out += ["", "## Commands", ""]
    out += [f"- {name}: `{command}`" for name, command in commands.items()]
    out += command_rows
    for name in ("hector-off.yaml", "litellm.yaml"):
        path = work / name
        if path.exists():
            out += ["", f"`{name}`:", "", "```yaml", path.read_text().rstrip(), "```"]
    return "\n".join(out) + "\n"


_GROUP_ORDER = {
    "direct": 0,
    "floor": 1,
    "off": 2,
    "observe": 3,
    "sampled": 4,
    "dead": 5,
    "litellm": 6,
}


def _order(row: Row) -> tuple[int, str]:
    return _GROUP_ORDER.get(row["group"], 9), row["endpoint"]
