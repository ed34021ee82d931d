"""Retrieval quality and speed of a document store on a real corpus: Debian's python3-doc
HTML (``apt-get install python3-doc``), indexed with BM25 alone (no model).

    python scripts/bench_knowledge.py                  # quality, indexing, search, RSS
    python scripts/bench_knowledge.py --skip-server    # without the server's RSS
    python scripts/bench_knowledge.py --docs DIR       # another copy of the HTML docs

Quality: each question's answer lies in one known page; the figure is the share of
questions whose page is among the top 5 results (target: at least 80 %). Speed: documents
and chunks indexed per second (a fresh index), search latency p50/p99 with 1 and 16
concurrent searches against the index, the process CPU time of both (less sensitive than
wall time to what else the machine runs), and the RSS of ``hector serve`` with the index
loaded. Figures are printed, never asserted; not run by CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from hector_py.config.knowledge import DocumentStoreConfig
from hector_py.knowledge.store import DocumentStore

DOCS = Path("/usr/share/doc/python3-doc/html")
TOP_K = 5
TARGET = 0.80

# (question, the page that answers it)
QUESTIONS: list[tuple[str, str]] = [
    ("How do I parse a JSON string into a Python object?", "library/json.html"),
    ("read rows of a CSV file as dictionaries keyed by the header", "library/csv.html"),
    ("create a temporary directory that is removed automatically", "library/tempfile.html"),
    ("run a shell command and capture its output", "library/subprocess.html"),
    ("match a regular expression and get the groups", "library/re.html"),
    ("parse command-line arguments with optional flags and help text", "library/argparse.html"),
    ("format a date as a string with strftime directives", "library/datetime.html"),
    ("count how many times each element appears in a list", "library/collections.html"),
    ("generate a secure random token for a password reset URL", "library/secrets.html"),
    ("compute the SHA-256 digest of some bytes", "library/hashlib.html"),
    (
        "serialize arbitrary Python objects to a byte stream and load them back",
        "library/pickle.html",
    ),
    ("copy a whole directory tree recursively", "library/shutil.html"),
    ("find all pathnames matching a wildcard pattern like *.txt", "library/glob.html"),
    ("object-oriented filesystem paths: get a file's suffix and parent", "library/pathlib.html"),
    ("run several coroutines concurrently and wait for all of them", "library/asyncio-task.html"),
    ("a log handler that rotates the file when it gets too big", "library/logging.handlers.html"),
    ("cache the results of an expensive function with a decorator", "library/functools.html"),
    ("iterate over all permutations and combinations of a sequence", "library/itertools.html"),
    (
        "a class decorator that generates __init__ and __repr__ from fields",
        "library/dataclasses.html",
    ),
    ("write test cases with setUp and assertEqual", "library/unittest.html"),
    ("measure the execution time of small code snippets", "library/timeit.html"),
    ("split a URL into scheme, network location, path and query", "library/urllib.parse.html"),
    ("open a URL and read the response with urlopen", "library/urllib.request.html"),
    ("compress and decompress files in gzip format", "library/gzip.html"),
    ("read and extract the members of a ZIP archive", "library/zipfile.html"),
    ("store data in a lightweight disk-based SQL database", "library/sqlite3.html"),
    ("run calls in a pool of threads and collect the futures", "library/concurrent.futures.html"),
    ("a lock so that only one thread changes shared data at a time", "library/threading.html"),
    ("a priority queue: push items and pop the smallest", "library/heapq.html"),
    ("binary search for the insertion point in a sorted list", "library/bisect.html"),
    ("exact decimal floating point arithmetic for money", "library/decimal.html"),
    ("rational numbers with a numerator and a denominator", "library/fractions.html"),
    ("mean, median and standard deviation of numeric data", "library/statistics.html"),
    ("parse an XML document and find elements by tag", "library/xml.etree.elementtree.html"),
    ("read settings from an INI configuration file", "library/configparser.html"),
    ("encode binary data as base64 text", "library/base64.html"),
    ("type hints for optional values, unions and generics", "library/typing.html"),
    ("enumerations: a set of symbolic names bound to unique values", "library/enum.html"),
    ("make a deep copy of a nested object", "library/copy.html"),
    ("install a handler for SIGINT or other asynchronous events", "library/signal.html"),
    ("sort a list of tuples by a key with the sorted function", "howto/sorting.html"),
    ("create an isolated virtual environment with its own site directories", "library/venv.html"),
    ("define an abstract base class with abstract methods", "library/abc.html"),
]


def store_for(docs: Path, index: Path) -> DocumentStore:
    """The store a user would configure for the docs' HTML pages (sources left out)."""
    config = DocumentStoreConfig.model_validate(
        {
            "source": {"path": str(docs), "include": ["**/*.html"], "exclude": ["_sources/**"]},
            "index": {"path": str(index)},
        }
    )
    return DocumentStore("python-docs", config)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def quality(store: DocumentStore) -> float:
    """The share of questions whose page is in the top 5; prints each miss."""
    found, reciprocal = 0, 0.0
    for question, page in QUESTIONS:
        hits = asyncio.run(store.search(question, TOP_K))
        pages = [hit.path for hit in hits]
        if page in pages:
            found += 1
            reciprocal += 1 / (pages.index(page) + 1)
        else:
            print(f"  miss: {question!r}: wanted {page}, got {pages}")
    share = found / len(QUESTIONS)
    print(
        f"quality: {found}/{len(QUESTIONS)} = {share:.0%} of questions have their page in the"
        f" top {TOP_K} (target {TARGET:.0%}: {'met' if share >= TARGET else 'missed'});"
        f" MRR {reciprocal / len(QUESTIONS):.2f}"
    )
    return share


async def _latencies(store: DocumentStore, concurrency: int, rounds: int) -> list[float]:
    queries = [question for question, _ in QUESTIONS]
    times: list[float] = []

    async def worker(offset: int) -> None:
        for index in range(rounds):
            query = queries[(offset + index) % len(queries)]
            started = time.perf_counter()
            await store.search(query, TOP_K)
            times.append(time.perf_counter() - started)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return times


def search_speed(store: DocumentStore) -> None:
    for concurrency, rounds in ((1, 200), (16, 40)):
        cpu = time.process_time()
        times = asyncio.run(_latencies(store, concurrency, rounds))
        cpu = (time.process_time() - cpu) / len(times)  # less sensitive to the machine's load
        print(
            f"search c={concurrency}: {len(times)} searches, p50"
            f" {percentile(times, 0.5) * 1000:.1f} ms, p99 {percentile(times, 0.99) * 1000:.1f} ms,"
            f" {cpu * 1000:.2f} ms CPU each"
            + (" (target p99 <= 20 ms at c=16)" if concurrency == 16 else "")
        )


def server_rss(docs: Path, index: Path, workdir: Path) -> None:
    """Start ``hector serve`` over the built index; print its RSS once it is ready."""
    config = workdir / "hector.yaml"
    config.write_text(
        "agents:\n  assistant:\n    knowledge: [python-docs]\n"
        "document_stores:\n  python-docs:\n"
        f"    source: {{path: '{docs}', include: ['**/*.html'], exclude: ['_sources/**'],"
        " watch: false}\n"
        f"    index: {{path: '{index}'}}\n"
    )
    command = [sys.executable, "-m", "hector_py", "serve", "-c", str(config), "--port", "18765"]
    command += ["--host", "127.0.0.1", "--log-level", "warn"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen("http://127.0.0.1:18765/health/ready", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        if proc.poll() is not None:
            sys.exit(f"error: the server exited with {proc.returncode}: {' '.join(command)}")
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
        print(f"server RSS with the index loaded: {int(rss) / 1024:.0f} MiB ({' '.join(command)})")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()
    if not args.docs.is_dir():
        sys.exit(f"error: {args.docs} not found (apt-get install python3-doc)")
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f};"
        f" corpus {args.docs}; {len(QUESTIONS)} questions"
    )
    with tempfile.TemporaryDirectory() as workdir:
        index = Path(workdir, "python-docs.db")
        store = store_for(args.docs, index)
        cpu = time.process_time()
        report = store.refresh()
        cpu = time.process_time() - cpu
        print(
            f"indexing: {report.documents} documents, {report.chunks} chunks in"
            f" {report.seconds:.2f} s: {report.documents / report.seconds:.0f} documents/s,"
            f" {report.chunks / report.seconds:.0f} chunks/s (target 200 documents/s);"
            f" {cpu:.2f} s CPU"
        )
        quality(store)
        search_speed(store)
        store.close()
        if not args.skip_server:
            server_rss(args.docs, index, Path(workdir))


if __name__ == "__main__":
    main()
