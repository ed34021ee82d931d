"""Benchmarks for hector-py: throughput, added latency, observability overhead, TTFT,
scrape cost, start-up and memory, against a bare-proxy floor and (optionally) LiteLLM.

    python scripts/bench.py --quick                 # < 2 minutes on 2 cores, prints the table
    python scripts/bench.py                         # the full run (about 15 minutes)
    python scripts/bench.py --peer litellm          # adds LiteLLM's proxy, side by side
    python scripts/bench.py --markdown out.md --json out.json

Everything runs on 127.0.0.1: fake OpenAI upstreams (``tests/fakes/llm_servers.py``), the
floor proxy and a live OTLP receiver (``scripts/bench_helpers.py``), hector-py servers in
three observability modes, and the load generator (``wrk`` with ``scripts/wrk_post.lua``
when installed, else a bounded aiohttp client in its own process). Every process it starts
it stops. Each figure is printed with the command that produced it and the machine.
Timings are reported, never asserted; the budget lines say met/missed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HELPERS = ROOT / "scripts" / "bench_helpers.py"
WRK_SCRIPT = ROOT / "scripts" / "wrk_post.lua"
HOST = "127.0.0.1"
LITELLM_VERSION = "1.106.2"  # the baseline; 1.107.0 was a compromised release
LITELLM_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / (
    "hector-py/litellm-venv"
)

PROMPT = "Say hello to the benchmark."
STREAM_PROMPT = "Stream a reply of a fixed length, four characters per chunk, to time it: " + (
    "x" * 32
)
HOLD_PROMPT = "Hold this stream open for a while: one character every half second."


@dataclass(frozen=True)
class Settings:
    """How long and how hard each scenario runs."""

    duration: int
    warmup: int
    concurrency: tuple[int, ...]
    rounds: int
    stream_duration: float
    stream_concurrency: tuple[int, ...]
    slow_duration: int
    slow_clients: int
    hold_streams: int
    scrapes: int
    help_runs: int
    ready_runs: int
    a2a_slow: bool


# wrk takes whole seconds
SAMPLED_RATE = 1.0  # the "sampled" server: --observe exporting every trace (with
# sampling_rate unset, the "observe" server, the recorder keeps up to 10 ordinary traces a
# second besides the failed, slow and costly ones)
SAMPLING_ENV = "HECTOR_OBSERVABILITY__TRACING__SAMPLING_RATE"

QUICK = Settings(
    duration=2,
    warmup=0,
    concurrency=(1, 32),
    rounds=1,
    stream_duration=1.0,
    stream_concurrency=(1, 16),
    slow_duration=2,
    slow_clients=200,
    hold_streams=1000,
    scrapes=5,
    help_runs=3,
    ready_runs=1,
    a2a_slow=False,
)
FULL = Settings(
    duration=8,
    warmup=2,
    concurrency=(1, 16, 32, 128),
    rounds=2,
    stream_duration=8.0,
    stream_concurrency=(1, 16),
    slow_duration=10,
    slow_clients=200,
    hold_streams=1000,
    scrapes=50,
    help_runs=10,
    ready_runs=3,
    a2a_slow=True,
)

# --- the machine --------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def wait_quiet(busy_share: float = 0.2, limit_s: float = 15.0) -> float:
    """Wait until the machine's CPUs are at most ``busy_share`` busy over half a second
    (what a cell before left running, such as the OTLP receiver decoding a sampling-1.0
    server's backlog, must not tax the next cell), at most ``limit_s``; seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        busy, total = _cpu_ticks()
        time.sleep(0.5)
        busy2, total2 = _cpu_ticks()
        if total2 > total and (busy2 - busy) / (total2 - total) <= busy_share:
            break
    return time.monotonic() - started


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        probe = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        wrk_version = (probe.stdout or probe.stderr).split("\n")[0].strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hector_py": package_version("hector-py"),
        "aiohttp": package_version("aiohttp"),
        "uvloop": package_version("uvloop"),
        "wrk": wrk_version or "not installed",
        "load_average_at_start": load_average(),
    }


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _stat(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far, its threads and its live child
    processes (the trace export process) included."""
    total = float("nan")
    with contextlib.suppress(OSError):
        fields = _stat(pid)
        total = int(fields[11]) + int(fields[12])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = _stat(entry.name)
                if int(fields[1]) == pid:  # the parent's pid
                    total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (0 if it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tree_rss_kb(pid: int) -> int:
    """RSS of ``pid`` and all its descendants (LiteLLM may fork workers; a hector with
    tracing has its export process)."""
    total = rss_kb(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task").iterdir():
            children = (child / "children").read_text().split()
            total += sum(tree_rss_kb(int(c)) for c in children)
    return total


class Proc:
    """A started process: its first stdout line, its log, and a clean stop."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        *,
        stdin: bool = False,
    ) -> None:
        self.name, self.cmd = name, cmd
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def line(self, timeout: float = 30.0) -> str:
        """The next stdout line; raises if the process ends or is silent too long."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name}: no output within {timeout:.0f}s") from None
        if line is None:
            raise RuntimeError(f"{self.name} exited: {self.tail()}")
        return line

    def say(self, text: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(text + "\n")
        self.popen.stdin.flush()

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()


class Procs:
    """Every process the run started, stopped in reverse order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._all: list[Proc] = []

    def start(
        self, name: str, cmd: list[str], env: dict[str, str] | None = None, *, stdin: bool = False
    ) -> Proc:
        proc = Proc(name, cmd, self.log_dir, env, stdin=stdin)
        self._all.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self._all:
            self._all.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self._all):
            with contextlib.suppress(Exception):
                proc.stop()
        self._all.clear()


def helper(role: str, *args: str) -> list[str]:
    return [sys.executable, str(HELPERS), role, *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for name in list(env):  # the config is ours alone
        if name.startswith(("HECTOR_", "OTEL_")):
            del env[name]
    return env


def py_spy() -> str:
    """py-spy from PATH, else from its own venv under the cache dir (installed once)."""
    found = shutil.which("py-spy")
    if found:
        return found
    venv = LITELLM_VENV.with_name("tools-venv")
    local = venv / "bin" / "py-spy"
    if not local.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "py-spy"], check=True)
    return str(local)


def hector_bin() -> str:
    local = Path(sys.executable).with_name("hector")
    return str(local) if local.exists() else (shutil.which("hector") or "hector")


# --- HTTP from the orchestrator -------------------------------------------------------


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, proc: Proc, timeout: float = 60.0, interval: float = 0.01) -> float:
    """Poll ``url`` until it answers 200; the seconds that took."""
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited while starting:\n{proc.tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = http_get(url, timeout=1.0)
            if status == 200:
                return time.perf_counter() - started
        time.sleep(interval)
    raise RuntimeError(f"{proc.name}: {url} not ready within {timeout:.0f}s:\n{proc.tail()}")


# --- workloads ----------------------------------------------------------------------------


def openai_body(model: str, text: str = PROMPT, *, stream: bool = False) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def a2a_body(text: str = PROMPT, *, stream: bool = False) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "message/stream" if stream else "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "messageId": "bench-1",
                    "role": "user",
                    "parts": [{"kind": "text", "text": text}],
                }
            },
        }
    ).encode()


@dataclass(frozen=True)
class Target:
    """Something to send load to: a URL, the body file and what a good answer holds."""

    label: str
    url: str
    body: Path
    expect: str
    group: str  # direct | floor | off | observe | dead | litellm
    endpoint: str  # /v1 | a2a
    pid: int | None = None  # the server process, to measure its CPU per request


@dataclass
class Run:
    """One load run's figures."""

    target: str
    group: str
    endpoint: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    command: str
    load_average: str
    extra: dict[str, Any] = field(default_factory=dict)


class Load:
    """The load generator: wrk when installed (unless told otherwise), else aiohttp."""

    def __init__(self, kind: str, log_dir: Path) -> None:
        wrk = shutil.which("wrk")
        if kind == "wrk" and not wrk:
            raise SystemExit("--loadgen wrk: wrk is not installed (apt-get install wrk)")
        self.wrk = wrk if kind in ("wrk", "auto") else None
        self.log_dir = log_dir
        self.requests_sent: dict[str, int] = {}

    @property
    def name(self) -> str:
        return "wrk" if self.wrk else "aiohttp client (scripts/bench_helpers.py load)"

    def run(self, target: Target, concurrency: int, duration: float, warmup: float) -> Run:
        loadavg = load_average()
        cpu_before = cpu_seconds(target.pid) if target.pid else math.nan
        if self.wrk:
            if warmup > 0:
                self._wrk(target, concurrency, warmup)
                cpu_before = cpu_seconds(target.pid) if target.pid else math.nan
            result, command = self._wrk(target, concurrency, duration)
        else:
            result, command = self._aiohttp(target, concurrency, duration, warmup)
            warmup_share = warmup / (warmup + duration)  # the client warms up in-process
            cpu_before += (cpu_seconds(target.pid) - cpu_before) * warmup_share if target.pid else 0
        cpu = cpu_seconds(target.pid) - cpu_before if target.pid else math.nan
        self.requests_sent[target.group] = self.requests_sent.get(target.group, 0) + int(
            result["requests"] / duration * (duration + warmup)
        )
        return Run(
            target.label,
            target.group,
            target.endpoint,
            concurrency,
            result["rps"],
            result["p50_ms"],
            result["p99_ms"],
            result["errors"],
            result["requests"],
            command,
            loadavg,
            {
                "cpu_us_per_request": cpu / result["requests"] * 1e6
                if result["requests"]
                else math.nan
            },
        )

    def _wrk(self, target: Target, concurrency: int, duration: float) -> tuple[dict[str, Any], str]:
        assert self.wrk is not None
        cmd = [
            self.wrk,
            "-t1",
            f"-c{concurrency}",
            f"-d{duration:g}s",
            "--timeout",
            "30s",
            "-s",
            str(WRK_SCRIPT),
            target.url,
            "--",
            str(target.body),
            target.expect,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
        line = next((x for x in out.stdout.splitlines() if x.startswith("JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no result: {out.stdout}\n{out.stderr}")
        raw = json.loads(line[5:])
        seconds = raw["duration_us"] / 1e6
        errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout", "bad_body"))
        done = raw["requests"] > 0  # a server too slow for the window completes none
        result = {
            "requests": raw["requests"],
            "rps": raw["requests"] / seconds if seconds else 0.0,
            "p50_ms": raw["p50_us"] / 1000 if done else math.nan,
            "p99_ms": raw["p99_us"] / 1000 if done else math.nan,
            "errors": errors,
        }
        return result, _shell(cmd)

    def _aiohttp(
        self, target: Target, concurrency: int, duration: float, warmup: float
    ) -> tuple[dict[str, Any], str]:
        cmd = helper(
            "load",
            "--url",
            target.url,
            "--body",
            str(target.body),
            "--concurrency",
            str(concurrency),
            "--duration",
            f"{duration:g}",
            "--warmup",
            f"{warmup:g}",
            "--expect",
            target.expect,
        )
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1]), _shell(cmd)


def _shell(cmd: list[str]) -> str:
    shown = []
    for part in cmd:
        part = part.replace(str(ROOT) + "/", "")
        if part == sys.executable:
            part = "python"
        shown.append(part if part and " " not in part else json.dumps(part))
    return " ".join(shown)


# --- the bench ----------------------------------------------------------------------------


HECTOR_CONFIG = """\
# generated by scripts/bench.py: tool-less agents on OpenAI-compatible fakes
server:
  host: 127.0.0.1
  port: {port}
  max_concurrent_runs: 4096   # the default (64) would answer 503 at 128+ clients
  max_connections_per_client: 2048   # one load generator holds the 1,000 streams (default 256)
  shutdown_timeout: 5
llms:
{llms}
agents:
{agents}
observability:
  metrics:
    enabled: {metrics}
  tracing:
    enabled: {tracing}
    endpoint: "{tracing_endpoint}"
logging:
  level: info
"""


class Bench:
    """Runs the scenarios and keeps their figures."""

    def __init__(self, args: argparse.Namespace, settings: Settings, work: Path) -> None:
        self.args = args
        self.s = settings
        self.work = work
        self.procs = Procs(work)
        self.load = Load(args.loadgen, work)
        self.env = child_env()
        self.results: dict[str, Any] = {"machine": machine(), "settings": vars(settings).copy()}
        self.results["settings"]["concurrency"] = list(settings.concurrency)
        self.results["loadgen"] = self.load.name
        self.commands: dict[str, str] = {}
        self.fakes: dict[str, str] = {}
        self.bodies: dict[str, Path] = {}
        self.pids: dict[str, int] = {}

    # -- set-up ------------------------------------------------------------------------

    def body(self, name: str, data: bytes) -> Path:
        path = self.work / f"{name}.json"
        path.write_bytes(data)
        self.bodies[name] = path
        return path

    def start_fakes(self) -> None:
        """Zero-latency, 200 ms, fixed-rate streaming and slow-streaming upstreams."""
        kinds = {
            "zero": [],
            "slow": ["--delay", "0.2"],
            "stream": ["--chunk-delay", "0.005", "--chunk-size", "4"],
            "hold": ["--chunk-delay", "0.5", "--chunk-size", "1"],
        }
        started = {}
        for name, flags in kinds.items():
            cmd = helper("fake", "--provider", "openai", "--port", "0", "--usage", "11,7", *flags)
            started[name] = (self.procs.start(f"fake-{name}", cmd, self.env), cmd)
        for name, (proc, cmd) in started.items():
            self.fakes[name] = proc.line()
            self.pids[f"fake {name}"] = proc.pid
            self.commands[f"fake {name}"] = _shell(cmd).replace(
                "scripts/bench_helpers.py fake", "-m tests.fakes.llm_servers"
            )

    def start_floor(self, fake: str) -> str:
        cmd = helper("floor", "--upstream", self.fakes[fake])
        proc = self.procs.start(f"floor-{fake}", cmd, self.env)
        self.commands[f"floor {fake}"] = _shell(cmd)
        url = proc.line()
        self.pids[url] = proc.pid
        return url

    def start_receiver(self) -> tuple[Proc, str]:
        cmd = helper("otlp")
        proc = self.procs.start("otlp-receiver", cmd, self.env, stdin=True)
        endpoint = proc.line()
        self.commands["otlp receiver"] = _shell(cmd)
        return proc, endpoint

    def receiver_counts(self, receiver: Proc) -> dict[str, int]:
        receiver.say("count")
        counts: dict[str, int] = json.loads(receiver.line())
        return counts

    def hector_config(self, name: str, port: int, *, agents: int = 0) -> Path:
        llms = []
        agent_lines = []
        for fake in ("zero", "slow", "stream", "hold"):
            llms.append(
                f"  {fake}:\n    provider: openai\n    model: bench-model\n"
                f"    base_url: {self.fakes[fake]}"
            )
        names = {"zero": "bench", "slow": "bench-slow", "stream": "bench-stream"}
        names["hold"] = "bench-hold"
        for fake, agent in names.items():
            agent_lines.append(f"  {agent}:\n    llm: {fake}\n    tools: []")
        for index in range(agents):  # many agents: many metric series
            agent_lines.append(f"  agent-{index:04d}:\n    llm: zero\n    tools: []")
        text = HECTOR_CONFIG.format(
            port=port,
            llms="\n".join(llms),
            agents="\n".join(agent_lines),
            metrics="false",
            tracing="false",
            tracing_endpoint="localhost:4317",
        )
        path = self.work / f"{name}.yaml"
        path.write_text(text)
        return path

    def hector_cmd(self, config: Path, mode: str, receiver: str | None) -> list[str]:
        cmd = [hector_bin(), "serve", "-c", str(config)]
        if mode in ("observe", "sampled"):
            cmd += ["--observe", "--tracing-endpoint", receiver or ""]
        elif mode == "dead":
            cmd += ["--observe", "--tracing-endpoint", f"{HOST}:{free_port()}"]
        elif mode == "metrics":
            cmd += ["--metrics"]
        return cmd

    def start_hector(
        self, name: str, mode: str, receiver: str | None = None, *, agents: int = 0
    ) -> tuple[Proc, str, float]:
        port = free_port()
        config = self.hector_config(name, port, agents=agents)
        cmd = self.hector_cmd(config, mode, receiver)
        extra = {SAMPLING_ENV: str(SAMPLED_RATE)} if mode == "sampled" else {}
        proc = self.procs.start(name, cmd, {**self.env, **extra})
        url = f"http://{HOST}:{port}"
        seconds = wait_ready(url + "/health/ready", proc)
        prefix = "".join(f"{key}={value} " for key, value in extra.items())
        self.commands[name] = prefix + _shell(cmd) + f"   # config: {config.name} (printed below)"
        return proc, url, seconds

    def litellm_python(self) -> Path:
        """LiteLLM's own venv under the cache dir, created on first use."""
        python = LITELLM_VENV / "bin" / "python"
        marker = LITELLM_VENV / f".installed-{LITELLM_VERSION}"
        if not marker.exists():
            print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} ...")
            subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
                check=True,
            )
            marker.touch()
        return python

    def start_litellm(self) -> tuple[Proc, str, float]:
        python = self.litellm_python()
        port = free_port()
        models = []
        for fake, name in (
            ("zero", "bench"),
            ("slow", "bench-slow"),
            ("stream", "bench-stream"),
            ("hold", "bench-hold"),
        ):
            models.append(
                f"  - model_name: {name}\n    litellm_params:\n      model: openai/bench-model\n"
                f"      api_base: {self.fakes[fake]}\n      api_key: sk-bench-fake"
            )
        config = self.work / "litellm.yaml"
        config.write_text(
            "# generated by scripts/bench.py\nmodel_list:\n"
            + "\n".join(models)
            + "\nlitellm_settings:\n  telemetry: false\n  drop_params: true\n"
        )
        env = dict(self.env)
        env.update(
            {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list
                "LITELLM_LOG": "ERROR",
                "LITELLM_MODE": "PRODUCTION",
                # hector runs without API keys here too; on 127.0.0.1 only
                "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
                "DISABLE_ADMIN_UI": "True",
                "NO_DOCS": "True",
            }
        )
        litellm = python.with_name("litellm")
        cmd = [
            str(litellm),
            "--config",
            str(config),
            "--host",
            HOST,
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]
        proc = self.procs.start("litellm", cmd, env)
        url = f"http://{HOST}:{port}"
        seconds = wait_ready(url + "/health/readiness", proc, timeout=120)
        self.commands["litellm"] = (
            "LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR LITELLM_MODE=PRODUCTION "
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY=true "
            + _shell(cmd).replace(str(LITELLM_VENV), "$LITELLM_VENV")
            + "   # config: litellm.yaml (printed below)"
        )
        return proc, url, seconds

    def preflight(self, target: Target) -> None:
        status, data = http_post(target.url, target.body.read_bytes())
        if status != 200 or target.expect.encode() not in data:
            raise RuntimeError(f"{target.label}: bad answer {status}: {data[:300]!r}")

    # -- scenarios ---------------------------------------------------------------------

    def run(self) -> None:
        self.body("openai", openai_body("bench"))
        self.body("openai-slow", openai_body("bench-slow"))
        self.body("openai-stream", openai_body("bench-stream", STREAM_PROMPT, stream=True))
        self.body("openai-hold", openai_body("bench-hold", HOLD_PROMPT, stream=True))
        self.body("a2a", a2a_body())
        self.body("a2a-stream", a2a_body(STREAM_PROMPT, stream=True))
        self.start_fakes()
        receiver, endpoint = self.start_receiver()
        floors = {fake: self.start_floor(fake) for fake in ("zero", "slow")}
        hectors = {}
        for mode in ("off", "observe", "sampled", "dead"):
            proc, url, _ = self.start_hector(f"hector-{mode}", mode, endpoint)
            hectors[mode] = (proc, url)
        peer = None
        if self.args.peer == "litellm":
            try:
                proc, url, seconds = self.start_litellm()
                peer = (proc, url)
                self.results["litellm_first_ready_s"] = seconds
                time.sleep(2.0)
                self.results["litellm_rss_idle_kb"] = tree_rss_kb(proc.pid)
            except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
                self.results["litellm_error"] = str(exc)[-2000:]
                print(f"LiteLLM could not be run: {exc}", file=sys.stderr)
        sections = self.args.sections
        if "throughput" in sections:
            with self.section("throughput"):
                self.throughput(floors["zero"], hectors, peer)
                spans = self.receiver_counts_after_flush(receiver)
            self.results["spans"] = {
                **spans,
                "observe_requests_approx": self.load.requests_sent.get("observe", 0),
            }
        if "streaming" in sections:
            with self.section("streaming"):
                self.streaming(hectors, peer)
        if "latency" in sections:
            with self.section("latency"):
                self.slow_upstream(floors["slow"], hectors, peer)
        if peer is not None:
            self.results["litellm_rss_after_kb"] = tree_rss_kb(peer[0].pid)
        self.results["rss_after_kb"] = {m: tree_rss_kb(p.pid) for m, (p, _) in hectors.items()}
        for proc, _ in hectors.values():
            self.procs.stop(proc)
        if peer is not None:
            self.procs.stop(peer[0])
        if "metrics" in sections:
            with self.section("metrics"):
                self.scrape(endpoint)
        if "startup" in sections:
            with self.section("startup"):
                self.startup(endpoint)
        if "memory" in sections:
            with self.section("memory"):
                self.memory(endpoint)

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - started
            self.results.setdefault("section_s", {})[name] = round(seconds, 1)
            print(f"  ({name}: {seconds:.0f} s)")

    def receiver_counts_after_flush(self, receiver: Proc) -> dict[str, int]:
        time.sleep(1.5)  # the batch processor exports every 0.5 s
        return self.receiver_counts(receiver)

    def targets(
        self, hectors: dict[str, tuple[Proc, str]], peer: tuple[Proc, str] | None, floor: str
    ) -> list[Target]:
        openai, a2a = self.bodies["openai"], self.bodies["a2a"]
        out = [
            Target("direct to fake", self.fakes["zero"] + "/chat/completions", openai,
                   "chat.completion", "direct", "/v1", self.pids["fake zero"]),
            Target("floor proxy", floor + "/v1/chat/completions", openai, "chat.completion",
                   "floor", "/v1", self.pids[floor]),
        ]  # fmt: skip
        names = {
            "off": "hector",
            "observe": "hector --observe",
            "sampled": f"hector --observe, sampling_rate {SAMPLED_RATE:g}",
            "dead": "hector dead exporter",
        }
        for mode, (proc, url) in hectors.items():
            out.append(
                Target(f"{names[mode]} /v1", url + "/v1/chat/completions", openai,
                       "chat.completion", mode, "/v1", proc.pid)
            )  # fmt: skip
            out.append(
                Target(f"{names[mode]} A2A", url + "/agents/bench", a2a, '"completed"', mode,
                       "a2a", proc.pid)
            )  # fmt: skip
        if peer is not None:
            out.append(
                Target("LiteLLM /v1", peer[1] + "/v1/chat/completions", openai,
                       "chat.completion", "litellm", "/v1", peer[0].pid)
            )  # fmt: skip
        return out

    def throughput(
        self,
        floor: str,
        hectors: dict[str, tuple[Proc, str]],
        peer: tuple[Proc, str] | None,
    ) -> None:
        s = self.s
        targets = self.targets(hectors, peer, floor)
        if self.args.targets:
            targets = [t for t in targets if t.group in self.args.targets]
        for target in targets:
            self.preflight(target)
        self.results["throughput_load_average_start"] = load_average()
        best: dict[tuple[str, int], Run] = {}
        rounds: dict[tuple[str, int], list[float]] = {}
        print(f"\n== throughput: {len(targets)} targets x c={list(s.concurrency)} ==")
        for concurrency in s.concurrency:
            for round_index in range(s.rounds):
                order = targets if round_index % 2 == 0 else list(reversed(targets))
                for target in order:
                    waited = wait_quiet()
                    run = self.load.run(target, concurrency, s.duration, s.warmup)
                    run.extra["waited_for_quiet_s"] = round(waited, 1)
                    key = (target.label, concurrency)
                    print(
                        f"  c={concurrency:<4} {target.label:<28} {run.rps:9.1f} req/s  "
                        f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  "
                        f"errors {run.errors}  cpu/req "
                        f"{run.extra['cpu_us_per_request']:6.0f} us  "
                        f"(load {run.load_average.split()[0]}"
                        + (f", waited {waited:.1f} s for quiet)" if waited > 0.6 else ")")
                    )
                    seen = rounds.setdefault(key, [])
                    seen.append(round(run.rps, 1))
                    if key not in best or run.rps > best[key].rps:
                        best[key] = run
                    best[key].extra["rounds_rps"] = seen
        self.results["throughput"] = [vars(r) for r in best.values()]
        if self.args.profile:
            self.profile(targets)
        self.results["throughput_load_average_end"] = load_average()

    def profile(self, targets: list[Target]) -> None:
        """py-spy (sampling, GIL-holding stacks) on the hector servers under c=32 load."""
        pyspy = py_spy()
        out: dict[str, Any] = {}
        seconds = 8
        for target in targets:
            if target.group not in ("off", "observe") or target.pid is None:
                continue
            raw = self.args.profile / f"{target.group}-{target.endpoint.strip('/')}.txt"
            cmd = [pyspy, "record", "-p", str(target.pid), "-d", str(seconds), "-r", "200"]
            cmd += ["--gil", "--threads", "-f", "raw", "-o", str(raw)]
            spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.5)
            run = self.load.run(target, 32, seconds + 1, 0)
            spy.wait(30)
            from bench_profile import load, summarise

            cpu_us = run.extra.get("cpu_us_per_request")
            out[target.label] = {
                "command": _shell(cmd),
                "summary": summarise(load(raw), 20, None, cpu_us),
            }
            print(f"  profiled {target.label} -> {raw}")
        self.results["profiles"] = out

    def streaming(
        self, hectors: dict[str, tuple[Proc, str]], peer: tuple[Proc, str] | None
    ) -> None:
        s = self.s
        targets = [
            ("direct to fake", self.fakes["stream"] + "/chat/completions", "openai-stream",
             "openai"),
            ("hector /v1", hectors["off"][1] + "/v1/chat/completions", "openai-stream", "openai"),
            ("hector --observe /v1", hectors["observe"][1] + "/v1/chat/completions",
             "openai-stream", "openai"),
            ("hector A2A", hectors["off"][1] + "/agents/bench-stream", "a2a-stream", "a2a"),
            ("hector --observe A2A", hectors["observe"][1] + "/agents/bench-stream",
             "a2a-stream", "a2a"),
        ]  # fmt: skip
        if peer is not None:
            targets.append(
                ("LiteLLM /v1", peer[1] + "/v1/chat/completions", "openai-stream", "openai")
            )
        print("\n== streaming (fake: 4 chars per chunk, 5 ms apart) ==")
        rows = []
        for concurrency in s.stream_concurrency:
            for label, url, body, kind in targets:
                cmd = helper(
                    "stream",
                    "--url",
                    url,
                    "--body",
                    str(self.bodies[body]),
                    "--kind",
                    kind,
                    "--concurrency",
                    str(concurrency),
                    "--duration",
                    f"{s.stream_duration:g}",
                    "--warmup",
                    f"{min(s.warmup, 1) or 0.3:g}",
                )
                loadavg = load_average()
                out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    raise RuntimeError(f"stream client failed: {out.stderr[-2000:]}")
                result = json.loads(out.stdout.strip().splitlines()[-1])
                result.update(
                    label=label, concurrency=concurrency, command=_shell(cmd), load=loadavg
                )
                rows.append(result)
                print(
                    f"  c={concurrency:<3} {label:<24} TTFT p50 {result['ttft_p50_ms']:7.2f} ms "
                    f"p99 {result['ttft_p99_ms']:7.2f} ms  {result['chunks_per_s']:8.0f} chunks/s"
                    f"  errors {result['errors']}"
                )
        self.results["streaming"] = rows

    def slow_upstream(
        self, floor: str, hectors: dict[str, tuple[Proc, str]], peer: tuple[Proc, str] | None
    ) -> None:
        s = self.s
        self.body("openai-slow", openai_body("bench-slow"))
        slow_a2a = self.body("a2a-slow", a2a_body())
        openai = self.bodies["openai-slow"]
        targets = [
            Target("direct to fake", self.fakes["slow"] + "/chat/completions", openai,
                   "chat.completion", "direct", "/v1", self.pids["fake slow"]),
            Target("floor proxy", floor + "/v1/chat/completions", openai, "chat.completion",
                   "floor", "/v1", self.pids[floor]),
            Target("hector /v1", hectors["off"][1] + "/v1/chat/completions", openai,
                   "chat.completion", "off", "/v1", hectors["off"][0].pid),
            Target("hector --observe /v1", hectors["observe"][1] + "/v1/chat/completions",
                   openai, "chat.completion", "observe", "/v1", hectors["observe"][0].pid),
        ]  # fmt: skip
        if s.a2a_slow:
            targets += [
                Target("hector A2A", hectors["off"][1] + "/agents/bench-slow", slow_a2a,
                       '"completed"', "off", "a2a", hectors["off"][0].pid),
                Target("hector --observe A2A", hectors["observe"][1] + "/agents/bench-slow",
                       slow_a2a, '"completed"', "observe", "a2a", hectors["observe"][0].pid),
            ]  # fmt: skip
        if peer is not None:
            targets.append(
                Target("LiteLLM /v1", peer[1] + "/v1/chat/completions", openai,
                       "chat.completion", "litellm", "/v1", peer[0].pid)
            )  # fmt: skip
        for target in targets:
            self.preflight(target)
        print(f"\n== 200 ms upstream, {s.slow_clients} clients ==")
        rows = []
        for target in targets:
            run = self.load.run(target, s.slow_clients, s.slow_duration, 1)
            run.extra["added_p50_ms"] = run.p50_ms - 200
            run.extra["added_p99_ms"] = run.p99_ms - 200
            print(
                f"  {target.label:<24} {run.rps:8.1f} req/s  added p50 "
                f"{run.extra['added_p50_ms']:7.2f} ms  p99 {run.extra['added_p99_ms']:7.2f} ms  "
                f"errors {run.errors}"
            )
            rows.append(vars(run))
        self.results["slow_upstream"] = rows

    def scrape(self, receiver: str) -> None:
        """Scrape /metrics of a server with >= 10,000 series."""
        agents = 200
        proc, url, _ = self.start_hector("hector-metrics", "observe", receiver, agents=agents)
        self.commands["hector-metrics"] += f" ({agents + 4} agents)"

        def populate(name: str) -> None:  # one of each kind of request: every series exists
            status, _ = http_post(url + "/v1/chat/completions", openai_body(name))
            assert status == 200, status
            http_post(url + "/v1/chat/completions", openai_body(name, stream=True))
            http_post(url + f"/agents/{name}", a2a_body())

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(populate, [f"agent-{index:04d}" for index in range(agents)]))
        rows = []
        for fmt, accept in (
            ("prometheus text", "text/plain"),
            ("openmetrics", "application/openmetrics-text; version=1.0.0"),
        ):
            conn = http.client.HTTPConnection(HOST, int(url.rsplit(":", 1)[1]), timeout=10)
            times, size, series = [], 0, 0
            for index in range(self.s.scrapes + 1):
                started = time.perf_counter()
                conn.request("GET", "/metrics", headers={"Accept": accept})
                response = conn.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - started
                if index == 0:  # the first one warms up
                    continue
                times.append(elapsed)
                size = len(data)
                series = sum(
                    1 for line in data.decode().splitlines() if line and not line.startswith("#")
                )
            conn.close()
            times.sort()
            rows.append(
                {
                    "format": fmt,
                    "series": series,
                    "bytes": size,
                    "p50_ms": statistics.median(times) * 1000,
                    "max_ms": times[-1] * 1000,
                    "scrapes": len(times),
                    "command": f"GET {url}/metrics (Accept: {accept}), "
                    f"{len(times)} times on one keep-alive connection",
                }
            )
            print(
                f"  /metrics {fmt}: {series} series, {size} bytes, "
                f"p50 {rows[-1]['p50_ms']:.1f} ms, max {rows[-1]['max_ms']:.1f} ms"
            )
        self.results["scrape"] = rows
        self.procs.stop(proc)

    def startup(self, receiver: str) -> None:
        s = self.s
        print("\n== start-up ==")
        help_times = []
        cmd = [hector_bin(), "--help"]
        for _ in range(s.help_runs):
            started = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True, env=self.env)
            help_times.append(time.perf_counter() - started)
        ready: dict[str, list[float]] = {"off": [], "observe": []}
        for index in range(s.ready_runs):
            for mode in ready:
                port = free_port()
                config = self.hector_config(f"hector-startup-{mode}", port)
                command = self.hector_cmd(config, mode, receiver)
                started = time.perf_counter()
                proc = self.procs.start(f"startup-{mode}-{index}", command, self.env)
                wait_ready(f"http://{HOST}:{port}/health/ready", proc, interval=0.005)
                ready[mode].append(time.perf_counter() - started)
                self.procs.stop(proc)
                self.commands[f"startup {mode}"] = _shell(command)
        self.results["startup"] = {
            "help_s": help_times,
            "help_command": _shell(cmd),
            "ready_s": ready,
            "load_average": load_average(),
        }
        print(
            f"  hector --help median {statistics.median(help_times):.3f} s; serve -> ready: "
            + ", ".join(f"{m} {statistics.median(v):.3f} s" for m, v in ready.items())
        )
        if self.args.peer == "litellm" and "litellm_error" not in self.results:
            times = []
            for _ in range(s.ready_runs):
                proc, _, seconds = self.start_litellm()
                times.append(seconds)
                self.procs.stop(proc)
            self.results["startup"]["litellm_ready_s"] = times
            print(f"  LiteLLM proxy -> ready median {statistics.median(times):.3f} s")

    def memory(self, receiver: str) -> None:
        s = self.s
        print(f"\n== memory: idle, then {s.hold_streams} open streams ==")
        proc, url, _ = self.start_hector("hector-memory", "observe", receiver)
        time.sleep(1.0)
        idle = tree_rss_kb(proc.pid)
        for _ in range(50):
            http_post(url + "/v1/chat/completions", self.bodies["openai"].read_bytes())
            http_post(url + "/agents/bench", self.bodies["a2a"].read_bytes())
        time.sleep(0.5)
        warm = tree_rss_kb(proc.pid)
        cmd = helper(
            "hold",
            "--url",
            url + "/v1/chat/completions",
            "--body",
            str(self.bodies["openai-hold"]),
            "--count",
            str(s.hold_streams),
            "--ramp",
            "2",
        )
        holder = self.procs.start("hold-streams", cmd, self.env, stdin=True)
        opened = json.loads(holder.line(timeout=120))
        samples = []
        for _ in range(5):
            samples.append(tree_rss_kb(proc.pid))
            time.sleep(0.2)
        loaded = max(samples)
        holder.say("close")
        self.procs.stop(holder)
        self.procs.stop(proc)
        per_stream = (loaded - warm) / max(1, opened["open"])
        self.results["memory"] = {
            "idle_kb": idle,
            "warm_kb": warm,
            "streams": opened,
            "with_streams_kb": loaded,
            "per_stream_kb": per_stream,
            "command": _shell(cmd),
            "load_average": load_average(),
        }
        print(
            f"  RSS idle {idle / 1024:.1f} MiB, after warm-up {warm / 1024:.1f} MiB, with "
            f"{opened['open']} streams {loaded / 1024:.1f} MiB -> {per_stream:.1f} KiB/stream"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs: under 2 minutes")
    parser.add_argument("--peer", choices=("litellm",), help="also measure this peer")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "aiohttp"), default="auto")
    parser.add_argument(
        "--sections",
        default="throughput,streaming,latency,metrics,startup,memory",
        help="comma-separated subset to run",
    )
    parser.add_argument("--targets", default="", help="throughput: only these groups")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--markdown", type=Path, help="write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, configs)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="also profile hector (off and --observe, c=32) with py-spy into this folder",
    )
    args = parser.parse_args()
    args.sections = set(args.sections.split(","))
    args.targets = set(filter(None, args.targets.split(",")))
    settings = QUICK if args.quick else FULL
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hector-bench-"))
    bench = Bench(args, settings, work)
    started = time.perf_counter()

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        bench.run()
    finally:
        bench.procs.stop_all()
        bench.results["wall_s"] = time.perf_counter() - started
        bench.results["load_average_at_end"] = load_average()
    from bench_report import render  # scripts/bench_report.py

    report = render(bench.results, bench.commands, work)
    print("\n" + report)
    if args.json:
        args.json.write_text(json.dumps(bench.results, indent=2, default=str))
    if args.markdown:
        args.markdown.write_text(report)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
