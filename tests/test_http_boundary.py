"""The HTTP boundary as an attacker meets it: hostile bodies, loose types, foreign hosts and content types,
and the seed's integer times. Every answer to a bad request is a 4xx JSON error that says what is wrong.

These run against the real app over ASGI; tests/test_slow_clients.py covers what only a real socket
can show (deadlines and the connection cap).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from monaco.api.app import create_app
from monaco.core.models import Outcome, Status, SubmissionView, Verdict
from monaco.core.settings import Settings

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}
HELLO = 'print("hello")'


@contextlib.asynccontextmanager
async def serve(settings: Settings, host: str = "localhost") -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}", timeout=60) as client:
            yield client


@pytest.fixture
async def client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    # One worker and a short queue: a hostile body that were accepted would still be cheap.
    async with serve(Settings(data_dir=data_dir, max_workers=1, queue_size=50)) as c:
        yield c


def refused(response: httpx.Response, status: int = 400, fragment: str = "") -> str:
    assert response.status_code == status, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["content-type"] == "application/json"
    message: str = response.json()["error"]
    assert message and fragment in message, message
    return message


# ---- 1. nothing a client sends is a 500
# (body, the fragment of the 400's message that names the problem)
HOSTILE_BODIES: list[tuple[bytes, str]] = [
    (b"[" * 100_000 + b"]" * 100_000, "too deeply"),
    (b'{"code": ' + b"[" * 100_000, "too deeply"),
    (b'{"x": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b', "code": "x"}', "too deeply"),
    (b'{"language": "python", "code": "\\ud800"}', "'code': holds a lone surrogate (\\ud800"),
    (b'{"language": "python", "code": "x", "input": "ab\\udfff"}', "'input': holds a lone surrogate"),
    (b'{"language": "py\\udc00", "code": "x"}', "'language': holds a lone surrogate"),
    (b'{"code": "\\udbff\\udbff"}', "lone surrogate"),
    (b'{"code": "x", "\\ud800": 1}', "a key with a lone surrogate (\\ud800"),  # a key no field reads
    (b'{"code": "x", "extra": [{"a\\udfffb": 1}]}', "a key with a lone surrogate (\\udfff at character 1"),
    ('{"code": "\ud800"}'.encode("utf-8", "surrogatepass"), "not UTF-8"),  # the surrogate as raw bytes
    (b'{"code": "\xff\xfe"}', "not UTF-8"),
    ('{"code": "x"}'.encode("utf-16"), "not UTF-8"),
    (b'{"code": "x", "memoryMb": ' + b"9" * 5000 + b"}", "5000 digits"),
    (b'{"code": "x", "n": -' + b"1" * 4301 + b"}", "4301 digits"),
    (b'{"code": "x", "timeoutSeconds": 1e999}', "too large"),
    (b'{"code": "x", "timeoutSeconds": -1e400}', "too large"),
    (b'{"code": "x", "timeoutSeconds": NaN}', "NaN is not a JSON number"),
    (b'{"code": "x", "timeoutSeconds": Infinity}', "Infinity"),
    (b'{"code": "x", "memoryMb": -Infinity}', "-Infinity"),
    (b'{"code": "x", "x": [NaN]}', "NaN"),
    (b'{"code": "print(1)", "code": "import os"}', "the key 'code' twice"),
    (b'{"code": "x", "extra": {"a": 1, "a": 2}}', "the key 'a' twice"),
    (b"", "not valid JSON"),
    (b"   ", "not valid JSON"),
    (b"\x00", "not valid JSON"),
    (b"null", "JSON object"),
    (b'"code"', "JSON object"),
    (b"1e999", "too large"),
    (b'{"code": "x"} trailing', "not valid JSON"),
    (b'{"code": "x",}', "not valid JSON"),
    (b"{'code': 'x'}", "not valid JSON"),
    (b'{"code": "\x01 a raw control character"}', "not valid JSON"),
    (b'{"code": "x\\u0000y"}', "NUL"),
    (b'{"code": null}', "'code'"),
    (b'{"code": {"a": 1}}', "'code'"),
    (b'{"code": ["x"]}', "'code'"),
    (b'{"code": "x", "language": ""}', "unknown language"),
    (b'{"code": "x", "language": "' + b"a" * 10_000 + b'"}', "unknown language"),
    (b'{"code": "x", "language": "python\\u0000"}', "unknown language"),
    (b'{"code": "x", "memoryMb": 0}', "'memoryMb'"),
    (b'{"code": "x", "memoryMb": 1}', "the minimum is 16"),
    (b'{"code": "x", "timeoutSeconds": 0}', "'timeoutSeconds'"),
    (b'{"code": "x", "timeoutSeconds": 1e308}', "maximum for python"),
    (b'{"code": "x", "memoryMb": 99999999999999999999}', "maximum for python"),
]


@pytest.mark.parametrize(("body", "fragment"), HOSTILE_BODIES, ids=[f"body{i}" for i in range(len(HOSTILE_BODIES))])
async def test_hostile_bodies_are_400_with_a_message(client: httpx.AsyncClient, body: bytes, fragment: str) -> None:
    refused(await client.post("/submit", content=body, headers=JSON), 400, fragment)


async def test_a_byte_order_mark_is_ignored(client: httpx.AsyncClient) -> None:
    r = await client.post("/submit", content=b'\xef\xbb\xbf{"code": "print(1)"}', headers=JSON)
    assert r.status_code == 202, r.text


async def test_hostile_query_parameters_are_400(client: httpx.AsyncClient) -> None:
    for wait in ("nan", "inf", "-inf", "1e999", "-1", "", "soon", "1" * 5000, "0x10", "61"):
        refused(await client.post("/submit", params={"wait": wait}, json={"code": HELLO}), 400, "'wait'")
    for sid in ("x" * 129, "é" * 200):
        refused(await client.get("/status", params={"id": sid}), 400, "'id'")
        refused(await client.get("/result", params={"id": sid}), 400, "'id'")
        refused(await client.delete(f"/submissions/{sid}"), 400, "'id'")
    for sid in ("%ED%A0%80", "%00", "..%2F..%2Fetc%2Fpasswd", "%FF%FE"):
        refused(await client.get(f"/status?id={sid}"), 404)
        refused(await client.delete(f"/submissions/{sid}"), 404)


async def test_hostile_headers_are_not_500(client: httpx.AsyncClient) -> None:
    for length in (b"\xb2", b"-1", b"1e9", b"99999999999999999999999999"):
        r = await client.post(
            "/submit", content=b'{"code": "x", "memoryMb": 1}',
            headers=[(k.encode(), v.encode()) for k, v in JSON.items()] + [(b"content-length", length)],
        )
        assert 400 <= r.status_code < 500 and r.json()["error"], r.text


# ---- 2. types are strict, as the model says
STRICT: list[tuple[str, Any]] = [
    ("timeoutSeconds", "5"),
    ("timeoutSeconds", True),
    ("timeoutSeconds", False),
    ("timeoutSeconds", [5]),
    ("timeoutSeconds", {"s": 5}),
    ("memoryMb", "64"),
    ("memoryMb", True),
    ("memoryMb", 64.0),
    ("memoryMb", 64.5),
    ("language", True),
    ("language", 1),
    ("language", ["python"]),
    ("code", True),
    ("code", 1.5),
    ("input", 5),
    ("input", False),
    ("input", None),
]


@pytest.mark.parametrize(("field", "value"), STRICT)
async def test_every_field_has_a_strict_type(client: httpx.AsyncClient, field: str, value: Any) -> None:
    body = {"language": "python", "code": HELLO, field: value}
    refused(await client.post("/submit", json=body), 400, f"'{field}'")


async def test_the_types_the_model_promises_are_accepted(client: httpx.AsyncClient) -> None:
    ok = {"language": None, "code": HELLO, "input": "", "timeoutSeconds": 5, "memoryMb": 64}
    assert (await client.post("/submit", json=ok)).status_code == 202
    assert (await client.post("/submit", json={**ok, "timeoutSeconds": 2.5, "memoryMb": None})).status_code == 202


# ---- 3. only JSON bodies, only our host names
@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data",
     "application/jsonx", "application/json-patch+json", "application/json; charset=latin-1", "json"],
)  # fmt: skip
async def test_a_body_that_is_not_declared_json_is_415(client: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    r = await client.post("/submit", content=b'{"code": "print(1)"}', headers=headers)
    refused(r, 415, "UTF-8" if "latin-1" in (content_type or "") else "Content-Type: application/json")


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON", "application/json; charset=UTF-8",
                                          'application/json;charset="utf-8"', "application/json; foo=bar"])  # fmt: skip
async def test_json_content_types_are_accepted(client: httpx.AsyncClient, content_type: str) -> None:
    r = await client.post("/submit", content=b'{"code": "print(1)"}', headers={"content-type": content_type})
    assert r.status_code == 202, r.text


async def test_a_foreign_host_is_refused_when_bound_to_loopback(client: httpx.AsyncClient) -> None:
    # DNS rebinding: evil.example resolves to 127.0.0.1, and the browser sends its own name.
    for host in ("evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io", "", "[::2]"):
        headers = {"host": host} if host else {"host": ""}
        for r in (
            await client.post("/submit", json={"code": HELLO}, headers=headers),
            await client.get("/result", params={"id": "x"}, headers=headers),
            await client.get("/queue-stats", headers=headers),
        ):
            refused(r, 400, "MONACO_ALLOWED_HOSTS")
    for host in ("localhost", "localhost:8080", "LOCALHOST.", "127.0.0.1", "127.0.0.1:9", "[::1]", "[::1]:8080"):
        assert (await client.get("/queue-stats", headers={"host": host})).status_code == 200, host


async def test_the_probes_and_metrics_answer_any_host(client: httpx.AsyncClient) -> None:
    # The kubelet probes and Prometheus scrapes with the pod's IP as Host, whatever MONACO_ALLOWED_HOSTS says.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path, headers={"host": "10.244.0.17:8080"})).status_code == 200, path


async def test_allowed_hosts_are_configurable(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, allowed_hosts="monaco.example.com, *.corp.example")
    async with serve(settings, host="monaco.example.com") as client:
        for host, status in [("monaco.example.com", 200), ("MONACO.example.com:443", 200), ("a.b.corp.example", 200),
                             ("localhost", 400), ("corp.example", 400), ("evil.corp.example.attacker", 400),
                             ("xcorp.example", 400)]:  # fmt: skip
            assert (await client.get("/queue-stats", headers={"host": host})).status_code == status, host


def test_the_default_hosts_follow_the_bound_address(data_dir: Path) -> None:
    loopback = ["localhost", "127.0.0.1", "[::1]"]
    assert Settings(data_dir=data_dir).allowed_host_list == loopback
    assert Settings(data_dir=data_dir, host="localhost").allowed_host_list[:3] == loopback
    assert Settings(data_dir=data_dir, host="127.0.0.5").allowed_host_list == [*loopback, "127.0.0.5"]
    assert Settings(data_dir=data_dir, host="::1").allowed_host_list[:3] == loopback
    assert Settings(data_dir=data_dir, host="0.0.0.0").allowed_host_list == ["*"]  # the chart: any Host
    assert Settings(data_dir=data_dir, host="::").allowed_host_list == ["*"]
    assert Settings(data_dir=data_dir, host="10.0.0.4").allowed_host_list == ["*"]
    assert Settings(data_dir=data_dir, host="0.0.0.0", allowed_hosts="a, B").allowed_host_list == ["a", "b"]


# ---- §5: the seed's integer times, and the precise ones beside them
def _view(**fields: Any) -> SubmissionView:
    fields.setdefault("status", Status.QUEUED)
    return SubmissionView(id="s", language="python", queued_at=datetime(2026, 1, 1, 14, 30, 0, tzinfo=UTC), **fields)


def test_the_seeds_example_total_time_includes_the_queue() -> None:
    done = _view(
        status=Status.COMPLETED,
        started_at=datetime(2026, 1, 1, 14, 30, 1, 500000, tzinfo=UTC),
        completed_at=datetime(2026, 1, 1, 14, 30, 2, tzinfo=UTC),
        outcome=Outcome(verdict=Verdict.OK, execution_ms=24.397, compile_ms=100.5),
    )
    body = done.result_body()
    assert body["totalTime"] == 2000 and type(body["totalTime"]) is int
    assert body["executionTime"] == 24 and type(body["executionTime"]) is int
    assert (body["executionTimeMs"], body["compileTimeMs"], body["queueTimeMs"]) == (24.397, 100.5, 1500.0)
    assert body["totalTimeFormatted"] == "2.000 s" and body["executionTimeFormatted"] == "24.4 ms"
    assert done.status_body()["executionTime"] == 24 and done.status_body()["executionTimeMs"] == 24.397
    half = _view(status=Status.COMPLETED, outcome=Outcome(verdict=Verdict.OK, execution_ms=12.5))
    assert half.result_body()["executionTime"] == 13  # half up, not to even


def test_times_are_none_until_finished() -> None:
    body = _view().result_body()
    assert {k: body[k] for k in ("executionTime", "executionTimeMs", "totalTime", "compileTimeMs", "queueTimeMs")} == {
        "executionTime": None, "executionTimeMs": None, "totalTime": None, "compileTimeMs": None, "queueTimeMs": None
    }  # fmt: skip
    running = _view(status=Status.RUNNING, started_at=datetime(2026, 1, 1, 14, 30, 0, 250000, tzinfo=UTC))
    assert running.result_body()["queueTimeMs"] == 250.0 and running.result_body()["totalTime"] is None


async def test_a_real_result_has_the_seeds_types(client: httpx.AsyncClient) -> None:
    r = await client.post("/submit", params={"wait": 30}, json={"code": "print(1)"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert type(body["executionTime"]) is int and type(body["totalTime"]) is int
    assert isinstance(body["executionTimeMs"], float) and body["executionTimeMs"] > 0
    assert abs(body["executionTime"] - body["executionTimeMs"]) <= 0.5
    assert body["compileTimeMs"] is None  # python does not compile
    queued, completed = (datetime.fromisoformat(body[k]) for k in ("queuedAt", "completedAt"))
    assert abs(body["totalTime"] - (completed - queued).total_seconds() * 1000) <= 1
    assert body["totalTime"] >= body["executionTime"]
    spec = (await client.get("/openapi.json")).json()["components"]["schemas"]["Result"]["properties"]
    assert spec["executionTime"]["type"] == ["integer", "null"] and spec["totalTime"]["type"] == ["integer", "null"]
    assert spec["executionTimeMs"]["type"] == ["number", "null"]
