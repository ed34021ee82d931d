"""Issue 19's costs, ``/v1/chat/completions`` at fixed concurrency against the fake OpenAI
upstream: one model, a 3-model fallback chain whose primary is healthy, one model with a
tenant rate limit that is never reached, and cache hits, against the floor proxy
(``scripts/bench_helpers.py floor``), all in one run so the ratios compare like with like.

    python scripts/bench_resilience.py [--concurrency 32] [--duration 6]

Figures are printed, never asserted (targets: chain and limiter cost <= 3 % each, cache
hits >= 80 % of the floor's req/s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_stores  # scripts/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
HELPERS = str(ROOT / "scripts" / "bench_helpers.py")
CHAT, EXPECT = "/v1/chat/completions", "chat.completion"
ONE = "{{provider: openai, model: gpt-fake, base_url: '{url}', max_retries: 0{extra}}}"


def config(url: str, row: str) -> str:
    """The config of one row (the fake's ``url``)."""
    cache = ", temperature: 0, cache: {enabled: true}" if row == "cache hit" else ""
    llms = {"default": ONE.format(url=url, extra=cache)}
    if row == "3-model chain":
        llms["default"] = ONE.format(url=url, extra=", fallbacks: [second, third]")
        llms["second"] = llms["third"] = ONE.format(url=url, extra="")
    lines = ["llms:", *(f"  {name}: {spec}" for name, spec in llms.items())]
    if row == "rate limiter on":
        lines.append("rate_limits: {per_tenant: {requests_per_minute: 100000000}}")
    return "\n".join(lines) + "\n"


def started(cmd: list[str], work: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    """A helper process and the URL it prints first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=work)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"{name} did not start: {line!r}")
    return proc, line


def main() -> None:
    args = bench_stores.load_options(__doc__)
    work = Path(tempfile.mkdtemp(prefix="hector-bench-resilience-"))
    body = work / "body.json"
    chat = {"model": "assistant", "messages": [{"role": "user", "content": "hello there"}]}
    body.write_text(json.dumps(chat))
    fake, fake_url = started([sys.executable, HELPERS, "fake", "--port", "0"], work, "fake")
    rps: dict[str, float] = {}
    try:
        floor, floor_url = started(
            [sys.executable, HELPERS, "floor", "--upstream", fake_url], work, "floor"
        )
        try:
            run = bench_stores.measure(args, floor_url + CHAT, body, EXPECT)
            rps["floor proxy"] = run["rps"]
            print(f"{'floor proxy':16} {run['rps']:7.0f} req/s  p99 {run['p99_ms']:6.1f} ms")
        finally:
            floor.terminate()
        for row in ("one model", "3-model chain", "rate limiter on", "cache hit"):
            path = work / f"{row.replace(' ', '-')}.yaml"
            path.write_text(config(fake_url, row))
            port = bench_stores.free_port()
            cmd = [sys.executable, "-m", "hector_py", "serve", "-c", str(path)]
            cmd += ["--host", "127.0.0.1", "--port", str(port)]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}"
            try:
                bench_stores.wait_ready(url, proc)
                run = bench_stores.measure(args, url + CHAT, body, EXPECT)
            finally:
                proc.terminate()
                proc.wait(30)
            rps[row] = run["rps"]
            print(
                f"{row:16} {run['rps']:7.0f} req/s  p99 {run['p99_ms']:6.1f} ms"
                f"  errors {run['errors']}",
                flush=True,
            )
    finally:
        fake.terminate()
    one = rps["one model"]
    print(f"\n3-model chain / one model: {rps['3-model chain'] / one:.1%} (target >= 97%)")
    print(f"rate limiter on / one model: {rps['rate limiter on'] / one:.1%} (target >= 97%)")
    print(f"cache hit / floor proxy: {rps['cache hit'] / rps['floor proxy']:.0%} (target >= 80%)")


if __name__ == "__main__":
    main()
