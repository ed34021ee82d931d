"""A2A ``message/send`` req/s with each store, one process and ``--workers 2``: memory,
sqlite and PostgreSQL (a throwaway cluster from Debian's binaries on 127.0.0.1).

    python scripts/bench_stores.py                       # c=32, 6 s per row (~1 min)
    python scripts/bench_stores.py --duration 20 --concurrency 64

The model is the offline demo model with no delay, so the store and the server are all
there is to measure; the load generator (scripts/bench_helpers.py load) shares the
machine's cores with the servers and the database. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.postgres_server import Postgres, cluster  # noqa: E402

ROWS = (("memory", 1), ("sqlite", 1), ("postgres", 1), ("sqlite", 2), ("postgres", 2))
BODY = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "message/send",
    "params": {
        "message": {
            "kind": "message",
            "messageId": "m",
            "role": "user",
            "parts": [{"kind": "text", "text": "hello"}],
        }
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def storage(kind: str, work: Path, postgres: Postgres, row: int) -> str:
    if kind == "sqlite":
        return f"{{type: sqlite, path: '{work / f'bench-{row}.db'}'}}"
    if kind == "postgres":
        return f"{{type: postgres, dsn: '{postgres.dsn}', schema: bench_{row}, pool: {{max: 20}}}}"
    return "{type: memory}"


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hector exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("hector did not become ready")


def measure(
    args: argparse.Namespace, url: str, body: Path, expect: str = "completed"
) -> dict[str, float]:
    """``bench_helpers.py load`` against ``url`` (concurrency, duration, warm-up from
    ``args``); its JSON result."""
    load = [
        sys.executable, str(ROOT / "scripts" / "bench_helpers.py"), "load",
        "--url", url, "--body", str(body), "--concurrency", str(args.concurrency),
        "--duration", str(args.duration), "--warmup", str(args.warmup), "--expect", expect,
    ]  # fmt: skip
    out = subprocess.run(load, capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def load_options(doc: str | None) -> argparse.Namespace:
    """The load's options: ``--concurrency`` (32), ``--duration`` (6 s), ``--warmup`` (1 s)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    return parser.parse_args()


def main() -> None:
    args = load_options(__doc__)
    work = Path(tempfile.mkdtemp(prefix="hector-bench-stores-"))
    body = work / "body.json"
    body.write_text(json.dumps(BODY))
    results: list[tuple[str, int, dict[str, float]]] = []
    with cluster() as postgres:
        for row, (kind, workers) in enumerate(ROWS):
            config = work / f"row-{row}.yaml"
            config.write_text(
                f"storage: {storage(kind, work, postgres, row)}\n"
                "llms: {default: {provider: demo, stream_delay: 0}}\n"
            )
            port = free_port()
            cmd = [sys.executable, "-m", "hector_py", "serve", "-c", str(config)]
            cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
            log = (work / f"row-{row}.log").open("wb")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=work)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_ready(url, proc)
                results.append((kind, workers, measure(args, url + "/", body)))
            finally:
                proc.terminate()
                proc.wait(30)
                log.close()
            kind_, workers_, run = results[-1]
            print(
                f"{kind_:9} workers={workers_}  {run['rps']:7.0f} req/s  p50 {run['p50_ms']:6.1f}"
                f" ms  p99 {run['p99_ms']:6.1f} ms  errors {run['errors']}",
                flush=True,
            )
    memory = results[0][2]["rps"]
    one = {kind: run["rps"] for kind, workers, run in results if workers == 1}
    two = {kind: run["rps"] for kind, workers, run in results if workers == 2}
    print(f"\npostgres / memory (1 process): {one['postgres'] / memory:.0%} (target >= 70%)")
    print(f"postgres --workers 2 / 1: {two['postgres'] / one['postgres']:.2f}x (target >= 1.4x)")
    print(f"sqlite --workers 2 / 1: {two['sqlite'] / one['sqlite']:.2f}x")


if __name__ == "__main__":
    main()
