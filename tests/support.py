"""Starting real processes (`monaco serve`, any Python), for the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def python(*args: str) -> list[str]:
    """The command line of a Python process the tests start, run by the interpreter running them.

    In safe-path mode (-P): started in the checkout's root, Python would put that first on sys.path,
    where operator/ (monaco.operator) hides the standard library's `operator`. The Makefile sets the
    same mode (PYTHONSAFEPATH) for every Python that make starts.
    """
    return [sys.executable, "-P", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(data_dir: Path, port: int, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MONACO_", "PORT", "MAX_WORKERS"))}
    environ.update({"MONACO_DATA_DIR": str(data_dir), "PORT": str(port), **env})
    proc = subprocess.Popen(
        python("-m", "monaco.core.cli", "serve"),
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
