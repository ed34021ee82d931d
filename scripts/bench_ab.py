"""A/B of hector servers, alternating: req/s and server CPU per request under one load,
for observability variants of this tree and for other trees (a worktree of another
commit), so differences of a few percent show above the machine's noise.

    python scripts/bench_ab.py off metrics recorder console observe
    python scripts/bench_ab.py off observe observe@/work/wt/before --endpoint a2a
    python scripts/bench_ab.py observe sampled --rounds 6 --seconds 8

Variants: ``off`` (no telemetry), ``metrics`` (``--metrics``), ``recorder`` (tracing with
the flight recorder, no metrics or console), ``console`` (the run console alone),
``observe`` (``--observe``), ``sampled`` (``--observe`` exporting every trace); joined
with ``+`` they add up (``metrics+recorder``). ``VARIANT@DIR`` runs the hector_py of DIR (a
checkout) instead of this tree's. All the servers run at once on the same fake upstream and
live OTLP receiver (from ``scripts/bench.py``), pinned to CPU 0 (``taskset``; the load
generator and the fakes, not pinned, mostly run on the other), each as ``--copies``
processes: two processes of the same code differ by up to 17 % unpinned and 4-8 % pinned on
this 2-core VM (placement and memory layout), so one process per variant measures the
process, not the code. Each round measures every process in turn, the order reversed every
other round, after waiting for an idle machine; the table shows the median over a server's
processes of each one's best req/s and lowest CPU per request, and both against the first
server. Not run by CI.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # scripts/bench.py
    FULL,
    HOST,
    SAMPLED_RATE,
    SAMPLING_ENV,
    Bench,
    Target,
    a2a_body,
    free_port,
    hector_bin,
    openai_body,
    py_spy,
    wait_quiet,
    wait_ready,
)

ENV = "HECTOR_OBSERVABILITY__"
VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {  # flags (receiver: {r}), env
    "off": ([], {}),
    "metrics": (["--metrics"], {}),
    "recorder": (["--tracing-endpoint", "{r}"], {f"{ENV}TRACING__KEEP__ENABLED": "true"}),
    "console": ([], {f"{ENV}CONSOLE__ENABLED": "true"}),
    "observe": (["--observe", "--tracing-endpoint", "{r}"], {}),
    "sampled": (["--observe", "--tracing-endpoint", "{r}"], {SAMPLING_ENV: str(SAMPLED_RATE)}),
}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("servers", nargs="+", help="VARIANT or VARIANT@DIR")
    parser.add_argument("--endpoint", choices=("v1", "a2a"), default="v1")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=5, help="measured per cell (wrk)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--copies", type=int, default=3, help="processes per server (they differ by up to 8 %%)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="then py-spy each server's first process under the load into this folder"
        " (compare two with bench_profile.py --against)",
    )
    args = parser.parse_args()
    for server in args.servers:
        variant, _, tree = server.partition("@")
        if not set(variant.split("+")) <= VARIANTS.keys():
            parser.error(f"{server}: unknown variant (of {', '.join(VARIANTS)}, joined by +)")
        if tree and not (Path(tree) / "hector_py").is_dir():
            parser.error(f"{server}: {tree} holds no hector_py")
    return args


def main() -> None:
    args = parse()
    args.loadgen = "auto"
    bench = Bench(args, FULL, Path(tempfile.mkdtemp(prefix="hector-ab-")))
    try:
        bench.start_fakes()
        _, receiver = bench.start_receiver()
        if args.endpoint == "v1":
            body, path, expect = (
                bench.body("openai", openai_body("bench")),
                "/v1/chat/completions",
                "chat.completion",
            )
        else:
            body, path, expect = bench.body("a2a", a2a_body()), "/agents/bench", "completed"
        targets = []  # (server, its process number)
        for index, server in enumerate(args.servers):
            variant, _, tree = server.partition("@")
            flags: list[str] = []
            extra: dict[str, str] = {}
            for part in variant.split("+"):
                flags += [f for f in VARIANTS[part][0] if f not in flags]
                extra |= VARIANTS[part][1]
            env = {**bench.env, **extra}
            if tree:
                env["PYTHONPATH"] = str(Path(tree).resolve()) + ":" + env["PYTHONPATH"]
            for copy in range(args.copies):
                port = free_port()
                config = bench.hector_config(f"ab-{index}-{copy}", port)
                cmd = ["taskset", "-c", "0", hector_bin(), "serve", "-c", str(config)]
                cmd += [f.format(r=receiver) for f in flags]
                proc = bench.procs.start(f"ab-{index}-{copy}", cmd, env)
                url = f"http://{HOST}:{port}"
                wait_ready(url + "/health/ready", proc)
                label = f"{server}#{copy}"
                targets.append(
                    Target(label, url + path, body, expect, server, args.endpoint, proc.pid)
                )
        rps: dict[str, list[float]] = {t.label: [] for t in targets}
        cpu: dict[str, list[float]] = {t.label: [] for t in targets}
        for round_index in range(args.rounds):
            for target in targets if round_index % 2 == 0 else targets[::-1]:
                wait_quiet()
                run = bench.load.run(target, args.concurrency, args.seconds, 1)
                rps[target.label].append(run.rps)
                cpu[target.label].append(run.extra["cpu_us_per_request"])
                if run.errors:
                    print(f"  {target.label}: {run.errors} errors in round {round_index + 1}")
        best = {s: median(max(rps[t.label]) for t in targets if t.group == s) for s in args.servers}
        low = {s: median(min(cpu[t.label]) for t in targets if t.group == s) for s in args.servers}
        first = args.servers[0]
        print(
            f"\n{args.endpoint}, c={args.concurrency}, {args.rounds} rounds of {args.seconds} s,"
            f" {args.copies} processes per server (medians of each process's best)"
        )
        print("| server | req/s | vs first | CPU µs/req | vs first | processes' CPU µs/req |")
        print("|---|---|---|---|---|---|")
        for server in args.servers:
            each = " ".join(f"{min(cpu[t.label]):.0f}" for t in targets if t.group == server)
            print(
                f"| {server} | {best[server]:,.0f} | {best[server] / best[first]:.0%} |"
                f" {low[server]:.0f} | {low[server] - low[first]:+.0f} | {each} |"
            )
        if args.profile:
            profile(bench, args, [t for t in targets if t.label.endswith("#0")])
    finally:
        bench.procs.stop_all()


def profile(bench: Bench, args: argparse.Namespace, targets: list[Target]) -> None:
    """py-spy (GIL-holding stacks) on each target under the load, with its CPU per request
    in the file's name (``bench_profile.py`` turns shares into µs per request with it)."""
    args.profile.mkdir(parents=True, exist_ok=True)
    for target in targets:
        raw = args.profile / f"{target.group.replace('/', '_')}.txt"
        cmd = [py_spy(), "record", "-p", str(target.pid), "-d", str(args.seconds * 2)]
        cmd += ["-r", "250", "--gil", "-f", "raw", "-o", str(raw)]
        wait_quiet()
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        run = bench.load.run(target, args.concurrency, args.seconds * 2 + 1, 0)
        spy.wait(60)
        cpu_us = run.extra["cpu_us_per_request"]
        raw.rename(raw.with_name(f"{raw.stem}@{cpu_us:.0f}us.txt"))
        print(f"  profiled {target.group}: {cpu_us:.0f} µs/req -> {raw.stem}@{cpu_us:.0f}us.txt")


if __name__ == "__main__":
    main()
