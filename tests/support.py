"""Running a real `monaco serve` process, for the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(data_dir: Path, port: int, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MONACO_", "PORT", "MAX_WORKERS"))}
    environ.update({"MONACO_DATA_DIR": str(data_dir), "PORT": str(port), **env})
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "monaco.core.cli", "serve"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


@contextlib.contextmanager
def served(**env: str) -> Iterator[str]:
    """A real server on a free port with a data dir of its own (removed afterwards); yields its URL."""
    data_dir = Path("/var/lib/monaco-test") / uuid.uuid4().hex
    data_dir.mkdir(parents=True)
    port = free_port()
    try:
        with server(data_dir, port, **env):
            yield f"http://127.0.0.1:{port}"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
