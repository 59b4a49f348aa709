"""Callbacks through the real local back end: real programs, a real receiver on loopback, and a real
`monaco serve` killed while a delivery is pending."""

from __future__ import annotations

import base64
import contextlib
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from monaco.api.app import create_app
from monaco.api.local.store import _CALLBACK_COLUMNS, _SCHEMA, PendingCallback, Store
from monaco.core import callback
from monaco.core.judge0 import DEFAULT_FIELDS, encode64
from monaco.core.settings import Settings
from tests.conftest import serve, wait_for_result
from tests.support import Receiver, free_port, server, wait_until, wait_until_blocking

pytestmark = pytest.mark.anyio
PROGRAM = {"code": "print(input()[::-1])", "input": "olleh"}


def with_callbacks(settings: Settings, **changes: Any) -> Starlette:
    values = {"callback_allow": "127.0.0.1", "callback_backoff_seconds": 0.05, **changes}
    app: Starlette = create_app(settings.model_copy(update=values))
    return app


async def delivered(client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get("/result", params={"id": sid})).json()
        return body if body["callback"] and body["callback"]["state"] != "pending" else None

    result: dict[str, Any] = await wait_until(done, 30, f"the callback of {sid} to settle", 0.05)
    return result


async def test_with_callbacks_off_a_callback_url_is_a_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/submit", json={**PROGRAM, "callbackUrl": "http://127.0.0.1:9/"})
    assert r.status_code == 400
    assert r.json()["error"] == "callbacks are not enabled on this server (its MONACO_CALLBACK_ALLOW is empty)"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:9/", "'callbackUrl' host '127.0.0.1' is not on this server's callback allowlist"),
        ("http://[::1]:9/", "'callbackUrl' host '::1' is not on this server's callback allowlist"),
        ("http://169.254.169.254/", "'callbackUrl' host '169.254.169.254' is not on this server's callback allowlist"),
        ("http://2130706433/", "'callbackUrl' host '2130706433' is not a host name"),
        ("file:///etc/passwd", "'callbackUrl' must be an http:// or https:// URL, not 'file'"),
        ("http://hooks.example.com@127.0.0.1/", "'callbackUrl' must not hold a user name or password (user@host)"),
    ],
)
async def test_loopback_and_friends_are_refused_by_default(settings: Settings, url: str, why: str) -> None:
    """The allowlist names a real host only: loopback is refused at the door, before anything is stored."""
    async with serve(with_callbacks(settings, callback_allow="hooks.example.com")) as client:
        r = await client.post("/submit", json={**PROGRAM, "callbackUrl": url})
        assert r.status_code == 400 and r.json()["error"].startswith(why), r.json()
        assert (await client.get("/queue-stats")).json()["submissions"] == 0


async def test_a_callback_url_of_the_wrong_type_is_a_400(settings: Settings) -> None:
    async with serve(with_callbacks(settings)) as client:
        r = await client.post("/submit", json={**PROGRAM, "callbackUrl": 7})
        assert r.status_code == 400 and "'callbackUrl'" in r.json()["error"]


async def test_the_result_arrives_with_the_body_of_get_result(settings: Settings) -> None:
    with Receiver() as receiver:
        async with serve(with_callbacks(settings)) as client:
            r = await client.post("/submit", json={**PROGRAM, "callbackUrl": f"{receiver.url}/done?k=1"})
            assert r.status_code == 202
            sid = r.json()["id"]
            result = await delivered(client, sid)
        assert result["output"] == "hello\n" and result["verdict"] == "ok"
        assert result["callback"] == {"state": "delivered", "attempts": 1, "lastError": None}
        [(path, headers, _)] = receiver.received
        assert path == "/done?k=1" and headers["content-type"] == "application/json"
        assert headers["x-monaco-submission"] == sid and headers["x-monaco-attempt"] == "1"
        [sent] = receiver.bodies()
        assert sent["callback"] == {"state": "pending", "attempts": 0, "lastError": None}
        assert {k: v for k, v in sent.items() if k != "callback"} == {
            k: v for k, v in result.items() if k != "callback"
        }


async def test_a_receiver_that_fails_twice_gets_it_on_the_third_attempt(settings: Settings) -> None:
    with Receiver(503, 429) as receiver:
        async with serve(with_callbacks(settings)) as client:
            sid = (await client.post("/submit", json={**PROGRAM, "callbackUrl": receiver.url})).json()["id"]
            result = await delivered(client, sid)
            metrics = (await client.get("/metrics")).text
        assert result["callback"] == {"state": "delivered", "attempts": 3, "lastError": None}
        bodies = receiver.bodies()
        assert len(bodies) == 3 and all(b["id"] == sid and b["output"] == "hello\n" for b in bodies)
        assert [b["callback"]["lastError"] for b in bodies] == [None, "HTTP 503", "HTTP 429"]
        assert 'monaco_callbacks_total{result="retrying"} 2.0' in metrics
        assert 'monaco_callbacks_total{result="delivered"} 1.0' in metrics


async def test_a_receiver_that_keeps_failing_is_given_up_on_after_the_bounded_attempts(settings: Settings) -> None:
    with Receiver(500, 500, 500, 500) as receiver:
        async with serve(with_callbacks(settings, callback_attempts=3)) as client:
            sid = (await client.post("/submit", json={**PROGRAM, "callbackUrl": receiver.url})).json()["id"]
            result = await delivered(client, sid)
        assert result["callback"] == {"state": "failed", "attempts": 3, "lastError": "HTTP 500"}
        assert len(receiver.received) == 3


async def test_a_4xx_ends_the_delivery_at_once(settings: Settings) -> None:
    with Receiver(404) as receiver:
        async with serve(with_callbacks(settings)) as client:
            sid = (await client.post("/submit", json={**PROGRAM, "callbackUrl": receiver.url})).json()["id"]
            result = await delivered(client, sid)
        assert result["callback"] == {"state": "failed", "attempts": 1, "lastError": "HTTP 404"}


async def test_a_failed_program_is_reported_too(settings: Settings) -> None:
    with Receiver() as receiver:
        async with serve(with_callbacks(settings)) as client:
            body = {"code": "import sys; sys.exit(3)", "callbackUrl": receiver.url}
            sid = (await client.post("/submit", json=body)).json()["id"]
            await delivered(client, sid)
        [sent] = receiver.bodies()
        assert sent["status"] == "failed" and sent["verdict"] == "runtime_error" and sent["exitCode"] == 3


async def test_an_allowlisted_name_that_resolves_to_loopback_is_refused_when_sending(settings: Settings) -> None:
    with Receiver() as receiver:
        async with serve(with_callbacks(settings, callback_allow="localhost")) as client:
            url = f"http://localhost:{receiver.port}/"
            sid = (await client.post("/submit", json={**PROGRAM, "callbackUrl": url})).json()["id"]
            result = await delivered(client, sid)
        assert result["callback"]["state"] == "failed" and result["callback"]["attempts"] == 1
        assert "is loopback" in result["callback"]["lastError"]
        assert receiver.received == []


async def test_a_submission_without_a_callback_says_so(client: httpx.AsyncClient) -> None:
    sid = (await client.post("/submit", json=PROGRAM)).json()["id"]
    assert (await wait_for_result(client, sid))["callback"] is None


@pytest.mark.slow
def test_a_pending_delivery_survives_a_restart_of_the_api(data_dir: Path) -> None:
    """The receiver fails the first attempt; the server is killed while the second waits for its turn,
    and the restarted server (same data dir) delivers it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"MONACO_CALLBACK_ALLOW": "127.0.0.1", "MONACO_CALLBACK_BACKOFF_SECONDS": "4"}
    with Receiver(500) as receiver:
        with server(data_dir, port, **env) as proc:
            sid = httpx.post(f"{base}/submit", json={**PROGRAM, "callbackUrl": receiver.url}).json()["id"]

            def first_attempt_recorded() -> bool:
                callback = httpx.get(f"{base}/result", params={"id": sid}).json()["callback"]
                return bool(callback["attempts"] == 1)

            wait_until_blocking(first_attempt_recorded, 30, "the first attempt to be recorded", 0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert len(receiver.received) == 1  # killed before the second attempt (due 2 to 6 s later)
        with server(data_dir, port, **env):

            def settled() -> dict[str, Any] | None:
                result: dict[str, Any] = httpx.get(f"{base}/result", params={"id": sid}).json()
                return result if result["callback"]["state"] != "pending" else None

            result = wait_until_blocking(settled, 30, "the delivery to resume after the restart", 0.05)
        assert result["callback"] == {"state": "delivered", "attempts": 2, "lastError": None}
        bodies = receiver.bodies()
        assert len(bodies) == 2 and all(b["id"] == sid and b["output"] == "hello\n" for b in bodies)
        assert bodies[1]["callback"] == {"state": "pending", "attempts": 1, "lastError": "HTTP 500"}


def test_a_database_of_an_earlier_release_gains_the_callback_columns(data_dir: Path) -> None:
    db = data_dir / "old.db"
    data_dir.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(_SCHEMA)
        conn.execute(
            "INSERT INTO submissions (id, language, code, input, timeout_seconds, memory_mb, status, queued_at)"
            " VALUES ('old', 'python', 'print(1)', '', 5, 128, 'queued', '2026-01-01T00:00:00+00:00')"
        )
        conn.commit()
    store = Store(db)
    store.open()
    try:
        view = store.get("old")
        assert view is not None and view.callback is None and store.pending_callbacks() == []
        assert store.callback_target("old") is None
    finally:
        store.close()


def test_a_pending_callback_of_the_release_before_formats_is_still_sent_as_monaco_sends_it(data_dir: Path) -> None:
    """A store written by the release with callbacks but without formats: its pending deliveries resume,
    as a POST of Monaco's body."""
    db = data_dir / "callbacks.db"
    data_dir.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(_SCHEMA)
        for column, kind in _CALLBACK_COLUMNS.items():
            if column != "callback_format":
                conn.execute(f"ALTER TABLE submissions ADD COLUMN {column} {kind}")
        conn.execute(
            "INSERT INTO submissions (id, language, code, input, timeout_seconds, memory_mb, status, queued_at,"
            " completed_at, callback_url, callback_state) VALUES ('old', 'python', 'print(1)', '', 5, 128,"
            " 'completed', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:01+00:00', 'http://h.example/', 'pending')"
        )
        conn.commit()
    store = Store(db)
    store.open()
    try:
        assert store.pending_callbacks() == [PendingCallback("old", "http://h.example/", None, 0, None)]
        assert store.callback_target("old") == ("http://h.example/", None)
        view = store.get("old")
        assert view is not None and callback.message(view, None).method == "POST"
        assert callback.message(view, None).body == view.result_body()
    finally:
        store.close()


# ---- the Judge0 API's callbacks: what Judge0 CE 1.13 itself sends (IsolateJob#call_callback)


@pytest.mark.parametrize("base64_encoded", [False, True])
async def test_a_judge0_client_gets_judge0s_put_in_base64_whatever_it_created_with(
    settings: Settings, base64_encoded: bool
) -> None:
    """Judge0 PUTs its default fields with the text in Base64 even to a client that created the submission
    with base64_encoded=false: the body is exactly what GET ?base64_encoded=true answers."""
    source, stdin = "import sys\nprint(input()[::-1])\nprint('oops', file=sys.stderr)\nsys.exit(3)", "olleh"
    if base64_encoded:
        source, stdin = encode64(source), encode64(stdin)
    body = {"source_code": source, "stdin": stdin, "language_id": 71}
    with Receiver() as receiver:
        async with serve(with_callbacks(settings)) as client:
            r = await client.post(
                "/judge0/submissions",
                params={"base64_encoded": str(base64_encoded).lower()},
                json={**body, "callback_url": f"{receiver.url}/judge0?k=1"},
            )
            assert r.status_code == 201, r.text
            token = r.json()["token"]
            result = await delivered(client, token)
            answer = (await client.get(f"/judge0/submissions/{token}", params={"base64_encoded": "true"})).json()
        assert result["callback"] == {"state": "delivered", "attempts": 1, "lastError": None}
        assert receiver.methods == ["PUT"]
        [(path, headers, _)] = receiver.received
        assert path == "/judge0?k=1" and headers["content-type"] == "application/json"
        assert headers["x-monaco-submission"] == token and headers["x-monaco-attempt"] == "1"
        [sent] = receiver.bodies()
        assert sent == answer and set(sent) == set(DEFAULT_FIELDS)
        assert sent["token"] == token and sent["status"] == {"id": 11, "description": "Runtime Error (NZEC)"}
        assert base64.b64decode(sent["stdout"]) == b"hello\n" and sent["stdout"] == encode64("hello\n")
        assert base64.b64decode(sent["stderr"]) == b"oops\n" and sent["compile_output"] is None
        assert sent["time"] == f"{result['executionTimeMs'] / 1000:.3f}" and sent["memory"] == result["memoryKb"]


async def test_a_judge0_callback_that_fails_is_retried_as_monacos_are(settings: Settings) -> None:
    with Receiver(503) as receiver:
        async with serve(with_callbacks(settings)) as client:
            body = {"source_code": "print(6 * 7)", "language_id": 71, "callback_url": receiver.url}
            token = (await client.post("/judge0/submissions", json=body)).json()["token"]
            result = await delivered(client, token)
        assert result["callback"] == {"state": "delivered", "attempts": 2, "lastError": None}
        assert receiver.methods == ["PUT", "PUT"]
        first, second = receiver.bodies()
        assert first == second and first["status"] == {"id": 3, "description": "Accepted"}
        assert first["stdout"] == encode64("42\n")


async def test_monacos_own_submit_cannot_ask_for_judge0s_format(settings: Settings) -> None:
    """The format is the Judge0 API's to set, not a field of POST /submit: a client's `callbackFormat`
    is ignored like any unknown key, and the receiver gets Monaco's POST."""
    with Receiver() as receiver:
        async with serve(with_callbacks(settings)) as client:
            body = {**PROGRAM, "callbackUrl": receiver.url, "callbackFormat": "judge0"}
            sid = (await client.post("/submit", json=body)).json()["id"]
            await delivered(client, sid)
        assert receiver.methods == ["POST"]
        [sent] = receiver.bodies()
        assert sent["id"] == sid and sent["output"] == "hello\n" and "token" not in sent
