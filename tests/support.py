"""Helpers of the tests, the e2e suite and the benchmarks: waiting, free ports, real processes.

No third-party import at the top: the e2e suite imports this from a virtual environment that may hold
pytest only.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import inspect
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest


def _polls(timeout: float, what: str, interval: float) -> Iterator[float]:
    """The pauses between the polls of a wait: yields until `timeout` has passed, then fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() <= deadline:
        yield interval
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


async def wait_until(condition: Callable[..., object], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `condition` (a function or a coroutine function) until it returns something truthy, and
    return that; fail the test with `what` after `timeout` seconds. Never a fixed sleep."""
    for pause in _polls(timeout, what, interval):
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(pause)


def wait_until_blocking(condition: Callable[..., object], timeout: float, what: str, interval: float = 0.5) -> Any:
    """wait_until for synchronous code (real servers, a real cluster): it blocks the thread between
    polls, which by default are further apart (each is an HTTP round trip or a kubectl process)."""
    for pause in _polls(timeout, what, interval):
        if value := condition():
            return value
        time.sleep(pause)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python(*args: str) -> list[str]:
    """The command line of a Python process the tests start, run by the interpreter running them.

    In safe-path mode (-P): started in the checkout's root, Python would put that first on sys.path,
    where operator/ (monaco.operator) hides the standard library's `operator`. The Makefile sets the
    same mode (PYTHONSAFEPATH) for every Python that make starts.
    """
    return [sys.executable, "-P", *args]


@contextlib.contextmanager
def server(data_dir: Path, port: int, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real `monaco serve` on 127.0.0.1:`port`, ready (GET /readyz) when this yields; killed after."""
    import httpx

    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MONACO_", "PORT", "MAX_WORKERS"))}
    environ.update({"MONACO_DATA_DIR": str(data_dir), "PORT": str(port), **env})
    proc = subprocess.Popen(
        python("-m", "monaco.cli", "serve"),
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until_blocking(ready, 30, f"the server on port {port} to be ready", interval=0.05)
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


class Receiver:
    """A callback receiver on 127.0.0.1 and a free port: answers each POST or PUT with the next of `answers`
    (a status code, or (code, headers)), 200 once they run out, and records what it received (and, in
    `methods`, with which method)."""

    def __init__(self, *answers: int | tuple[int, dict[str, str]]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.answers = list(answers)
        self.received: list[tuple[str, dict[str, str], bytes]] = []  # (path, headers, body)
        self.methods: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.methods.append(self.command)
                    answer = receiver.answers.pop(0) if receiver.answers else 200
                code, headers = (answer, {}) if isinstance(answer, int) else answer
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_PUT = do_POST

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def bodies(self) -> list[Any]:
        import json

        with self.lock:
            return [json.loads(body) for _, _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class Rule:
    """How the front answers requests whose path starts with `path`, `times` times (then it forwards again):
    with `status`, `headers` and `body` as a proxy or an Ingress in front of Monaco would, or, with
    status None, by closing the connection without a word (a server gone, a network that dropped it)."""

    method: str
    path: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    times: int = 1_000_000


class Front:
    """The server under the path /monaco of another port, as an Ingress that strips its path serves it (over
    TLS with `tls`, a certificate and its key); and, for a test that sets `rules`, what such a front says
    when things go wrong. A context manager: it answers while the `with` lasts."""

    def __init__(self, target: str, tls: tuple[Path, Path] | None = None) -> None:
        self.rules: list[Rule] = []
        self.lock = threading.Lock()
        upstream_at = urlsplit(target)
        front = self

        class Proxy(BaseHTTPRequestHandler):
            def forward(self) -> None:
                if not self.path.startswith("/monaco/"):
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                path = self.path.removeprefix("/monaco")
                rule = front.rule(self.command, path)
                if rule is not None:
                    if rule.status is None:
                        self.close_connection = True
                        return
                    self.answer(rule.status, rule.headers, rule.body)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream = http.client.HTTPConnection(upstream_at.hostname or "", upstream_at.port, timeout=60)
                try:
                    upstream.request(self.command, path, body or None, headers)
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                kept = {k: v for k, v in response.getheaders()
                        if k.lower() not in ("connection", "transfer-encoding", "content-length")}
                self.answer(response.status, kept, data)

            def answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/monaco"

    def __enter__(self) -> Front:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def rule(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.method == method and path.startswith(rule.path) and rule.times > 0:
                    rule.times -= 1
                    return rule
        return None
