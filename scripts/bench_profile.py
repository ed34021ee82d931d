"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) as text tables.

    py-spy record -p PID -d 10 -r 200 --threads -f raw -o prof.txt
    python scripts/bench_profile.py prof.txt [--top 25] [--thread MainThread]
    python scripts/bench_profile.py 'observe@339us.txt' --against 'off@254us.txt'

Prints the share of samples per thread, the share of each part of the telemetry (each
sample goes to the part of its innermost frame that belongs to one; with ``--cpu-us``, the
server's CPU per request, also as microseconds per request), then the functions with the
largest inclusive share (time spent in them or anything they called) and the largest
self share. ``--against`` compares two profiles of ``bench_ab.py --profile``: the
functions whose µs per request grew most.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_ENTRY = re.compile(
    r"\((typer/|asyncio/runners\.py|threading\.py|hector\)|hector_py/cli/)"
    r"|^(BaseEventLoop\.(run_forever|run_until_complete|_run_once)|Handle\._run|<module>) "
)
COMPONENTS = (  # (part, what its frames contain), the first match wins
    (
        "export (batch processor, encoding)",
        ("export_process.py", "exporter/", "grpc/", "_shared_internal/", "trace/export/"),
    ),
    (
        "metrics (prometheus_client)",
        (
            "prometheus_client/",
            "observability/metrics.py",
            "observability/exposition.py",
            "observability/counters.py",
            "record_llm_metrics",
        ),
    ),
    ("run console (held logs, spans, runs)", ("observability/console.py", "agent/board.py")),
    ("logging (access line, log context)", ("logging/", "observability/logs.py")),
    ("trace context propagation", ("inject_traceparent", "propagat")),
    ("spans and the flight recorder", ("observability/", "opentelemetry/")),
)
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def _part(frames: list[str]) -> str:
    """The innermost telemetry part on the stack; serving work it wraps (aiohttp sending a
    request inside the ``traceparent`` middleware) is not the telemetry's."""
    for frame in reversed(frames):
        for name, marks in COMPONENTS:
            if any(mark in frame for mark in marks):
                return name
        if "aiohttp/" in frame:
            break
    return "the rest (serving)"


def components(stacks: list[tuple[list[str], int]], total: int, cpu_us: float | None) -> list[str]:
    """The telemetry's parts: each sample goes to the part of its innermost frame in one."""
    parts: Counter[str] = Counter()
    for frames, count in stacks:
        parts[_part(frames)] += count
    unit = " | µs per request" if cpu_us else ""
    out = ["", f"| part | share of samples{unit} |", "|---|---|" + ("---|" if cpu_us else "")]
    for name, count in parts.most_common():
        per_request = f" | {count / total * cpu_us:.0f}" if cpu_us else ""
        out.append(f"| {name} | {count / total:.1%}{per_request} |")
    return out


def summarise(
    stacks: list[tuple[list[str], int]], top: int, thread: str | None, cpu_us: float | None = None
) -> str:
    out = []
    threads: Counter[str] = Counter()
    for frames, count in stacks:
        threads[frames[0].strip()] += count
    total = sum(threads.values())
    out.append(f"{total} samples")
    out.append("")
    out.append("| thread | share |")
    out.append("|---|---|")
    for name, count in threads.most_common(8):
        out.append(f"| {name} | {count / total:.1%} |")
    out += components(stacks, total, cpu_us)
    if thread:
        stacks = [(f, c) for f, c in stacks if thread in f[0]]
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks:
        names = [_short(f) for f in frames[1:]] or [frames[0]]
        for name in set(names):
            inclusive[name] += count
        own[names[-1]] += count
    subset = sum(c for _, c in stacks)
    scope = f" (thread {thread}: {subset} samples)" if thread else ""
    for title, counter in (("inclusive", inclusive), ("self", own)):
        out.append("")
        out.append(f"| {title}{scope} | share of all samples |")
        out.append("|---|---|")
        shown = 0
        for name, count in counter.most_common():
            if title == "inclusive" and _ENTRY.search(name):
                continue  # entry points (the CLI, the event loop, threads): in every sample
            out.append(f"| `{name}` | {count / total:.1%} |")
            shown += 1
            if shown == top:
                break
    return "\n".join(out)


def per_request(path: Path, cpu_us: float) -> Counter[str]:
    """µs per request spent in each function (inclusive) of one profile."""
    stacks = load(path)
    total = sum(c for _, c in stacks)
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        for name in {_short(f) for f in frames[1:]}:
            inclusive[name] += count
    return Counter({name: count / total * cpu_us for name, count in inclusive.items()})


def against(base: Path, other: Path, top: int) -> str:
    """The functions whose inclusive µs per request grow most from ``base`` to ``other``
    (files named ``NAME@<cpu>us.txt``, as ``bench_ab.py --profile`` writes them)."""
    cpu = [float(p.stem.rpartition("@")[2].removesuffix("us")) for p in (base, other)]
    before, after = per_request(base, cpu[0]), per_request(other, cpu[1])
    out = [f"{base.stem} -> {other.stem}: {cpu[1] - cpu[0]:+.0f} µs per request", ""]
    out += ["| function (inclusive) | before | after | change µs/req |", "|---|---|---|---|"]
    growth = Counter({n: after[n] - before.get(n, 0.0) for n in after})
    for name, change in growth.most_common(top):
        out.append(
            f"| `{name}` | {before.get(name, 0.0):.1f} | {after[name]:.1f} | {change:+.1f} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--against", type=Path, default=None, help="a profile of the same load to compare with"
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", default=None, help="only stacks of this thread")
    parser.add_argument("--cpu-us", type=float, default=None, help="server CPU per request")
    args = parser.parse_args()
    if args.against:
        print(against(args.against, args.file, args.top))
        return
    print(summarise(load(args.file), args.top, args.thread, args.cpu_us))


if __name__ == "__main__":
    main()
