"""Benchmarks of the local back end, printed as tables (never asserted: machines here are shared).

1. load: the original service's test, 500 submissions from 20 concurrent clients.
2. added latency: hello-world Python end to end (POST /submit?wait) against the same interpreter bare.
3. throughput: a burst of hello-world Python with MAX_WORKERS=2.

Each talks to a real `monaco serve` process on loopback. Run with `make bench` (or
`.venv/bin/python bench/run.py [load|latency|throughput]...`).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import free_port, server

HELLO = 'print("hello")'
BARE_PYTHON = "/usr/bin/python3"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n### {title}\n")
    print(f"| {'metric'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")


@contextmanager
def monaco(**env: str) -> Iterator[str]:
    data_dir = Path("/var/lib/monaco-bench") / uuid.uuid4().hex
    data_dir.mkdir(parents=True)
    port = free_port()
    try:
        with server(data_dir, port, MONACO_LOG_LEVEL="WARNING", **env):
            yield f"http://127.0.0.1:{port}"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def wait_all(client: httpx.AsyncClient, ids: list[str], timeout: float) -> dict[str, dict[str, object]]:
    done: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        statuses = await asyncio.gather(*(client.get("/status", params={"id": i}) for i in pending[:200]))
        for sid, r in zip(pending[:200], statuses, strict=True):
            if r.json()["status"] in ("completed", "failed"):
                done[sid] = r.json()
        pending = [i for i in pending if i not in done]
        if pending:
            await asyncio.sleep(0.05)
    return done


def _client(args: tuple[int, int, int]) -> tuple[list[float], dict[int, int], list[str]]:
    """One client: its own process and connection, submitting one program after another."""
    port, first, count = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    codes: dict[int, int] = {}
    ids: list[str] = []
    for i in range(first, first + count):
        body = json.dumps({"language": "python", "code": f"print({i})"})
        t = time.perf_counter()
        conn.request("POST", "/submit", body, {"content-type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        latencies.append((time.perf_counter() - t) * 1000)
        codes[response.status] = codes.get(response.status, 0) + 1
        if response.status == 202:
            ids.append(json.loads(data)["id"])
    conn.close()
    return latencies, codes, ids


async def load(total: int = 500, clients: int = 20) -> None:
    # Each client is a process of its own with a plain http.client connection, as separate users
    # would be: a single asyncio client doing all 20 measures its own overhead more than the server's.
    with monaco(QUEUE_SIZE=str(total)) as base:
        port = int(base.rsplit(":", 1)[1])
        per = total // clients
        with ProcessPoolExecutor(clients) as pool:
            list(pool.map(_client, [(port, 0, 0)] * clients))  # start the processes first
            started = time.perf_counter()
            parts = list(pool.map(_client, [(port, c * per, per) for c in range(clients)]))
        submitted = time.perf_counter() - started
        latencies = [x for part in parts for x in part[0]]
        codes: dict[int, int] = {}
        for part in parts:
            for code, n in part[1].items():
                codes[code] = codes.get(code, 0) + n
        ids = [i for part in parts for i in part[2]]
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            done = await wait_all(client, ids, 600)
        drained = time.perf_counter() - started
        ok = sum(1 for d in done.values() if d["status"] == "completed")
    table(
        f"load: {total} submissions from {clients} concurrent clients (MAX_WORKERS=3, QUEUE_SIZE={total})",
        [
            ("answered 202", f"{codes.get(202, 0)} / {total} ({100 * codes.get(202, 0) / total:.1f} %)"),
            ("other answers", str({k: v for k, v in codes.items() if k != 202}) or "none"),
            ("completed ok", f"{ok} / {len(ids)}"),
            ("submit latency p50", f"{pct(latencies, 50):.1f} ms"),
            ("submit latency p95", f"{pct(latencies, 95):.1f} ms (target < 50 ms)"),
            ("submit latency p99", f"{pct(latencies, 99):.1f} ms"),
            ("all submitted after", f"{submitted:.2f} s"),
            ("all finished after", f"{drained:.2f} s"),
        ],
    )


def bare_run(source: Path) -> float:
    t = time.perf_counter()
    subprocess.run([BARE_PYTHON, str(source)], check=True, capture_output=True)
    return (time.perf_counter() - t) * 1000


async def latency(runs: int = 40) -> None:
    source = Path("/var/lib/monaco-bench") / "hello.py"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(HELLO + "\n")
    with monaco() as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(3):  # warm the page cache and the server
                await client.post("/submit?wait=10", json={"code": HELLO})
            e2e: list[float] = []
            inside: list[float] = []
            bare: list[float] = []
            for _ in range(runs):  # interleaved, so both see the same machine
                bare.append(bare_run(source))
                t = time.perf_counter()
                r = await client.post("/submit?wait=10", json={"code": HELLO})
                e2e.append((time.perf_counter() - t) * 1000)
                body = r.json()
                assert body["output"] == "hello\n", body
                inside.append(float(body["executionTimeMs"]))
    m_e2e, m_bare, m_in = statistics.median(e2e), statistics.median(bare), statistics.median(inside)
    table(
        f"added latency: hello-world Python, {runs} runs each, interleaved (medians)",
        [
            ("bare `/usr/bin/python3 hello.py`", f"{m_bare:.1f} ms"),
            ("Monaco end to end (POST /submit?wait)", f"{m_e2e:.1f} ms (p95 {pct(e2e, 95):.1f} ms)"),
            ("  of which the program, timed in the sandbox", f"{m_in:.1f} ms"),
            ("added by Monaco", f"{m_e2e - m_bare:.1f} ms (target < 30 ms)"),
            ("ratio to bare", f"{m_e2e / m_bare:.2f} x"),
        ],
    )


async def throughput(burst: int = 200, workers: int = 2) -> None:
    with monaco(MAX_WORKERS=str(workers), QUEUE_SIZE=str(burst)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            await client.post("/submit?wait=10", json={"code": HELLO})
            started = time.perf_counter()
            posts = await asyncio.gather(*(client.post("/submit", json={"code": HELLO}) for _ in range(burst)))
            ids = [p.json()["id"] for p in posts if p.status_code == 202]
            done = await wait_all(client, ids, 600)
            elapsed = time.perf_counter() - started
    ok = sum(1 for d in done.values() if d["status"] == "completed")
    table(
        f"throughput: burst of {burst} hello-world Python, MAX_WORKERS={workers}",
        [
            ("accepted", f"{len(ids)} / {burst}"),
            ("completed ok", f"{ok}"),
            ("wall time", f"{elapsed:.2f} s"),
            ("throughput", f"{ok / elapsed:.1f} runs/s (target >= 25)"),
        ],
    )


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load1 = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, load average {load1:.2f} at start"
    )


def main() -> None:
    wanted = sys.argv[1:] or ["load", "latency", "throughput"]
    print(f"machine: {machine()}")
    benchmarks: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "load": load, "latency": latency, "throughput": throughput}
    for name in wanted:
        asyncio.run(benchmarks[name]())


if __name__ == "__main__":
    main()
