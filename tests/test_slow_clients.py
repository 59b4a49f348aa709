"""Slow and greedy clients against a real `monaco serve` over raw sockets: a request head or body that
trickles in is cut off at its deadline with a 408, an idle connection too, open connections are
capped, and a normal client is served all the while."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import served

HEAD_S, BODY_S, MAX_CONNECTIONS = 1.0, 2.0, 24
SLACK_S = 1.5  # a shared, loaded machine: the deadline plus this is "within the bound"


@pytest.fixture(scope="module")
def base() -> Iterator[tuple[str, int]]:
    env = {
        "MONACO_HEADER_TIMEOUT_SECONDS": str(HEAD_S),
        "MONACO_BODY_TIMEOUT_SECONDS": str(BODY_S),
        "MONACO_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "MAX_WORKERS": "1",
    }
    with served(**env) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield host, int(port)


def connect(base: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(base, timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def trickle(sock: socket.socket, data: bytes, every: float, limit: float) -> tuple[float, bytes]:
    """Send `data` a byte at a time until the server closes; (seconds until closed, what it answered)."""
    began = time.monotonic()
    sock.setblocking(False)
    answer = b""
    for i in range(len(data)):
        try:
            sock.send(data[i : i + 1])
        except OSError:  # reset or closed: the server is done with us
            break
        with contextlib.suppress(BlockingIOError):
            chunk = sock.recv(65536)
            answer += chunk
            if not chunk:
                break
        if time.monotonic() - began > limit:
            pytest.fail(f"still open after {limit} s")
        time.sleep(every)
    sock.setblocking(True)
    sock.settimeout(limit)
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            answer += chunk
    return time.monotonic() - began, answer


HEAD = b"POST /submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 64\r\n"


def test_a_head_sent_a_byte_at_a_time_is_cut_off(base: tuple[str, int]) -> None:
    with connect(base) as sock:
        took, answer = trickle(sock, HEAD + b"x-pad: " + b"a" * 1000, every=0.1, limit=HEAD_S + SLACK_S)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"MONACO" not in answer and b"request head took longer than 1 s" in answer
    assert HEAD_S - 0.1 <= took <= HEAD_S + SLACK_S, took


def test_a_connection_that_sends_nothing_is_closed(base: tuple[str, int]) -> None:
    with connect(base) as sock:
        began = time.monotonic()
        sock.settimeout(HEAD_S + SLACK_S + 1)
        answer = sock.recv(65536)
        took = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert took <= HEAD_S + SLACK_S, took


def test_a_body_sent_a_byte_at_a_time_is_cut_off(base: tuple[str, int]) -> None:
    body = b'{"code": "print(1)"' + b" " * 44 + b"}"
    assert len(body) == 64
    with connect(base) as sock:
        sock.sendall(HEAD + b"\r\n")
        took, answer = trickle(sock, body, every=0.2, limit=BODY_S + SLACK_S)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"request body took longer than 2 s" in answer
    assert BODY_S - 0.1 <= took <= BODY_S + SLACK_S, took


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(base: tuple[str, int]) -> None:
    with connect(base) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        took, answer = trickle(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nx-pad: " + b"a" * 1000, 0.1, 5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert took <= HEAD_S + SLACK_S, took


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nx-big: " + b"a" * 20_000,  # no end in sight
     b"POST /submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
     b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nbad header\r\n\r\n"],
)  # fmt: skip
def test_what_is_not_http_is_a_json_400(base: tuple[str, int], request_bytes: bytes) -> None:
    with connect(base) as sock:
        sock.sendall(request_bytes)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ") and b"application/json" in answer, answer
    assert b'{"error": "the request is not valid HTTP/1.1' in answer, answer


def test_normal_clients_are_served_while_slow_ones_hold_connections(base: tuple[str, int]) -> None:
    url = f"http://{base[0]}:{base[1]}"
    stop = threading.Event()
    slow = [connect(base) for _ in range(MAX_CONNECTIONS // 2)]

    def keep_trickling() -> None:
        while not stop.is_set():
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"a")
            time.sleep(0.05)

    feeder = threading.Thread(target=keep_trickling, daemon=True)
    feeder.start()
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nx-pad: ")
        for _ in range(5):
            began = time.monotonic()
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            assert time.monotonic() - began < 0.5
        r = httpx.post(f"{url}/submit", params={"wait": 30}, json={"code": "print(6 * 7)"}, timeout=40)
        assert r.status_code == 200 and r.json()["output"] == "42\n", r.text
    finally:
        stop.set()
        feeder.join(5)
        for sock in slow:
            sock.close()


def test_connections_over_the_cap_are_refused_at_once(base: tuple[str, int]) -> None:
    held = [connect(base) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # every one accepted
        with connect(base) as extra:
            began = time.monotonic()
            answer = extra.recv(65536)
            assert time.monotonic() - began < 0.5
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in answer, answer
    finally:
        for sock in held:
            sock.close()
    # The held ones are gone; the server takes new connections again.
    url = f"http://{base[0]}:{base[1]}"
    deadline = time.monotonic() + 5
    while httpx.get(f"{url}/healthz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
