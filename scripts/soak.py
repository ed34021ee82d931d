"""Bounded soak: a fixed request rate against ``hector serve`` (sqlite) and a fake upstream.

Every ``--sample`` seconds it records the server's RSS, open file descriptors, threads,
the sqlite database size and the errors so far, then prints the samples and the growth
from the first sample to the last. Everything runs on 127.0.0.1 and stops by itself.

    python scripts/soak.py                  # 5 minutes at 20 requests/s
    python scripts/soak.py --duration 30    # a quick look
    python scripts/soak.py --hostile        # the same, beside a hostile mix

``--hostile`` adds, for the whole run: ``--slow`` connections from 127.0.0.2 that keep a
request head open (a byte every 5 s, reopened when cut), forged JWTs at
``--forged-rate``, and requests at ``--oversized-rate`` to an agent whose fake upstream
answers 200 MB. The well-behaved clients' latency (p50/p99) is printed either way, so a
quiet run and a hostile one compare directly (both have auth, the JWKS and both agents).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from soak_hostile import Hostile, forged_jwts, oversized, slow_client, start_jwks

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
API_KEY = "soak-key-0001"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Sample:
    """One look at the server process."""

    at_s: float
    requests: int
    errors: int
    rss_kb: int
    fds: int
    threads: int
    db_kb: int


def _status_field(pid: int, name: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{name}:\s+(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _look(pid: int, db: Path, started: float, counts: dict[str, int]) -> Sample:
    """The server process as it is now."""
    return Sample(
        round(time.monotonic() - started, 1),
        counts["requests"],
        counts["errors"],
        _status_field(pid, "VmRSS"),
        len(os.listdir(f"/proc/{pid}/fd")),
        _status_field(pid, "Threads"),
        _db_kb(db),
    )


def _db_kb(db: Path) -> int:
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return sum(f.stat().st_size for f in files if f.exists()) // 1024


def _start(cmd: list[str], log: Path, pattern: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``cmd`` with output to ``log``; wait (bounded) for ``pattern`` in it."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = re.search(pattern, log.read_text(errors="replace"))
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"could not start {' '.join(cmd[:4])}: {log.read_text(errors='replace')[-500:]}")


async def _drive(
    url: str,
    rate: float,
    duration: float,
    samples: list[Sample],
    pid: int,
    db: Path,
    every: float,
    latencies: list[float],
) -> None:
    counts = {"requests": 0, "errors": 0}
    bodies = [
        (
            "/",
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "message/send",
                "params": {
                    "message": {
                        "kind": "message",
                        "messageId": "m",
                        "role": "user",
                        "parts": [{"kind": "text", "text": "soak"}],
                    }
                },
            },
        ),
        (
            "/v1/chat/completions",
            {"model": "assistant", "messages": [{"role": "user", "content": "soak"}]},
        ),
        (
            "/v1/chat/completions",
            {
                "model": "assistant",
                "stream": True,
                "messages": [{"role": "user", "content": "soak"}],
            },
        ),
    ]
    timeout = aiohttp.ClientTimeout(total=30)
    pending: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(index: int) -> None:
            path, body = bodies[index % len(bodies)]
            sent = time.perf_counter()
            try:
                async with session.post(url + path, json=body, headers=AUTH) as response:
                    text = await response.text()
                    failed = response.status != 200 or '"failed"' in text or "error" in text
            except (aiohttp.ClientError, TimeoutError):
                failed = True
            latencies.append(time.perf_counter() - sent)
            counts["requests"] += 1
            counts["errors"] += failed

        started = time.monotonic()
        next_sample = started
        index = 0
        while (now := time.monotonic()) - started < duration:
            if now >= next_sample:
                samples.append(_look(pid, db, started, counts))
                next_sample += every
            task = asyncio.create_task(one(index))
            pending.add(task)
            task.add_done_callback(pending.discard)
            index += 1
            await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
        if pending:
            await asyncio.wait(pending, timeout=30)
    samples.append(_look(pid, db, started, counts))


def _config(work: Path, fake_url: str, big_url: str, jwks_url: str) -> Path:
    """Two agents (``big``'s upstream answers 200 MB; it reads at most 1 MB), API keys and
    JWTs, sqlite, metrics."""
    llm = {"provider": "openai", "model": "gpt-4o", "api_key": "sk-soak"}
    config = work / "soak.yaml"
    config.write_text(
        json.dumps(
            {
                "llms": {
                    "default": {**llm, "base_url": fake_url},
                    "big": {**llm, "base_url": big_url, "max_response_bytes": 1_048_576},
                },
                "agents": {"assistant": {}, "big": {"llm": "big"}},
                "server": {"auth": {"api_keys": [API_KEY], "jwt": {"jwks_url": jwks_url}}},
                "storage": {"type": "sqlite", "path": str(work / "soak.db")},
                "observability": {"metrics": {"enabled": True}},
                "logging": {"level": "warn"},
            }
        )
    )
    return config


def _fake(work: Path, name: str, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "tests.fakes.llm_servers", "--provider", "openai"]
    return _start([*command, "--port", "0", *flags], work / f"{name}.log", r"(http://\S+)")


Outcome = tuple[list[Sample], list[float], Hostile, int]


async def _soak(args: argparse.Namespace, work: Path) -> Outcome:
    """Start the fakes, the JWKS and the server; drive them; stop them."""
    fake, fake_url = _fake(work, "fake")
    # Every answer of this one is the hostile flood (200 MB of JSON).
    flood = ("--fault", "huge", "--fail-first", "100000", "--status", "200")
    big, big_url = _fake(work, "big", *flood)
    jwks, jwks_url = await start_jwks()
    config = _config(work, fake_url, big_url, jwks_url)
    serve = [sys.executable, "-m", "hector_py", "serve", "-c", str(config)]
    flags = ["--host", "127.0.0.1", "--port", "0", "--log-level", "info"]
    server, url = await asyncio.to_thread(
        _start, [*serve, *flags], work / "serve.log", r"listening on (http://\S+)"
    )
    samples: list[Sample] = []
    latencies: list[float] = []
    hostile = Hostile()
    stop_at = time.monotonic() + args.duration
    try:
        work_items = [
            _drive(
                url,
                args.rate,
                args.duration,
                samples,
                server.pid,
                work / "soak.db",
                args.sample,
                latencies,
            )
        ]
        if args.hostile:
            host, port = url.removeprefix("http://").rsplit(":", 1)
            work_items += [slow_client(host, int(port), stop_at, hostile) for _ in range(args.slow)]
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
            work_items += [
                forged_jwts(session, url, args.forged_rate, stop_at, hostile),
                oversized(session, url, AUTH, args.oversized_rate, stop_at, hostile),
            ]
        try:
            await asyncio.gather(*work_items)
        finally:
            if args.hostile:
                await session.close()
    finally:
        server.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(server.wait, 60)
        for process in (fake, big):
            process.terminate()
            process.wait(10)
        await jwks.cleanup()
    return samples, latencies, hostile, exit_code


def main() -> None:
    """Run the soak and print the samples."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s (default 20)")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--hostile", action="store_true", help="add the hostile mix")
    parser.add_argument("--slow", type=int, default=200, help="slow connections (hostile)")
    parser.add_argument("--forged-rate", type=float, default=10.0, help="forged JWTs/s")
    parser.add_argument("--oversized-rate", type=float, default=1.0, help="200 MB replies/s")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hector-soak-"))
    samples, latencies, hostile, exit_code = asyncio.run(_soak(args, work))
    mix = "hostile mix" if args.hostile else "quiet"
    print(
        f"soak ({mix}): {args.duration:g} s at {args.rate:g} req/s, sqlite, metrics on "
        f"(python {sys.version.split()[0]}, {os.cpu_count()} cores)"
    )
    print(
        f"{'t (s)':>7} {'requests':>9} {'errors':>7} {'RSS (MB)':>9} {'fds':>5} "
        f"{'threads':>8} {'db (KB)':>8}"
    )
    for s in samples:
        print(
            f"{s.at_s:>7} {s.requests:>9} {s.errors:>7} {s.rss_kb / 1024:>9.1f} "
            f"{s.fds:>5} {s.threads:>8} {s.db_kb:>8}"
        )
    first, last = samples[min(1, len(samples) - 1)], samples[-1]
    print(
        f"growth after warm-up: RSS {(last.rss_kb - first.rss_kb) / 1024:+.1f} MB, "
        f"fds {last.fds - first.fds:+d}, threads {last.threads - first.threads:+d}; "
        f"errors {last.errors}; server exit code {exit_code}"
    )
    ordered = sorted(latencies)
    if ordered:
        p50, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.99))
        print(
            f"well-behaved clients: {len(ordered)} requests, p50 {p50 * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
        )
    if args.hostile:
        print(
            f"hostile: {hostile.slow_opened} slow connections opened, {hostile.slow_cut} cut "
            f"by the server; {hostile.forged} forged JWTs {hostile.forged_status}; "
            f"{hostile.oversized} oversized replies {hostile.oversized_status}"
        )


if __name__ == "__main__":
    main()
